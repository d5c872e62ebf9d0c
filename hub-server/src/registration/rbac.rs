//! What the hub grants a managed cluster's agents, as OCM's registration does
//! (`pkg/registration/hub/manifests/rbac`), extended to what our broker's access checks
//! ask for (list for resync, watch for subscribe). Pure: objects in, nothing applied here.
//!
//! - A per-cluster ClusterRole and ClusterRoleBinding (`open-cluster-management:managedcluster:
//!   <cluster>`), bound to the cluster's groups. Accepted: CSRs, renewal of its own client
//!   certificate, its own ManagedCluster and status. Not accepted: reading its own ManagedCluster
//!   only (to see when it is accepted).
//! - Accepted only: the cluster namespace, and two RoleBindings there to shared ClusterRoles —
//!   registration (lease, events, add-ons) and work (ManifestWorks and their status). The work
//!   binding carries a finalizer so the work agent keeps access until its works are gone.

use std::collections::BTreeMap;

use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::csr::CLUSTER_NAME_LABEL;

/// The shared ClusterRole a cluster namespace's registration RoleBinding refers to. OCM names it
/// `open-cluster-management:managedcluster:registration`, which is also the per-cluster role
/// name of a cluster called `registration`: ours has a name no cluster name can produce.
pub const SHARED_REGISTRATION_ROLE: &str =
    "open-cluster-management:managedcluster-shared:registration";
/// The shared ClusterRole a cluster namespace's work RoleBinding refers to (see above).
pub const SHARED_WORK_ROLE: &str = "open-cluster-management:managedcluster-shared:work";
/// Keeps the work RoleBinding until the namespace holds no ManifestWork.
pub const WORK_CLEANUP_FINALIZER: &str = "cluster.open-cluster-management.io/manifest-work-cleanup";

/// `open-cluster-management:managedcluster:<cluster>`.
pub fn cluster_role_name(cluster: &str) -> String {
    format!("open-cluster-management:managedcluster:{cluster}")
}

pub fn registration_role_binding_name(cluster: &str) -> String {
    format!("open-cluster-management:managedcluster:{cluster}:registration")
}

pub fn work_role_binding_name(cluster: &str) -> String {
    format!("open-cluster-management:managedcluster:{cluster}:work")
}

fn rule(group: &str, resources: &[&str], verbs: &[&str], names: Option<&str>) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: names.map(|n| vec![n.to_owned()]),
        ..PolicyRule::default()
    }
}

fn labelled(name: String, cluster: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(BTreeMap::from([(
            CLUSTER_NAME_LABEL.to_owned(),
            cluster.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// The per-cluster ClusterRole, full when `accepted`, reduced otherwise.
pub fn cluster_role(cluster: &str, accepted: bool) -> ClusterRole {
    const CLUSTERS: &str = "cluster.open-cluster-management.io";
    let mut rules = vec![rule(
        CLUSTERS,
        &["managedclusters"],
        &["get", "list", "watch"],
        Some(cluster),
    )];
    if accepted {
        rules = vec![
            rule(
                "certificates.k8s.io",
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
                None,
            ),
            rule(
                "register.open-cluster-management.io",
                &["managedclusters/clientcertificates"],
                &["renew"],
                Some(cluster),
            ),
            rule(
                CLUSTERS,
                &["managedclusters"],
                &["get", "list", "update", "watch"],
                Some(cluster),
            ),
            rule(
                CLUSTERS,
                &["managedclusters/status"],
                &["patch", "update"],
                Some(cluster),
            ),
        ];
    }
    ClusterRole {
        metadata: labelled(cluster_role_name(cluster), cluster),
        rules: Some(rules),
        ..ClusterRole::default()
    }
}

fn cluster_groups(cluster: &str) -> Vec<Subject> {
    [
        format!("system:open-cluster-management:{cluster}"),
        format!("open-cluster-management:{cluster}"),
    ]
    .into_iter()
    .map(|name| Subject {
        kind: "Group".to_owned(),
        name,
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        ..Subject::default()
    })
    .collect()
}

pub fn cluster_role_binding(cluster: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: labelled(cluster_role_name(cluster), cluster),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: cluster_role_name(cluster),
        },
        subjects: Some(cluster_groups(cluster)),
    }
}

/// The cluster namespace on the hub, where its works, lease and add-ons live.
pub fn cluster_namespace(cluster: &str) -> Namespace {
    Namespace {
        metadata: labelled(cluster.to_owned(), cluster),
        ..Namespace::default()
    }
}

fn role_binding(cluster: &str, name: String, role: &str) -> RoleBinding {
    let mut metadata = labelled(name, cluster);
    metadata.namespace = Some(cluster.to_owned());
    RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(cluster_groups(cluster)),
    }
}

pub fn registration_role_binding(cluster: &str) -> RoleBinding {
    role_binding(
        cluster,
        registration_role_binding_name(cluster),
        SHARED_REGISTRATION_ROLE,
    )
}

pub fn work_role_binding(cluster: &str) -> RoleBinding {
    let mut binding = role_binding(cluster, work_role_binding_name(cluster), SHARED_WORK_ROLE);
    binding.metadata.finalizers = Some(vec![WORK_CLEANUP_FINALIZER.to_owned()]);
    binding
}

/// Leases, events and add-ons in the cluster namespace.
pub fn shared_registration_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(SHARED_REGISTRATION_ROLE.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                "coordination.k8s.io",
                &["leases"],
                &["get", "list", "watch", "update"],
                None,
            ),
            rule(
                "addon.open-cluster-management.io",
                &["managedclusteraddons"],
                &["get", "list", "watch"],
                None,
            ),
            rule(
                "addon.open-cluster-management.io",
                &["managedclusteraddons/status"],
                &["patch", "update"],
                None,
            ),
            rule(
                "events.k8s.io",
                &["events"],
                &["create", "patch", "update"],
                None,
            ),
        ]),
        ..ClusterRole::default()
    }
}

/// ManifestWorks and their status in the cluster namespace.
pub fn shared_work_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(SHARED_WORK_ROLE.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                "work.open-cluster-management.io",
                &["manifestworks"],
                &["get", "list", "watch", "update", "patch"],
                None,
            ),
            rule(
                "work.open-cluster-management.io",
                &["manifestworks/status"],
                &["patch", "update"],
                None,
            ),
            rule(
                "events.k8s.io",
                &["events"],
                &["create", "patch", "update"],
                None,
            ),
        ]),
        ..ClusterRole::default()
    }
}

/// OCM's bootstrap ClusterRole: what a joining agent's bootstrap credential may do — create
/// and read CSRs and ManagedClusters, and join cluster sets.
pub const BOOTSTRAP_ROLE: &str = "open-cluster-management:bootstrap";

pub fn bootstrap_cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(BOOTSTRAP_ROLE.to_owned()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                "certificates.k8s.io",
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
                None,
            ),
            rule(
                "cluster.open-cluster-management.io",
                &["managedclusters"],
                &["create", "get", "list", "watch"],
                None,
            ),
            rule(
                "cluster.open-cluster-management.io",
                &["managedclustersets/join"],
                &["create"],
                None,
            ),
        ]),
        ..ClusterRole::default()
    }
}

/// Binds the bootstrap role to a ServiceAccount whose tokens agents join with.
pub fn bootstrap_binding(namespace: &str, service_account: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(BOOTSTRAP_ROLE.to_owned()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "ClusterRole".to_owned(),
            name: BOOTSTRAP_ROLE.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: service_account.to_owned(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verbs_on(role: &ClusterRole, resource: &str) -> Vec<String> {
        role.rules
            .iter()
            .flatten()
            .filter(|r| r.resources.iter().flatten().any(|x| x == resource))
            .flat_map(|r| r.verbs.clone())
            .collect()
    }

    #[test]
    fn an_unaccepted_cluster_may_only_read_its_own_managed_cluster() {
        let role = cluster_role("cluster1", false);
        assert_eq!(verbs_on(&role, "managedclusters"), ["get", "list", "watch"]);
        assert!(verbs_on(&role, "certificatesigningrequests").is_empty());
        assert!(verbs_on(&role, "managedclusters/clientcertificates").is_empty());
        let rules = role.rules.unwrap();
        assert_eq!(rules[0].resource_names, Some(vec!["cluster1".to_owned()]));
    }

    #[test]
    fn an_accepted_cluster_may_renew_report_and_ask_for_certificates() {
        let role = cluster_role("cluster1", true);
        assert_eq!(
            verbs_on(&role, "managedclusters/clientcertificates"),
            ["renew"]
        );
        assert_eq!(
            verbs_on(&role, "managedclusters/status"),
            ["patch", "update"]
        );
        assert!(verbs_on(&role, "certificatesigningrequests").contains(&"create".to_owned()));
        let binding = cluster_role_binding("cluster1");
        let groups: Vec<_> = binding
            .subjects
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            groups,
            [
                "system:open-cluster-management:cluster1",
                "open-cluster-management:cluster1"
            ]
        );
    }

    #[test]
    fn the_work_binding_keeps_its_finalizer_and_lives_in_the_cluster_namespace() {
        let binding = work_role_binding("cluster1");
        assert_eq!(binding.metadata.namespace.as_deref(), Some("cluster1"));
        assert_eq!(
            binding.metadata.finalizers,
            Some(vec![WORK_CLEANUP_FINALIZER.to_owned()])
        );
        assert_eq!(binding.role_ref.name, SHARED_WORK_ROLE);
    }
}
