//! The names OCM's registration agrees on between hub, agent and tools: the cluster label, the
//! gRPC signer, the groups in an agent's certificate, the requester annotation.

/// The label naming the cluster an object (CSR, lease, namespace, RBAC) belongs to.
pub const CLUSTER_NAME_LABEL: &str = "open-cluster-management.io/cluster-name";
/// The signer of agents' client certificates under the gRPC registration driver.
pub const SIGNER_NAME: &str = "open-cluster-management.io/grpc";
/// Who really asked for a CSR the hub created on an agent's behalf.
pub const CSR_USER_ANNOTATION: &str = "open-cluster-management.io/csr-user";
/// The group every managed cluster's agents are in.
pub const MANAGED_CLUSTERS_GROUP: &str = "system:open-cluster-management:managed-clusters";
/// Prefix of a cluster's own group (`…<cluster>`) and of its agents' users (`…<cluster>:<agent>`).
pub const CLUSTER_GROUP_PREFIX: &str = "system:open-cluster-management:";
/// The Lease in a cluster's namespace on the hub that its agent renews.
pub const CLUSTER_LEASE: &str = "managed-cluster-lease";
