//! Drift of what the hub grants each cluster: the cluster's namespace, ClusterRole,
//! ClusterRoleBinding and RoleBindings (all carrying the cluster label) changed or deleted by
//! someone other than the hub. Each such change names its cluster, whose grants the acceptance
//! controller then applies again at once — instead of re-applying every cluster's grants on a
//! short timer, which at ten thousand clusters was a third of the apiserver's requests.
//!
//! The hub's own applies are recognised by their managed fields (only the hub's field manager);
//! an apply that changes nothing makes no event at all.

use futures::{Stream, StreamExt as _};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::core::PartialObjectMeta;
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::csr::CLUSTER_NAME_LABEL;

/// The cluster whose grants `event` shows someone else changed, if any. The first listing
/// names none: the controller reconciles every cluster when it starts anyway.
pub fn drifted<K>(
    event: &watcher::Event<PartialObjectMeta<K>>,
    field_manager: &str,
) -> Option<String> {
    let (object, deleted) = match event {
        watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone => {
            return None;
        }
        watcher::Event::Apply(object) => (object, false),
        watcher::Event::Delete(object) => (object, true),
    };
    let meta = &object.metadata;
    if !deleted && as_applied(meta, field_manager) {
        return None;
    }
    cluster_of(meta).map(str::to_owned)
}

/// Whether a granted object is still as `field_manager` applied it, by its metadata: written by
/// no other field manager, and not being deleted.
pub fn as_applied(meta: &ObjectMeta, field_manager: &str) -> bool {
    meta.deletion_timestamp.is_none()
        && meta
            .managed_fields
            .iter()
            .flatten()
            .all(|entry| entry.manager.as_deref() == Some(field_manager))
}

/// The cluster a granted object is labelled for.
pub fn cluster_of(meta: &ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()
        .and_then(|labels| labels.get(CLUSTER_NAME_LABEL))
        .map(String::as_str)
        .filter(|cluster| !cluster.is_empty())
}

/// Clusters whose grants drifted, from metadata-only watches of the labelled objects; the
/// watches restart by themselves after errors.
pub fn clusters(
    client: &Client,
    field_manager: &'static str,
) -> impl Stream<Item = String> + Send + 'static {
    futures::stream::select_all([
        watch(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            field_manager,
        ),
        watch(
            Api::<PartialObjectMeta<ClusterRole>>::all(client.clone()),
            field_manager,
        ),
        watch(
            Api::<PartialObjectMeta<ClusterRoleBinding>>::all(client.clone()),
            field_manager,
        ),
        watch(
            Api::<PartialObjectMeta<RoleBinding>>::all(client.clone()),
            field_manager,
        ),
    ])
}

fn watch<K>(
    api: Api<PartialObjectMeta<K>>,
    field_manager: &'static str,
) -> std::pin::Pin<Box<dyn Stream<Item = String> + Send>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let config = watcher::Config::default().labels(CLUSTER_NAME_LABEL);
    Box::pin(watcher(api, config).default_backoff().filter_map(move |event| {
        let cluster = match event {
            Ok(event) => drifted(&event, field_manager),
            Err(err) => {
                tracing::warn!(%kind, %err, "watch of granted objects failed; retrying");
                None
            }
        };
        if let Some(cluster) = &cluster {
            tracing::info!(%cluster, %kind, "a granted object changed by someone else; applying again");
        }
        std::future::ready(cluster)
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        ManagedFieldsEntry, ObjectMeta, Time,
    };

    use super::*;

    fn binding(managers: &[&str], deleting: bool) -> PartialObjectMeta<RoleBinding> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some("open-cluster-management:managedcluster:c1:work".to_owned()),
                namespace: Some("c1".to_owned()),
                labels: Some(BTreeMap::from([(
                    CLUSTER_NAME_LABEL.to_owned(),
                    "c1".to_owned(),
                )])),
                managed_fields: Some(
                    managers
                        .iter()
                        .map(|m| ManagedFieldsEntry {
                            manager: Some((*m).to_owned()),
                            ..ManagedFieldsEntry::default()
                        })
                        .collect(),
                ),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    #[test]
    fn the_hubs_own_applies_are_not_drift_but_anothers_change_or_a_deletion_is() {
        let own = watcher::Event::Apply(binding(&["ocm-hub"], false));
        assert_eq!(drifted(&own, "ocm-hub"), None);
        let edited = watcher::Event::Apply(binding(&["ocm-hub", "kubectl-edit"], false));
        assert_eq!(drifted(&edited, "ocm-hub").as_deref(), Some("c1"));
        let deleted = watcher::Event::Delete(binding(&["ocm-hub"], false));
        assert_eq!(drifted(&deleted, "ocm-hub").as_deref(), Some("c1"));
        let deleting = watcher::Event::Apply(binding(&["ocm-hub"], true));
        assert_eq!(drifted(&deleting, "ocm-hub").as_deref(), Some("c1"));
    }

    #[test]
    fn the_first_listing_names_no_cluster() {
        let listed = watcher::Event::InitApply(binding(&["kubectl-edit"], false));
        assert_eq!(drifted(&listed, "ocm-hub"), None);
        assert_eq!(
            drifted(
                &watcher::Event::<PartialObjectMeta<RoleBinding>>::InitDone,
                "ocm-hub"
            ),
            None
        );
    }
}
