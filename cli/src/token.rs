//! The join command and its token (`ocmctl get token`, the end of `ocmctl init`): a fresh token
//! of the bootstrap ServiceAccount by TokenRequest, the hub URL `init` recorded and the hub CA,
//! printed as the exact `ocmctl join …` line to run on a managed cluster, or as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use serde::Serialize;

use crate::hub::HubUrl;
use crate::names::{
    BOOTSTRAP_NAMESPACE, BOOTSTRAP_SERVICE_ACCOUNT, HUB_CA_SECRET, HUB_INFO_CONFIG_MAP,
    HUB_INFO_URL_KEY, HUB_NAMESPACE,
};

/// What `ocmctl join` needs, and the command line that passes it (`-o json` prints this).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinInfo {
    pub hub_token: String,
    /// The broker's `host:port`.
    pub hub_url: String,
    /// The hub CA (PEM), base64 — `caData` of OCM's gRPC config.
    pub ca_data: String,
    /// When the token expires (RFC 3339), as the apiserver granted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expiration: Option<String>,
    /// The command to run on a managed cluster, `<cluster_name>` to be replaced.
    pub join_command: String,
}

impl JoinInfo {
    pub fn new(
        hub_token: String,
        hub_url: &HubUrl,
        ca_pem: &str,
        token_expiration: Option<String>,
    ) -> Self {
        let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let hub_url = hub_url.to_string();
        let join_command = join_command(&hub_token, &hub_url, &ca_data, "<cluster_name>");
        Self {
            hub_token,
            hub_url,
            ca_data,
            token_expiration,
            join_command,
        }
    }

    /// `clusteradm get token`'s text: the token, then the join command.
    pub fn text(&self) -> String {
        let expires = self
            .token_expiration
            .as_deref()
            .map(|at| format!("; the token expires {at}"))
            .unwrap_or_default();
        format!(
            "token={}\nplease log on to each managed cluster and run (replace <cluster_name>{expires}):\n{}\n",
            self.hub_token, self.join_command
        )
    }
}

/// `ocmctl join --hub-token … --hub-url … --ca-data … --cluster-name <cluster>`, each value
/// quoted for a POSIX shell where it needs it. `cluster` is written as given (a placeholder).
pub fn join_command(token: &str, hub_url: &str, ca_data: &str, cluster: &str) -> String {
    format!(
        "ocmctl join --hub-token {} --hub-url {} --ca-data {} --cluster-name {cluster}",
        shell_word(token),
        shell_word(hub_url),
        shell_word(ca_data),
    )
}

/// `text` as one POSIX shell word: unchanged when it is plain, single-quoted otherwise.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+@,%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "this hub is not initialized ({missing} is missing): run `ocmctl init --hub-url <host:port>` first"
    )]
    NotInitialized { missing: String },
    #[error(
        "this hub has no hub URL recorded: pass --hub-url <host:port> (where agents reach ocm-hub's broker), or run `ocmctl init --hub-url <host:port>` again"
    )]
    NoHubUrl,
    #[error("the hub URL recorded by `ocmctl init` is unusable: {0}; pass --hub-url <host:port>")]
    BadRecordedUrl(#[source] crate::hub::HubUrlError),
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error("the apiserver answered the TokenRequest without a token; try again")]
    EmptyToken,
}

fn kube(what: &'static str) -> impl Fn(ocm_api::kube::Error) -> TokenError {
    move |source| TokenError::Kube {
        what,
        source: Box::new(source),
    }
}

/// A new token of the bootstrap ServiceAccount, valid for `expiration` (the apiserver may
/// shorten it), and when it expires.
pub async fn request_token(
    client: &Client,
    expiration: Duration,
) -> Result<(String, Option<String>), TokenError> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), BOOTSTRAP_NAMESPACE);
    let request = TokenRequest {
        // Bound to the broker: it authenticates agents' joins there and nowhere else.
        spec: TokenRequestSpec {
            audiences: vec![ocm_api::registration::BROKER_TOKEN_AUDIENCE.to_owned()],
            expiration_seconds: Some(i64::try_from(expiration.as_secs()).unwrap_or(i64::MAX)),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let status = match accounts
        .create_token_request(BOOTSTRAP_SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
    {
        Ok(answer) => answer.status.ok_or(TokenError::EmptyToken)?,
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => {
            return Err(TokenError::NotInitialized {
                missing: format!(
                    "ServiceAccount {BOOTSTRAP_NAMESPACE}/{BOOTSTRAP_SERVICE_ACCOUNT}"
                ),
            });
        }
        Err(err) => return Err(kube("requesting a bootstrap token")(err)),
    };
    if status.token.is_empty() {
        return Err(TokenError::EmptyToken);
    }
    Ok((
        status.token,
        Some(status.expiration_timestamp.0.to_string()),
    ))
}

/// The hub CA (PEM) from the Secret ocm-hub and `ocmctl init` keep it in.
pub async fn hub_ca(client: &Client) -> Result<String, TokenError> {
    let missing = || TokenError::NotInitialized {
        missing: format!("the hub CA Secret {HUB_NAMESPACE}/{HUB_CA_SECRET}"),
    };
    let secret = Api::<Secret>::namespaced(client.clone(), HUB_NAMESPACE)
        .get_opt(HUB_CA_SECRET)
        .await
        .map_err(kube("reading the hub CA"))?
        .ok_or_else(missing)?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|pem| !pem.is_empty())
        .ok_or_else(missing)
}

/// The hub URL `ocmctl init` recorded, if any.
pub async fn recorded_hub_url(client: &Client) -> Result<Option<HubUrl>, TokenError> {
    let info = Api::<ConfigMap>::namespaced(client.clone(), HUB_NAMESPACE)
        .get_opt(HUB_INFO_CONFIG_MAP)
        .await
        .map_err(kube("reading the recorded hub URL"))?;
    info.and_then(|c| c.data)
        .and_then(|d| d.get(HUB_INFO_URL_KEY).cloned())
        .map(|text| HubUrl::parse(&text).map_err(TokenError::BadRecordedUrl))
        .transpose()
}

/// The ConfigMap recording `url` (what `init` applies).
pub fn hub_info(url: &HubUrl) -> ConfigMap {
    ConfigMap {
        metadata: ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(HUB_INFO_CONFIG_MAP.to_owned()),
            namespace: Some(HUB_NAMESPACE.to_owned()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            HUB_INFO_URL_KEY.to_owned(),
            url.to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// `ocmctl get token`: a new token and the join command, for `hub_url` or the recorded URL.
pub async fn get_token(
    client: &Client,
    hub_url: Option<&HubUrl>,
    expiration: Duration,
) -> Result<JoinInfo, TokenError> {
    let ca = hub_ca(client).await?;
    let url = match hub_url {
        Some(url) => url.clone(),
        None => recorded_hub_url(client)
            .await?
            .ok_or(TokenError::NoHubUrl)?,
    };
    let (token, expires) = request_token(client, expiration).await?;
    Ok(JoinInfo::new(token, &url, &ca, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_command_is_one_shell_line_with_everything_an_agent_needs() {
        let url = HubUrl::parse("hub.example.com:8090").unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let info = JoinInfo::new("eyJ.a-b_c.d".into(), &url, pem, None);
        assert_eq!(
            info.join_command,
            format!(
                "ocmctl join --hub-token eyJ.a-b_c.d --hub-url hub.example.com:8090 --ca-data {} --cluster-name <cluster_name>",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        );
        let json: serde_json::Value = serde_json::to_value(&info).unwrap();
        assert_eq!(json["hubToken"], "eyJ.a-b_c.d");
        assert_eq!(json["hubUrl"], "hub.example.com:8090");
        assert!(json.get("tokenExpiration").is_none());
        assert!(info.text().starts_with("token=eyJ.a-b_c.d\n"));
        assert!(info.text().ends_with(&format!("{}\n", info.join_command)));
    }

    #[test]
    fn odd_values_are_quoted_for_the_shell() {
        assert_eq!(shell_word("abc+/=="), "abc+/==");
        assert_eq!(shell_word("[::1]:8090"), "'[::1]:8090'");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
