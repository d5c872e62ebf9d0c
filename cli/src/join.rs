//! `ocmctl join`: registers the managed cluster it runs against with a hub, as `clusteradm join`
//! does — with the token, hub URL and CA that `ocmctl init` / `get token` print.
//!
//! First a preflight from where `ocmctl` runs: a TLS handshake with the hub's broker trusting
//! only the given CA, then a subscription with the token, so a wrong URL, CA or token is an
//! error now rather than an agent retrying for an hour. Then either
//! - the agent's manifests are applied to the managed cluster ([`manifests`]): the namespace
//!   `open-cluster-management-agent`, the bootstrap Secret `bootstrap-hub-kubeconfig` holding
//!   OCM's gRPC bootstrap config under `config.yaml`, the agent's ServiceAccount and RBAC, and
//!   the `ocm-agent` Deployment; or
//! - with `--local`, `ocm-agent` starts as a local background process ([`crate::local`]).
//!
//! With `--proxy-url` (and `--proxy-ca-file` for an `https://` proxy) the preflight goes through
//! the proxy, and the agent is given it: in the cluster as `OCM_PROXY_URL` from the bootstrap
//! Secret (so its credentials are in no Deployment field, command line or log) and the CA
//! mounted from there; locally in its environment and state directory ([`AgentProxy`]).
//!
//! What the managed cluster can see of the join ([`wait_for_credential`]): the agent keeps the
//! certificate the hub signed for it in the Secret `hub-kubeconfig-secret`, labelled with its
//! cluster name. It appears once the hub approved the agent's request — `ocmctl accept` on the
//! hub, or the hub's auto-approval — so that is what `--wait` waits for. Whether the hub also
//! accepted the cluster (`hubAcceptsClient`) only the hub knows: `ocmctl get clusters`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ocm_api::k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use ocm_api::k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecretVolumeSource, SecurityContext, ServiceAccount, Volume,
    VolumeMount,
};
use ocm_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use ocm_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use ocm_api::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client, Resource};
use ocm_api::registration::CLUSTER_NAME_LABEL;
use ocm_transport::http_proxy::{HttpProxy, ProxyError};
use serde::Serialize;

use crate::hub::{self, HubUrl, ProbeError, TokenCheckError};
use crate::local::{self, LocalError, LocalFiles, Started};
use crate::names::{
    AGENT_CLUSTER_ROLE, AGENT_NAME, AGENT_NAMESPACE, BOOTSTRAP_CONFIG_KEY, BOOTSTRAP_SECRET,
    FIELD_MANAGER, HUB_CREDENTIAL_SECRET, MANAGED_BY_LABEL, WORK_CLUSTER_ROLE,
};
use crate::progress::{Observer, format_elapsed};

/// The agent image `join` deploys unless told another (`--image`).
pub fn default_image() -> String {
    format!("ghcr.io/ocm-rs/ocm-agent:v{}", env!("CARGO_PKG_VERSION"))
}

/// The port of the agent's `/healthz` and `/readyz` in its Pod.
const HEALTH_PORT: i32 = 8092;
/// Where the bootstrap Secret is mounted in the agent's Pod.
const BOOTSTRAP_MOUNT: &str = "/spoke/bootstrap";
/// The bootstrap Secret's key holding the proxy URL (with any credentials).
pub const PROXY_URL_KEY: &str = "proxy-url";
/// The bootstrap Secret's key holding an `https://` proxy's CA.
pub const PROXY_CA_KEY: &str = "proxy-ca.crt";
/// The agent's variable for `--proxy-url`.
pub const PROXY_URL_ENV: &str = "OCM_PROXY_URL";

/// The HTTP CONNECT proxy the agent reaches the hub through (`--proxy-url`, and
/// `--proxy-ca-file` for an `https://` proxy). Its `Debug` shows no credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AgentProxy {
    /// As given, credentials included: only the agent's environment and Secret hold it.
    url: String,
    /// An `https://` proxy's CA (PEM).
    ca_pem: Option<String>,
}

impl std::fmt::Debug for AgentProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentProxy")
            .field("url", &ocm_transport::http_proxy::redact(&self.url))
            .field("ca_pem", &self.ca_pem.is_some())
            .finish()
    }
}

/// The URL without its credentials.
impl std::fmt::Display for AgentProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&ocm_transport::http_proxy::redact(&self.url))
    }
}

impl AgentProxy {
    /// Checks the URL and CA as the agent will read them.
    pub fn new(url: &str, ca_pem: Option<&str>) -> Result<Self, JoinError> {
        HttpProxy::from_url(url, ca_pem)?;
        Ok(Self {
            url: url.trim().to_owned(),
            ca_pem: ca_pem.map(str::to_owned),
        })
    }

    /// The URL, credentials included, for the agent's environment.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The proxy as the transport uses it.
    pub fn http_proxy(&self) -> Result<HttpProxy, JoinError> {
        Ok(HttpProxy::from_url(&self.url, self.ca_pem.as_deref())?)
    }
}

/// What joining needs: the cluster's name on the hub, and the hub's URL, CA and a bootstrap
/// token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub cluster_name: String,
    pub hub_url: HubUrl,
    pub hub_token: String,
    /// The hub CA, PEM.
    pub ca_pem: String,
    /// The proxy the agent reaches the hub through, if any ([`JoinRequest::through`]).
    pub proxy: Option<AgentProxy>,
}

impl std::fmt::Debug for JoinRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinRequest")
            .field("cluster_name", &self.cluster_name)
            .field("hub_url", &self.hub_url)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// OCM's gRPC bootstrap config, as the agent reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GrpcBootstrapConfig<'a> {
    url: String,
    ca_data: String,
    token: &'a str,
}

impl JoinRequest {
    /// Checks the cluster name (a DNS label, as it names the cluster's namespace on the hub) and
    /// decodes `ca_data` (base64 of the PEM CA, as `ocmctl init` prints it).
    pub fn new(
        cluster_name: &str,
        hub_url: HubUrl,
        hub_token: &str,
        ca_data: &str,
    ) -> Result<Self, JoinError> {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(ca_data.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| JoinError::CaData("it is not base64 of text".to_owned()))?;
        Self::with_ca_pem(cluster_name, hub_url, hub_token, &pem)
    }

    /// As [`JoinRequest::new`], with the CA as PEM (`--ca-file`).
    pub fn with_ca_pem(
        cluster_name: &str,
        hub_url: HubUrl,
        hub_token: &str,
        ca_pem: &str,
    ) -> Result<Self, JoinError> {
        validate_cluster_name(cluster_name)?;
        ocm_transport::tls::client_config(ca_pem, None)
            .map_err(|e| JoinError::CaData(e.to_string()))?;
        if hub_token.trim().is_empty() {
            return Err(JoinError::EmptyToken);
        }
        Ok(Self {
            cluster_name: cluster_name.to_owned(),
            hub_url,
            hub_token: hub_token.trim().to_owned(),
            ca_pem: ca_pem.to_owned(),
            proxy: None,
        })
    }

    /// The same request, the agent (and the preflight) reaching the hub through `proxy`.
    #[must_use]
    pub fn through(mut self, proxy: Option<AgentProxy>) -> Self {
        self.proxy = proxy;
        self
    }

    /// OCM's gRPC bootstrap config (`url`, `caData`, `token`) as YAML.
    pub fn bootstrap_config(&self) -> String {
        let config = GrpcBootstrapConfig {
            url: self.hub_url.to_string(),
            ca_data: base64::engine::general_purpose::STANDARD.encode(&self.ca_pem),
            token: &self.hub_token,
        };
        // Three strings always serialize.
        serde_saphyr::to_string(&config).unwrap_or_default()
    }
}

/// A DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a
/// letter or digit.
pub fn validate_cluster_name(name: &str) -> Result<(), JoinError> {
    let bytes = name.as_bytes();
    let valid = !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if valid {
        Ok(())
    } else {
        Err(JoinError::InvalidClusterName(name.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "invalid cluster name {0:?}: use a DNS label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"
    )]
    InvalidClusterName(String),
    #[error(
        "--ca-data is not the hub CA ({0}): copy it from the join command `ocmctl init` or `ocmctl get token` printed on the hub"
    )]
    CaData(String),
    #[error("--hub-token is empty: on the hub, `ocmctl get token` prints a join command with one")]
    EmptyToken,
    #[error(
        "{0}\n(if only the managed cluster, not this machine, can reach the hub, pass --skip-preflight)"
    )]
    Unreachable(#[from] ProbeError),
    #[error(transparent)]
    Token(#[from] TokenCheckError),
    #[error(
        "this managed cluster already joined a hub as {joined:?}: run `ocmctl unjoin --cluster-name {joined}` on it first"
    )]
    JoinedAs { joined: String },
    #[error("{what} on the managed cluster: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("--proxy-url: {0}")]
    Proxy(#[from] ProxyError),
    #[error(
        "the local agent of {cluster:?} stopped while waiting; its log {}:\n{tail}",
        log.display()
    )]
    AgentStopped {
        cluster: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "{cluster} has not joined within {waited}: on the hub, run `ocmctl accept --clusters {cluster}` and see `ocmctl get clusters`; the agent's log is {log}"
    )]
    NotJoined {
        cluster: String,
        waited: String,
        log: String,
    },
}

fn kube(what: &'static str) -> impl Fn(ocm_api::kube::Error) -> JoinError {
    move |source| JoinError::Kube {
        what,
        source: Box::new(source),
    }
}

/// Checks from here what the agent will need: the broker serves with this CA under this name,
/// and accepts the token for this cluster.
pub async fn preflight(request: &JoinRequest) -> Result<(), JoinError> {
    let proxy = request
        .proxy
        .as_ref()
        .map(AgentProxy::http_proxy)
        .transpose()?;
    hub::probe_via(&request.hub_url, &request.ca_pem, proxy.as_ref()).await?;
    hub::check_token_via(
        &request.hub_url,
        &request.ca_pem,
        &request.hub_token,
        &request.cluster_name,
        Duration::from_secs(15),
        proxy.as_ref(),
    )
    .await?;
    Ok(())
}

/// The cluster name of the hub credential (or of what `join` wrote) on this managed cluster, if
/// it joined already.
pub async fn joined_as(spoke: &Client) -> Result<Option<String>, JoinError> {
    let secrets: Api<Secret> = Api::namespaced(spoke.clone(), AGENT_NAMESPACE);
    let credential = secrets
        .get_opt(HUB_CREDENTIAL_SECRET)
        .await
        .map_err(kube("reading the hub credential"))?;
    if let Some(name) = credential
        .and_then(|s| s.data)
        .and_then(|d| d.get("cluster-name").cloned())
        .and_then(|v| String::from_utf8(v.0).ok())
    {
        return Ok(Some(name));
    }
    let bootstrap = secrets
        .get_opt(BOOTSTRAP_SECRET)
        .await
        .map_err(kube("reading the bootstrap Secret"))?;
    Ok(bootstrap
        .and_then(|s| s.metadata.labels)
        .and_then(|l| l.get(CLUSTER_NAME_LABEL).cloned()))
}

/// How the agent runs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A Deployment of `image` on the managed cluster.
    InCluster { image: String },
    /// A local process of `agent_binary`, with its files in `files`, against the managed
    /// cluster of `spoke_kubeconfig` (else the agent's default, as ocmctl's).
    Local {
        agent_binary: PathBuf,
        files: LocalFiles,
        spoke_kubeconfig: Option<PathBuf>,
    },
}

/// What joining did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// The manifests were applied (`kind/name` each).
    Applied(Vec<String>),
    Local(Started),
}

/// Joins the managed cluster `spoke` talks to: refuses if it joined as another cluster, then
/// applies the agent's manifests or starts the local agent. Run [`preflight`] first.
pub async fn join(spoke: &Client, request: &JoinRequest, mode: &Mode) -> Result<Joined, JoinError> {
    if let Some(joined) = joined_as(spoke).await?
        && joined != request.cluster_name
    {
        return Err(JoinError::JoinedAs { joined });
    }
    match mode {
        Mode::InCluster { image } => apply(spoke, &manifests(request, image))
            .await
            .map(Joined::Applied),
        Mode::Local {
            agent_binary,
            files,
            spoke_kubeconfig,
        } => Ok(Joined::Local(
            local::start(
                &request.cluster_name,
                &request.bootstrap_config(),
                files,
                agent_binary,
                spoke_kubeconfig.as_deref(),
                request.proxy.as_ref(),
            )
            .await?,
        )),
    }
}

/// Everything `join` writes to a managed cluster for an in-cluster agent.
#[derive(Debug, Clone)]
pub struct AgentManifests {
    pub namespace: Namespace,
    pub bootstrap_secret: Secret,
    pub service_account: ServiceAccount,
    pub cluster_role: ClusterRole,
    pub cluster_role_binding: ClusterRoleBinding,
    /// What applying ManifestWorks takes: any object a work may carry (OCM's work agent holds
    /// `admin` plus its execution aggregate and may escalate, bind and impersonate service
    /// accounts for executor checks — in effect the same).
    pub work_cluster_role: ClusterRole,
    pub work_cluster_role_binding: ClusterRoleBinding,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub deployment: Deployment,
}

fn labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned()),
        (CLUSTER_NAME_LABEL.to_owned(), cluster.to_owned()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, cluster: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(labels(cluster)),
        ..ObjectMeta::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|i| (*i).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        ..PolicyRule::default()
    }
}

/// The agent's manifests: what `ocm-agent` needs on its cluster and nothing more — its own
/// namespace and Secrets there, the nodes (capacity), ClusterClaims, and the apiserver's
/// `/livez`, `/healthz` and `/version`.
pub fn manifests(request: &JoinRequest, image: &str) -> AgentManifests {
    let cluster = request.cluster_name.as_str();
    let ns = Some(AGENT_NAMESPACE);
    let app = BTreeMap::from([("app".to_owned(), AGENT_NAME.to_owned())]);
    let mut pod_labels = labels(cluster);
    pod_labels.extend(app.clone());
    let subject = Subject {
        kind: "ServiceAccount".to_owned(),
        name: AGENT_NAME.to_owned(),
        namespace: Some(AGENT_NAMESPACE.to_owned()),
        ..Subject::default()
    };
    let role_ref = |kind: &str, name: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    };
    let mut args = vec![
        "--cluster-name".to_owned(),
        cluster.to_owned(),
        "--bootstrap-config".to_owned(),
        format!("{BOOTSTRAP_MOUNT}/{BOOTSTRAP_CONFIG_KEY}"),
        "--health-listen".to_owned(),
        format!("0.0.0.0:{HEALTH_PORT}"),
    ];
    let mut bootstrap_data =
        BTreeMap::from([(BOOTSTRAP_CONFIG_KEY.to_owned(), request.bootstrap_config())]);
    let mut env = None;
    if let Some(proxy) = &request.proxy {
        // The URL may hold credentials: from the Secret into the environment, never an arg.
        bootstrap_data.insert(PROXY_URL_KEY.to_owned(), proxy.url().to_owned());
        env = Some(vec![EnvVar {
            name: PROXY_URL_ENV.to_owned(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: BOOTSTRAP_SECRET.to_owned(),
                    key: PROXY_URL_KEY.to_owned(),
                    ..SecretKeySelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]);
        if let Some(ca) = proxy.ca_pem() {
            bootstrap_data.insert(PROXY_CA_KEY.to_owned(), ca.to_owned());
            args.push("--proxy-ca-file".to_owned());
            args.push(format!("{BOOTSTRAP_MOUNT}/{PROXY_CA_KEY}"));
        }
    }
    let container = Container {
        name: "agent".to_owned(),
        image: Some(image.to_owned()),
        args: Some(args),
        env,
        ports: Some(vec![ContainerPort {
            name: Some("health".to_owned()),
            container_port: HEALTH_PORT,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(http_probe("/healthz")),
        readiness_probe: Some(http_probe("/readyz")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("10m".to_owned())),
                ("memory".to_owned(), Quantity("32Mi".to_owned())),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "bootstrap".to_owned(),
            mount_path: BOOTSTRAP_MOUNT.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    AgentManifests {
        namespace: Namespace {
            metadata: meta(AGENT_NAMESPACE, None, cluster),
            ..Namespace::default()
        },
        bootstrap_secret: Secret {
            metadata: meta(BOOTSTRAP_SECRET, ns, cluster),
            type_: Some("Opaque".to_owned()),
            string_data: Some(bootstrap_data),
            ..Secret::default()
        },
        service_account: ServiceAccount {
            metadata: meta(AGENT_NAME, ns, cluster),
            ..ServiceAccount::default()
        },
        cluster_role: ClusterRole {
            metadata: meta(AGENT_CLUSTER_ROLE, None, cluster),
            rules: Some(vec![
                rule(&[""], &["nodes"], &["get", "list", "watch"], &[]),
                rule(
                    &[""],
                    &["namespaces"],
                    &["get", "patch"],
                    &[AGENT_NAMESPACE],
                ),
                rule(
                    &["cluster.open-cluster-management.io"],
                    &["clusterclaims"],
                    &["get", "list", "watch"],
                    &[],
                ),
                PolicyRule {
                    non_resource_urls: Some(
                        ["/livez", "/healthz", "/version"]
                            .map(str::to_owned)
                            .to_vec(),
                    ),
                    verbs: vec!["get".to_owned()],
                    ..PolicyRule::default()
                },
            ]),
            ..ClusterRole::default()
        },
        cluster_role_binding: ClusterRoleBinding {
            metadata: meta(AGENT_CLUSTER_ROLE, None, cluster),
            role_ref: role_ref("ClusterRole", AGENT_CLUSTER_ROLE),
            subjects: Some(vec![subject.clone()]),
        },
        work_cluster_role: ClusterRole {
            metadata: meta(WORK_CLUSTER_ROLE, None, cluster),
            rules: Some(vec![
                rule(&["*"], &["*"], &["*"], &[]),
                PolicyRule {
                    non_resource_urls: Some(vec!["*".to_owned()]),
                    verbs: vec!["get".to_owned()],
                    ..PolicyRule::default()
                },
            ]),
            ..ClusterRole::default()
        },
        work_cluster_role_binding: ClusterRoleBinding {
            metadata: meta(WORK_CLUSTER_ROLE, None, cluster),
            role_ref: role_ref("ClusterRole", WORK_CLUSTER_ROLE),
            subjects: Some(vec![subject.clone()]),
        },
        role: Role {
            metadata: meta(AGENT_NAME, ns, cluster),
            rules: Some(vec![
                rule(
                    &[""],
                    &["secrets"],
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &[],
                ),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"],
                    &[],
                ),
            ]),
        },
        role_binding: RoleBinding {
            metadata: meta(AGENT_NAME, ns, cluster),
            role_ref: role_ref("Role", AGENT_NAME),
            subjects: Some(vec![subject]),
        },
        deployment: Deployment {
            metadata: meta(AGENT_NAME, ns, cluster),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector: LabelSelector {
                    match_labels: Some(app),
                    ..LabelSelector::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(AGENT_NAME.to_owned()),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            seccomp_profile: Some(SeccompProfile {
                                type_: "RuntimeDefault".to_owned(),
                                ..SeccompProfile::default()
                            }),
                            ..PodSecurityContext::default()
                        }),
                        containers: vec![container],
                        volumes: Some(vec![Volume {
                            name: "bootstrap".to_owned(),
                            secret: Some(SecretVolumeSource {
                                secret_name: Some(BOOTSTRAP_SECRET.to_owned()),
                                ..SecretVolumeSource::default()
                            }),
                            ..Volume::default()
                        }]),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        },
    }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(HEALTH_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

fn applied<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}",
        K::kind(&()),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

async fn apply_in_namespace<K>(client: &Client, object: &K) -> Result<String, JoinError>
where
    K: Resource<DynamicType = (), Scope = ocm_api::k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + serde::de::DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), AGENT_NAMESPACE)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(kube("applying the agent's manifests"))?;
    Ok(applied(object))
}

async fn apply_cluster_wide<K>(client: &Client, object: &K) -> Result<String, JoinError>
where
    K: Resource<DynamicType = (), Scope = ocm_api::k8s_openapi::ClusterResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + serde::de::DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(kube("applying the agent's manifests"))?;
    Ok(applied(object))
}

/// Applies the manifests in dependency order (server-side apply, field manager `ocmctl`).
pub async fn apply(spoke: &Client, manifests: &AgentManifests) -> Result<Vec<String>, JoinError> {
    Ok(vec![
        apply_cluster_wide(spoke, &manifests.namespace).await?,
        apply_in_namespace(spoke, &manifests.bootstrap_secret).await?,
        apply_in_namespace(spoke, &manifests.service_account).await?,
        apply_cluster_wide(spoke, &manifests.cluster_role).await?,
        apply_cluster_wide(spoke, &manifests.cluster_role_binding).await?,
        apply_cluster_wide(spoke, &manifests.work_cluster_role).await?,
        apply_cluster_wide(spoke, &manifests.work_cluster_role_binding).await?,
        apply_in_namespace(spoke, &manifests.role).await?,
        apply_in_namespace(spoke, &manifests.role_binding).await?,
        apply_in_namespace(spoke, &manifests.deployment).await?,
    ])
}

/// Waits (up to `timeout`) until the agent holds the certificate the hub signed for `cluster` —
/// the managed cluster's view of a successful join. With `local`, a local agent that stops
/// meanwhile ends the wait with its log.
pub async fn wait_for_credential(
    spoke: &Client,
    cluster: &str,
    local: Option<&LocalFiles>,
    timeout: Duration,
    observer: &mut dyn Observer,
) -> Result<(), JoinError> {
    let started = tokio::time::Instant::now();
    let secrets: Api<Secret> = Api::namespaced(spoke.clone(), AGENT_NAMESPACE);
    let what = format!(
        "waiting for the hub to approve {cluster} (on the hub: ocmctl accept --clusters {cluster})"
    );
    loop {
        let credential = secrets
            .get_opt(HUB_CREDENTIAL_SECRET)
            .await
            .map_err(kube("reading the hub credential"))?;
        let data = credential.and_then(|s| s.data).unwrap_or_default();
        let holds = |key: &str, value: Option<&str>| {
            data.get(key)
                .is_some_and(|v| !v.0.is_empty() && value.is_none_or(|want| v.0 == want.as_bytes()))
        };
        if holds("cluster-name", Some(cluster)) && holds("tls.crt", None) {
            observer.done(
                &format!("{cluster} joined: the hub signed its agent's certificate"),
                started.elapsed(),
            );
            return Ok(());
        }
        if let Some(files) = local
            && local::running(files, cluster).is_none()
        {
            return Err(JoinError::AgentStopped {
                cluster: cluster.to_owned(),
                log: files.log.clone(),
                tail: local::log_tail(&files.log, 20),
            });
        }
        if started.elapsed() >= timeout {
            return Err(JoinError::NotJoined {
                cluster: cluster.to_owned(),
                waited: format_elapsed(started.elapsed()),
                log: match local {
                    Some(files) => files.log.display().to_string(),
                    None => format!("`kubectl -n {AGENT_NAMESPACE} logs deploy/{AGENT_NAME}`"),
                },
            });
        }
        observer.waiting(&what, started.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A spoke kubeconfig path the agent can use from any working directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use ocm_transport::grpc_config::GrpcConfigFile;

    use super::*;

    fn ca() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn request() -> JoinRequest {
        let ca_data = base64::engine::general_purpose::STANDARD.encode(ca());
        JoinRequest::new(
            "cluster1",
            HubUrl::parse("hub.example.com:8090").unwrap(),
            "t0k3n",
            &ca_data,
        )
        .unwrap()
    }

    #[test]
    fn cluster_names_are_dns_labels() {
        for good in ["cluster1", "a", "a-b-9", &"x".repeat(63)] {
            assert!(validate_cluster_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Cluster1", "-a", "a-", "a.b", "a_b", &"x".repeat(64)] {
            let err = validate_cluster_name(bad).unwrap_err().to_string();
            assert!(err.contains("DNS label"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_ca_must_be_base64_of_a_pem_certificate_and_the_token_present() {
        let url = HubUrl::parse("hub:8090").unwrap();
        let err = JoinRequest::new("c1", url.clone(), "t", "%%%").unwrap_err();
        assert!(err.to_string().contains("ocmctl get token"), "{err}");
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        let err = JoinRequest::new("c1", url.clone(), "t", &not_pem).unwrap_err();
        assert!(matches!(err, JoinError::CaData(_)), "{err}");
        let ca_data = base64::engine::general_purpose::STANDARD.encode(ca());
        let err = JoinRequest::new("c1", url, " ", &ca_data).unwrap_err();
        assert!(matches!(err, JoinError::EmptyToken), "{err}");
    }

    #[test]
    fn the_bootstrap_config_is_ocms_grpc_config_and_the_agent_reads_it() {
        let request = request();
        let yaml = request.bootstrap_config();
        let read = GrpcConfigFile::from_yaml(&yaml)
            .unwrap()
            .resolve(|_| Err(std::io::Error::other("no files")))
            .unwrap();
        assert_eq!(read.url, "hub.example.com:8090");
        assert_eq!(read.token.as_deref(), Some("t0k3n"));
        assert_eq!(read.ca_pem.as_deref(), Some(request.ca_pem.as_str()));
        assert!(
            !format!("{request:?}").contains("t0k3n"),
            "the token stays out of logs"
        );
    }

    #[test]
    fn a_proxy_reaches_the_deployed_agent_from_the_secret_and_never_shows() {
        let key = rcgen::KeyPair::generate().unwrap();
        let proxy_ca = rcgen::CertificateParams::new(vec!["proxy".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let proxy =
            AgentProxy::new("https://alice:s3cret@proxy.corp:3128", Some(&proxy_ca)).unwrap();
        let request = request().through(Some(proxy.clone()));
        for shown in [
            format!("{request:?}"),
            format!("{proxy:?}"),
            proxy.to_string(),
        ] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("alice"),
                "{shown}"
            );
        }
        let m = manifests(&request, "example.com/ocm-agent:v1");
        let data = m.bootstrap_secret.string_data.as_ref().unwrap();
        assert_eq!(data[PROXY_URL_KEY], "https://alice:s3cret@proxy.corp:3128");
        assert_eq!(data[PROXY_CA_KEY], proxy_ca);
        let pod = m.deployment.spec.unwrap().template.spec.unwrap();
        let agent = &pod.containers[0];
        let args = agent.args.as_ref().unwrap().join(" ");
        assert!(
            args.ends_with("--proxy-ca-file /spoke/bootstrap/proxy-ca.crt"),
            "{args}"
        );
        assert!(!args.contains("s3cret"), "{args}");
        let env = agent.env.as_ref().unwrap();
        assert_eq!(env.len(), 1);
        assert_eq!(env[0].name, PROXY_URL_ENV);
        assert_eq!(env[0].value, None, "the URL is not in the Deployment");
        let from = env[0]
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .unwrap();
        assert_eq!(
            (from.name.as_str(), from.key.as_str()),
            (BOOTSTRAP_SECRET, PROXY_URL_KEY)
        );

        // No proxy: nothing of it.
        let plain = manifests(&super::tests::request(), "example.com/ocm-agent:v1");
        let pod = plain.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].env, None);
        assert_eq!(plain.bootstrap_secret.string_data.unwrap().len(), 1);
        // A CA for a plain HTTP proxy is refused rather than ignored.
        let err = AgentProxy::new("http://proxy.corp:3128", Some(&proxy_ca)).unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn the_manifests_run_the_agent_with_the_bootstrap_secret_and_least_privilege() {
        let request = request();
        let m = manifests(&request, "example.com/ocm-agent:v1");
        assert_eq!(m.namespace.metadata.name.as_deref(), Some(AGENT_NAMESPACE));
        for labels in [&m.namespace.metadata.labels, &m.deployment.metadata.labels] {
            let labels = labels.as_ref().unwrap();
            assert_eq!(labels[CLUSTER_NAME_LABEL], "cluster1");
            assert_eq!(labels[MANAGED_BY_LABEL], "ocmctl");
        }
        let config = &m.bootstrap_secret.string_data.as_ref().unwrap()[BOOTSTRAP_CONFIG_KEY];
        assert_eq!(config, &request.bootstrap_config());
        let pod = m.deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(AGENT_NAME));
        let agent = &pod.containers[0];
        assert_eq!(agent.image.as_deref(), Some("example.com/ocm-agent:v1"));
        assert_eq!(
            agent.args.as_ref().unwrap().join(" "),
            "--cluster-name cluster1 --bootstrap-config /spoke/bootstrap/config.yaml \
             --health-listen 0.0.0.0:8092"
        );
        let volume = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(
            volume.secret.as_ref().unwrap().secret_name.as_deref(),
            Some(BOOTSTRAP_SECRET)
        );
        // Secrets only in its own namespace; cluster-wide only reads, and patching its own
        // namespace by name.
        let cluster_rules = m.cluster_role.rules.unwrap();
        for rule in &cluster_rules {
            let writes = rule
                .verbs
                .iter()
                .any(|v| v != "get" && v != "list" && v != "watch");
            if writes {
                assert_eq!(
                    rule.resource_names.as_deref(),
                    Some(&[AGENT_NAMESPACE.to_owned()][..]),
                    "{rule:?}"
                );
            }
            assert!(
                !rule.resources.iter().flatten().any(|r| r == "secrets"),
                "{rule:?}"
            );
        }
        assert_eq!(m.role.metadata.namespace.as_deref(), Some(AGENT_NAMESPACE));
        assert_eq!(
            m.cluster_role_binding.subjects.unwrap()[0]
                .namespace
                .as_deref(),
            Some(AGENT_NAMESPACE)
        );
    }
}
