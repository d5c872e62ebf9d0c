//! The grants that already stand when the hub starts: for each accepted cluster, whether its
//! ClusterRole, ClusterRoleBinding, namespace, two RoleBindings and Lease are all there as
//! acceptance would apply them, touched by no one else. Acceptance applies nothing for those
//! clusters at start (their hourly re-apply still comes).
//!
//! Without this, a restarted hub re-applied every cluster's grants: at 10,000 clusters some
//! 60,000 writes that changed nothing, and the minutes after a restart — when the agents
//! resync and the liveness of clusters that died meanwhile is decided — queued behind them.
//! Reading is a paged listing of each kind (a few requests, not one per object).

use std::collections::{HashMap, HashSet};

use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use ocm_api::kube::api::{ListParams, ObjectList};
use ocm_api::kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::drift::{as_applied, cluster_of};
use super::rbac;
use crate::csr::CLUSTER_NAME_LABEL;
use crate::services::leases::CLUSTER_LEASE;

/// Objects per page of a listing.
const PAGE: u32 = 500;

/// One bit per object an accepted cluster's grants consist of.
const CLUSTER_ROLE: u8 = 1;
const CLUSTER_ROLE_BINDING: u8 = 1 << 1;
const NAMESPACE: u8 = 1 << 2;
const REGISTRATION_BINDING: u8 = 1 << 3;
const WORK_BINDING: u8 = 1 << 4;
const LEASE: u8 = 1 << 5;
const ALL: u8 = (1 << 6) - 1;

/// What stands at start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// Clusters whose grants for being accepted all stand.
    pub accepted_clusters: HashSet<String>,
    /// Whether the two ClusterRoles every cluster namespace's RoleBindings refer to stand.
    pub shared_roles: bool,
}

/// Reads what stands, applied by `field_manager`.
pub async fn read(client: &Client, field_manager: &str) -> Result<Standing, ocm_api::kube::Error> {
    // Side by side: each is a few pages, and a restarted hub's apiserver is busy.
    let (roles, role_bindings, namespaces, bindings, leases, shared_roles) = futures::try_join!(
        tally(
            Api::<ClusterRole>::all(client.clone()),
            field_manager,
            |cluster| vec![(CLUSTER_ROLE, rbac::cluster_role(cluster, true))],
        ),
        tally(
            Api::<ClusterRoleBinding>::all(client.clone()),
            field_manager,
            |cluster| vec![(CLUSTER_ROLE_BINDING, rbac::cluster_role_binding(cluster))],
        ),
        tally(
            Api::<Namespace>::all(client.clone()),
            field_manager,
            |cluster| vec![(NAMESPACE, rbac::cluster_namespace(cluster))],
        ),
        tally(
            Api::<RoleBinding>::all(client.clone()),
            field_manager,
            |cluster| {
                vec![
                    (
                        REGISTRATION_BINDING,
                        rbac::registration_role_binding(cluster),
                    ),
                    (WORK_BINDING, rbac::work_role_binding(cluster)),
                ]
            },
        ),
        tally_leases(client),
        shared_roles_stand(client, field_manager),
    )?;
    let mut found = roles;
    for part in [role_bindings, namespaces, bindings, leases] {
        for (cluster, bits) in part {
            *found.entry(cluster).or_default() |= bits;
        }
    }
    Ok(Standing {
        accepted_clusters: found
            .into_iter()
            .filter(|(_, bits)| *bits == ALL)
            .map(|(cluster, _)| cluster)
            .collect(),
        shared_roles,
    })
}

/// The clusters whose cluster Lease exists. The Lease is the agents' to renew: that it exists
/// is what acceptance ensures.
async fn tally_leases(client: &Client) -> Result<HashMap<String, u8>, ocm_api::kube::Error> {
    let mut found = HashMap::new();
    let leases = Api::<Lease>::all(client.clone());
    let mut params = ListParams::default().labels(CLUSTER_NAME_LABEL).limit(PAGE);
    loop {
        let page = leases.list_metadata(&params).await?;
        for lease in &page.items {
            let meta = &lease.metadata;
            if let Some(cluster) = cluster_of(meta)
                && meta.name.as_deref() == Some(CLUSTER_LEASE)
                && meta.namespace.as_deref() == Some(cluster)
            {
                found.insert(cluster.to_owned(), LEASE);
            }
        }
        let Some(token) = next_page(&page) else {
            return Ok(found);
        };
        params = params.continue_token(&token);
    }
}

/// Whether the two ClusterRoles every cluster namespace's RoleBindings refer to stand.
async fn shared_roles_stand(
    client: &Client,
    field_manager: &str,
) -> Result<bool, ocm_api::kube::Error> {
    let roles = Api::<ClusterRole>::all(client.clone());
    let mut stand = true;
    for desired in [rbac::shared_registration_role(), rbac::shared_work_role()] {
        let name = desired.metadata.name.clone().unwrap_or_default();
        let actual = roles.get_opt(&name).await?;
        stand &= actual.is_some_and(|actual| stands(&desired, &actual, field_manager));
    }
    Ok(stand)
}

/// Lists every object of `api`'s kind that carries the cluster label: for each cluster, the
/// bits of those that stand as one of the objects `expected` says it is granted.
async fn tally<K>(
    api: Api<K>,
    field_manager: &str,
    expected: impl Fn(&str) -> Vec<(u8, K)>,
) -> Result<HashMap<String, u8>, ocm_api::kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let mut found = HashMap::new();
    let mut params = ListParams::default().labels(CLUSTER_NAME_LABEL).limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        for actual in &page.items {
            let meta = actual.meta();
            let Some(cluster) = cluster_of(meta) else {
                continue;
            };
            for (bit, desired) in expected(cluster) {
                if desired.meta().name == meta.name
                    && desired.meta().namespace == meta.namespace
                    && stands(&desired, actual, field_manager)
                {
                    *found.entry(cluster.to_owned()).or_default() |= bit;
                }
            }
        }
        let Some(token) = next_page(&page) else {
            return Ok(found);
        };
        params = params.continue_token(&token);
    }
}

fn next_page<K: Clone>(page: &ObjectList<K>) -> Option<String> {
    page.metadata
        .continue_
        .clone()
        .filter(|token| !token.is_empty())
}

/// Whether `actual` is `desired` as applied by `field_manager`: not being deleted, written by
/// no other manager, and holding every field `desired` sets with the same value.
pub fn stands<K: Resource + Serialize>(desired: &K, actual: &K, field_manager: &str) -> bool {
    if !as_applied(actual.meta(), field_manager) {
        return false;
    }
    match (serde_json::to_value(desired), serde_json::to_value(actual)) {
        (Ok(desired), Ok(actual)) => holds(&desired, &actual),
        _ => false,
    }
}

/// Whether `actual` holds every field `desired` sets, with the same value. Lists must match
/// item by item and in length, so a rule the hub no longer grants is seen as a difference;
/// fields the apiserver adds (status, defaults, other labels) are not.
fn holds(desired: &Value, actual: &Value) -> bool {
    match (desired, actual) {
        (Value::Object(desired), Value::Object(actual)) => desired
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|a| holds(value, a))),
        (Value::Array(desired), Value::Array(actual)) => {
            desired.len() == actual.len() && desired.iter().zip(actual).all(|(d, a)| holds(d, a))
        }
        _ => desired == actual,
    }
}

#[cfg(test)]
mod tests {
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    use super::*;

    fn as_stored(mut object: ClusterRole, managers: &[&str]) -> ClusterRole {
        object.metadata.uid = Some("0d4c-uid".to_owned());
        object.metadata.resource_version = Some("42".to_owned());
        object
            .metadata
            .labels
            .get_or_insert_default()
            .insert("added-by-the-apiserver".to_owned(), "x".to_owned());
        object.metadata.managed_fields = Some(
            managers
                .iter()
                .map(|m| ManagedFieldsEntry {
                    manager: Some((*m).to_owned()),
                    ..ManagedFieldsEntry::default()
                })
                .collect(),
        );
        object
    }

    #[test]
    fn a_grant_stored_as_applied_stands_whatever_the_apiserver_added() {
        let desired = rbac::cluster_role("c1", true);
        let stored = as_stored(desired.clone(), &["ocm-hub"]);
        assert!(stands(&desired, &stored, "ocm-hub"));
    }

    #[test]
    fn a_grant_changed_by_another_manager_or_being_deleted_does_not_stand() {
        let desired = rbac::cluster_role("c1", true);
        let edited = as_stored(desired.clone(), &["ocm-hub", "kubectl-edit"]);
        assert!(!stands(&desired, &edited, "ocm-hub"));
        let mut deleting = as_stored(desired.clone(), &["ocm-hub"]);
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(!stands(&desired, &deleting, "ocm-hub"));
    }

    #[test]
    fn a_grant_whose_content_differs_does_not_stand() {
        let desired = rbac::cluster_role("c1", true);
        // The reduced role of a cluster not accepted: fewer rules.
        let reduced = as_stored(rbac::cluster_role("c1", false), &["ocm-hub"]);
        assert!(!stands(&desired, &reduced, "ocm-hub"));
        // One rule more than the hub grants.
        let mut extra = as_stored(desired.clone(), &["ocm-hub"]);
        let mut rules = extra.rules.clone().unwrap_or_default();
        rules.push(rules[0].clone());
        extra.rules = Some(rules);
        assert!(!stands(&desired, &extra, "ocm-hub"));
        // A verb changed.
        let mut changed = as_stored(desired.clone(), &["ocm-hub"]);
        if let Some(rule) = changed.rules.as_mut().and_then(|r| r.first_mut()) {
            rule.verbs = vec!["get".to_owned()];
        }
        assert!(!stands(&desired, &changed, "ocm-hub"));
        // The cluster label gone.
        let mut unlabelled = as_stored(desired.clone(), &["ocm-hub"]);
        unlabelled.metadata.labels = None;
        assert!(!stands(&desired, &unlabelled, "ocm-hub"));
    }
}
