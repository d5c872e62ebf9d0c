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

/// The cluster of an agent's user name, `system:open-cluster-management:<cluster>:<agent>`
/// (the CN of the client certificates the hub signs); `None` for any other user, add-on agents'
/// longer names included.
pub fn agent_user_cluster(user: &str) -> Option<&str> {
    let (cluster, agent) = user.strip_prefix(CLUSTER_GROUP_PREFIX)?.split_once(':')?;
    (!cluster.is_empty() && !agent.is_empty() && !agent.contains(':')).then_some(cluster)
}

/// The audience of the bootstrap tokens `ocmctl` makes and the hub's broker checks by default:
/// a token bound to it authenticates to the broker and to nothing else — not to the hub's
/// apiserver, which a bootstrap token handed to every joining cluster otherwise is.
pub const BROKER_TOKEN_AUDIENCE: &str = "ocm-rs.io/broker";

/// Longest cluster name: a DNS-1123 label, since the name becomes the cluster's namespace.
pub const MAX_CLUSTER_NAME_LENGTH: usize = 63;

/// Names no cluster may take: system and shared namespaces, and the names OCM and ocm-rs use
/// for their own namespaces and groups. A cluster's name becomes a namespace the hub grants its
/// agents lease, event and work access in, so a cluster named like one of these would be given
/// rights over it.
pub const RESERVED_CLUSTER_NAMES: &[&str] = &["default", "managed-clusters"];

/// Prefixes no cluster name may start with (`kube-system`, `kube-public`, `kube-node-lease`,
/// `open-cluster-management-hub`, `open-cluster-management-agent`, …).
pub const RESERVED_CLUSTER_NAME_PREFIXES: &[&str] = &["kube-", "open-cluster-management"];

/// Why a name cannot be a managed cluster's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterNameError {
    #[error("a cluster name must not be empty")]
    Empty,
    #[error("cluster name {0}… is longer than {MAX_CLUSTER_NAME_LENGTH} characters")]
    TooLong(String),
    #[error(
        "cluster name {0:?} is not a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
    )]
    NotALabel(String),
    #[error("cluster name {0:?} is reserved for the hub's own namespaces and groups")]
    Reserved(String),
}

/// Checks that `name` may name a managed cluster: a DNS-1123 label (as OCM's webhook requires)
/// that is not reserved. The error quotes at most the first [`MAX_CLUSTER_NAME_LENGTH`]
/// characters of the name, so a hostile name cannot blow up a log line.
pub fn validate_cluster_name(name: &str) -> Result<(), ClusterNameError> {
    if name.is_empty() {
        return Err(ClusterNameError::Empty);
    }
    if name.len() > MAX_CLUSTER_NAME_LENGTH {
        return Err(ClusterNameError::TooLong(truncated(
            name,
            MAX_CLUSTER_NAME_LENGTH,
        )));
    }
    let bytes = name.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.iter().all(|b| alphanumeric(b) || *b == b'-')
        || !bytes.first().is_some_and(alphanumeric)
        || !bytes.last().is_some_and(alphanumeric)
    {
        return Err(ClusterNameError::NotALabel(name.to_owned()));
    }
    if RESERVED_CLUSTER_NAMES.contains(&name)
        || RESERVED_CLUSTER_NAME_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
    {
        return Err(ClusterNameError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// At most `max` characters of `text`, for logs and error messages that quote what a peer sent.
pub fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_dns_labels() {
        for good in ["cluster1", "a", "prod-eu-1", "0abc", &"a".repeat(63)] {
            assert_eq!(validate_cluster_name(good), Ok(()), "{good}");
        }
        for bad in ["", "Cluster1", "a_b", "-a", "a-", "a.b", "a:b", "ä", "a b"] {
            assert!(validate_cluster_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            validate_cluster_name(&"a".repeat(64)),
            Err(ClusterNameError::TooLong(_))
        ));
    }

    #[test]
    fn system_and_shared_namespaces_are_not_cluster_names() {
        for reserved in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "managed-clusters",
            "open-cluster-management",
            "open-cluster-management-hub",
            "open-cluster-management-agent",
        ] {
            assert_eq!(
                validate_cluster_name(reserved),
                Err(ClusterNameError::Reserved(reserved.to_owned()))
            );
        }
        assert_eq!(validate_cluster_name("kubernetes"), Ok(()));
    }

    #[test]
    fn an_agent_user_names_its_cluster() {
        assert_eq!(
            agent_user_cluster("system:open-cluster-management:cluster1:agent1"),
            Some("cluster1")
        );
        for other in [
            "system:open-cluster-management:cluster1",
            "system:open-cluster-management:cluster:c1:addon:a:agent:b",
            "system:open-cluster-management::agent1",
            "system:serviceaccount:open-cluster-management:bootstrap",
            "admin",
        ] {
            assert_eq!(agent_user_cluster(other), None, "{other}");
        }
    }

    #[test]
    fn a_long_name_is_quoted_only_in_part() {
        let name = "x".repeat(2 << 20);
        let message = validate_cluster_name(&name).unwrap_err().to_string();
        assert!(message.len() < 200, "{}", message.len());
        assert_eq!(truncated("abc", 2), "ab…");
        assert_eq!(truncated("ab", 2), "ab");
    }
}
