//! The names `ocmctl` writes and reads, on the hub and on managed clusters — OCM's where OCM has
//! one.

/// The namespace of the bootstrap ServiceAccount (OCM's, as `clusteradm init` creates it).
pub const BOOTSTRAP_NAMESPACE: &str = "open-cluster-management";
/// The ServiceAccount agents join with (OCM's name; `ocmctl accept` and the hub know it).
pub const BOOTSTRAP_SERVICE_ACCOUNT: &str = "agent-registration-bootstrap";
/// The hub's namespace: its CA and serving certificate Secrets (`ocm-hub --namespace`).
pub const HUB_NAMESPACE: &str = "open-cluster-management-hub";
/// The hub CA's Secret in [`HUB_NAMESPACE`] (what `ocm-hub` creates and reuses).
pub const HUB_CA_SECRET: &str = "ocm-hub-ca";
/// A ConfigMap in [`HUB_NAMESPACE`] where `ocmctl init` records the hub URL, so that
/// `ocmctl get token` can print the join command again without being told it.
pub const HUB_INFO_CONFIG_MAP: &str = "ocm-hub-info";
/// The key of the hub URL in [`HUB_INFO_CONFIG_MAP`].
pub const HUB_INFO_URL_KEY: &str = "hubURL";

/// The agent's namespace on a managed cluster (OCM's; `ocm-agent --namespace`).
pub const AGENT_NAMESPACE: &str = "open-cluster-management-agent";
/// The bootstrap Secret `ocmctl join` writes (OCM's name), holding OCM's gRPC bootstrap config
/// under [`BOOTSTRAP_CONFIG_KEY`].
pub const BOOTSTRAP_SECRET: &str = "bootstrap-hub-kubeconfig";
/// OCM's key of the gRPC config in the bootstrap Secret.
pub const BOOTSTRAP_CONFIG_KEY: &str = "config.yaml";
/// Where the agent keeps its hub credential once the hub signed it (OCM's name;
/// `ocm-agent --secret`). Its key `cluster-name` says which cluster it is for.
pub const HUB_CREDENTIAL_SECRET: &str = "hub-kubeconfig-secret";
/// The agent's Deployment, ServiceAccount and RBAC on a managed cluster.
pub const AGENT_NAME: &str = "ocm-agent";
/// The agent's ClusterRole and ClusterRoleBinding on a managed cluster.
pub const AGENT_CLUSTER_ROLE: &str = "open-cluster-management:ocm-agent";
/// The ClusterRole (and binding) of the agent's work half: applying what works carry.
pub const WORK_CLUSTER_ROLE: &str = "open-cluster-management:ocm-agent:work";

/// The field manager `ocmctl` applies as.
pub const FIELD_MANAGER: &str = "ocmctl";
/// The label `ocmctl join` puts on what it writes, so `unjoin` removes exactly that.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
