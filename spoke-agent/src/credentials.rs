//! The agent's hub credential, kept in a Secret on its own cluster (OCM: `hub-kubeconfig-secret`
//! in `open-cluster-management-agent`) so a restarted agent reuses it instead of joining again.

use std::collections::BTreeMap;

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::core::v1::{Namespace, Secret};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client};
use ocm_transport::tls::PemIdentity;

use crate::csr::AgentName;

pub const AGENT_NAMESPACE: &str = "open-cluster-management-agent";
pub const HUB_SECRET: &str = "hub-kubeconfig-secret";
const FIELD_MANAGER: &str = "ocm-agent";

/// Where the credential lives.
#[derive(Clone)]
pub struct CredentialStore {
    client: Client,
    namespace: String,
    name: String,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CredentialStore {
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The stored identity, if there is one for this cluster and agent that is still valid
    /// for at least `margin`.
    ///
    /// A certificate that the hub's CA (`hub_ca`, from the bootstrap config) did not issue is
    /// not used: a reinstalled hub with a new CA would only refuse it, and the agent should
    /// not have to wait for that refusal, which it believes only once it persists.
    pub async fn load(
        &self,
        agent: &AgentName,
        margin: std::time::Duration,
        hub_ca: Option<&str>,
    ) -> Result<Option<PemIdentity>, ocm_api::kube::Error> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(secret) = secrets.get_opt(&self.name).await? else {
            return Ok(None);
        };
        let data = secret.data.unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
        };
        let (Some(cert), Some(key)) = (text("tls.crt"), text("tls.key")) else {
            return Ok(None);
        };
        if !usable(&cert, agent, margin) {
            tracing::info!(cluster = %agent.cluster, "stored hub credential is expired or not this agent's; joining again");
            return Ok(None);
        }
        if let Some(ca) = hub_ca
            && !issued_by(&cert, ca)
        {
            tracing::info!(cluster = %agent.cluster, "stored hub credential was not issued by the hub's CA; joining again");
            return Ok(None);
        }
        Ok(Some(PemIdentity {
            cert_chain: cert,
            key,
        }))
    }

    /// Stores `identity` (creating the namespace if needed).
    pub async fn store(
        &self,
        agent: &AgentName,
        identity: &PemIdentity,
    ) -> Result<(), ocm_api::kube::Error> {
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .patch(&self.namespace, &apply, &Patch::Apply(&namespace))
            .await?;
        let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                ("tls.crt".to_owned(), bytes(&identity.cert_chain)),
                ("tls.key".to_owned(), bytes(&identity.key)),
                ("cluster-name".to_owned(), bytes(&agent.cluster)),
                ("agent-name".to_owned(), bytes(&agent.agent)),
            ])),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .patch(&self.name, &apply, &Patch::Apply(&secret))
            .await?;
        Ok(())
    }
}

/// The certificate names this agent and is valid for at least `margin` more.
/// Whether the PEM certificate `cert` names one of the PEM CA certificates in `ca` as its
/// issuer: by key identifier where both carry one (a CA made anew keeps its name but not its
/// key), else by name.
fn issued_by(cert: &str, ca: &str) -> bool {
    use x509_parser::extensions::ParsedExtension;
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert.as_bytes()) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&pem.contents) else {
        return false;
    };
    let authority_key = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        });
    x509_parser::pem::Pem::iter_from_buffer(ca.as_bytes())
        .flatten()
        .any(|ca_pem| {
            let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca_pem.contents) else {
                return false;
            };
            let subject_key = ca
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0),
                    _ => None,
                });
            match (authority_key, subject_key) {
                (Some(aki), Some(ski)) => aki == ski,
                _ => ca.subject().as_raw() == cert.issuer().as_raw(),
            }
        })
}

fn usable(cert: &str, agent: &AgentName, margin: std::time::Duration) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert.as_bytes()) else {
        return false;
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&pem.contents) else {
        return false;
    };
    let names_us = ocm_transport::tls::cert_identity(&pem.contents.clone().into())
        .is_ok_and(|identity| identity.user == agent.common_name());
    let margin = i64::try_from(margin.as_secs()).unwrap_or(i64::MAX);
    let now = jiff::Timestamp::now().as_second();
    names_us && parsed.validity().not_after.timestamp() > now.saturating_add(margin)
}
