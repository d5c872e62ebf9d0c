//! `ocmctl init`: makes a Kubernetes cluster an ocm-rs hub, as `clusteradm init` does for OCM —
//! OCM's CRDs, the bootstrap ServiceAccount with OCM's bootstrap ClusterRole, the hub CA (kept
//! where `ocm-hub` finds and reuses it), the hub URL recorded for `ocmctl get token` — and
//! returns a bootstrap token with the join command. Every step is an apply: running it again
//! changes nothing but the token.
//!
//! `ocm-hub` itself runs separately (a process or a Deployment); `--wait` waits until its broker
//! serves at the hub URL with this CA ([`crate::hub::wait_until_serving`]).

use std::time::Duration;

use ocm_api::k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client};
use ocm_hub_server::pki::{self, PkiConfig};
use ocm_hub_server::registration::rbac;

use crate::hub::HubUrl;
use crate::names::{
    BOOTSTRAP_NAMESPACE, BOOTSTRAP_SERVICE_ACCOUNT, FIELD_MANAGER, HUB_CA_SECRET,
    HUB_INFO_CONFIG_MAP, HUB_NAMESPACE,
};
use crate::token::{self, JoinInfo, TokenError};

/// What `init` is told.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where agents reach ocm-hub's broker.
    pub hub_url: HubUrl,
    /// How long the printed token is valid (clusteradm's: 1 hour).
    pub token_expiration: Duration,
}

/// An initialized hub: the join information, and the CA to check the broker with.
#[derive(Debug, Clone)]
pub struct Initialized {
    pub join: JoinInfo,
    pub ca_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("installing OCM's CRDs (ocmctl init needs cluster-admin rights on the hub): {0}")]
    Crds(#[from] ocm_hub_server::crds::CrdError),
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error("the hub CA: {0}")]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

fn kube(what: &'static str) -> impl Fn(ocm_api::kube::Error) -> InitError {
    move |source| InitError::Kube {
        what,
        source: Box::new(source),
    }
}

/// Initializes the hub `client` talks to. Idempotent.
pub async fn init(client: &Client, options: &InitOptions) -> Result<Initialized, InitError> {
    ocm_hub_server::crds::install(client, &ocm_api::crds::hub(), Duration::from_secs(60)).await?;
    bootstrap_identity(client).await?;
    // The hub's own PKI code, so ocm-hub finds this CA and keeps it; the serving certificate
    // names the hub URL's host (ocm-hub reissues it if its --grpc-hosts need more).
    let mut pki_config = PkiConfig::new(vec![options.hub_url.host().to_owned()]);
    pki_config.namespace = HUB_NAMESPACE.to_owned();
    pki_config.ca_secret = HUB_CA_SECRET.to_owned();
    let hub_pki = pki::ensure(client, &pki_config).await?;
    Api::<ConfigMap>::namespaced(client.clone(), HUB_NAMESPACE)
        .patch(
            HUB_INFO_CONFIG_MAP,
            &apply(),
            &Patch::Apply(&token::hub_info(&options.hub_url)),
        )
        .await
        .map_err(kube("recording the hub URL"))?;
    let (hub_token, expires) = token::request_token(client, options.token_expiration).await?;
    Ok(Initialized {
        join: JoinInfo::new(hub_token, &options.hub_url, &hub_pki.ca_pem, expires),
        ca_pem: hub_pki.ca_pem,
    })
}

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// The bootstrap ServiceAccount and OCM's bootstrap ClusterRole bound to it — the hub's own
/// definitions (`ocm-hub --bootstrap-service-account` applies the same).
async fn bootstrap_identity(client: &Client) -> Result<(), InitError> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(BOOTSTRAP_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(BOOTSTRAP_NAMESPACE, &apply(), &Patch::Apply(&namespace))
        .await
        .map_err(kube("applying the bootstrap namespace"))?;
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(BOOTSTRAP_SERVICE_ACCOUNT.to_owned()),
            namespace: Some(BOOTSTRAP_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), BOOTSTRAP_NAMESPACE)
        .patch(BOOTSTRAP_SERVICE_ACCOUNT, &apply(), &Patch::Apply(&account))
        .await
        .map_err(kube("applying the bootstrap ServiceAccount"))?;
    Api::<ClusterRole>::all(client.clone())
        .patch(
            rbac::BOOTSTRAP_ROLE,
            &apply(),
            &Patch::Apply(&rbac::bootstrap_cluster_role()),
        )
        .await
        .map_err(kube("applying the bootstrap ClusterRole"))?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(
            rbac::BOOTSTRAP_ROLE,
            &apply(),
            &Patch::Apply(&rbac::bootstrap_binding(
                BOOTSTRAP_NAMESPACE,
                BOOTSTRAP_SERVICE_ACCOUNT,
            )),
        )
        .await
        .map_err(kube("applying the bootstrap ClusterRoleBinding"))?;
    Ok(())
}

/// What `ocmctl init` prints: what it set up, how to run ocm-hub unless it is known to serve,
/// and the join command on a line of its own.
pub fn text(join: &JoinInfo, url: &HubUrl, serving: bool) -> String {
    let mut out = format!(
        "The ocm-rs hub is initialized: OCM's CRDs, the bootstrap ServiceAccount \
         {BOOTSTRAP_NAMESPACE}/{BOOTSTRAP_SERVICE_ACCOUNT} with OCM's bootstrap ClusterRole, \
         and the hub CA in {HUB_NAMESPACE}/{HUB_CA_SECRET}.\n"
    );
    if serving {
        out.push_str(&format!("ocm-hub serves at {url}.\n"));
    } else {
        out.push_str(&format!(
            "Run ocm-hub against this cluster with its broker at {url}, unless it runs already:\n  \
             ocm-hub --kubeconfig <the hub's kubeconfig> --grpc-listen 0.0.0.0:{} --grpc-hosts {}\n",
            url.port(),
            url.host()
        ));
    }
    let expires = join
        .token_expiration
        .as_deref()
        .map(|at| format!("; the token expires {at}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "You can now register clusters. Log on to each managed cluster and run \
         (replace <cluster_name>{expires}):\n\n{}\n",
        join.join_command
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_says_what_it_did_how_to_run_the_hub_and_the_join_command() {
        let url = HubUrl::parse("hub.example.com:8090").unwrap();
        let join = JoinInfo::new(
            "t0k3n".into(),
            &url,
            "PEM",
            Some("2030-01-01T00:00:00Z".into()),
        );
        let waiting = text(&join, &url, false);
        assert!(
            waiting.contains("--grpc-listen 0.0.0.0:8090 --grpc-hosts hub.example.com"),
            "{waiting}"
        );
        assert!(waiting.contains("the token expires 2030-01-01T00:00:00Z"));
        assert!(
            waiting
                .lines()
                .any(|line| line == join.join_command && line.starts_with("ocmctl join ")),
            "{waiting}"
        );
        let serving = text(&join, &url, true);
        assert!(serving.contains("ocm-hub serves at hub.example.com:8090."));
        assert!(!serving.contains("--grpc-listen"));
    }
}
