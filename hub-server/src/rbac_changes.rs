//! Drops cached authorization decisions when the hub's RBAC changes, so grants can be reused
//! for long (`--access-cache-ttl`, default 10 minutes) without a revoked permission outliving
//! its Role or binding: with ten thousand agents, a review per agent per minute was the largest
//! steady load the hub put on its apiserver.
//!
//! A Role or RoleBinding only grants in its namespace, which is the cluster the decisions are
//! about; a ClusterRole or ClusterRoleBinding carrying the cluster label is that cluster's; any
//! other cluster-scoped change (an aggregated role, a hand-made binding) may grant anyone, so it
//! drops everything. A restarted watch may have missed changes, so its listing does too.
//!
//! The same watches feed the hub's [`RbacIndex`], which allows agents' requests without asking
//! the apiserver.

use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::auth::SubjectAccessReviewAuthorizer;
use crate::csr::CLUSTER_NAME_LABEL;
use crate::rbac_index::{RbacChange, RbacIndex, RbacKind, RbacObject};

/// Which cached decisions an RBAC change makes stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Nothing,
    /// Decisions about requests in this namespace.
    Namespace(String),
    /// Decisions about this cluster (its namespace and its agents).
    Cluster(String),
    Everything,
}

/// What `event` (of a namespaced kind or not) makes stale.
pub fn stale<K: Resource>(event: &watcher::Event<K>, namespaced: bool) -> Stale {
    let object = match event {
        watcher::Event::Init | watcher::Event::InitApply(_) => return Stale::Nothing,
        watcher::Event::InitDone => return Stale::Everything,
        watcher::Event::Apply(object) | watcher::Event::Delete(object) => object,
    };
    let meta = object.meta();
    if namespaced {
        return meta
            .namespace
            .clone()
            .map_or(Stale::Everything, Stale::Namespace);
    }
    match meta.labels.as_ref().and_then(|l| l.get(CLUSTER_NAME_LABEL)) {
        Some(cluster) if !cluster.is_empty() => Stale::Cluster(cluster.clone()),
        _ => Stale::Everything,
    }
}

/// Watches Roles, RoleBindings, ClusterRoles and ClusterRoleBindings until `cancel`, keeping
/// `index` up to date and dropping what each change makes stale from `authorizer`'s cache.
pub async fn run(
    client: Client,
    authorizer: Arc<SubjectAccessReviewAuthorizer>,
    index: RbacIndex,
    cancel: CancellationToken,
) {
    let changes = futures::stream::select_all([
        changes(Api::<Role>::all(client.clone())),
        changes(Api::<RoleBinding>::all(client.clone())),
        changes(Api::<ClusterRole>::all(client.clone())),
        changes(Api::<ClusterRoleBinding>::all(client)),
    ]);
    let mut changes = std::pin::pin!(changes);
    loop {
        let (stale, change) = tokio::select! {
            () = cancel.cancelled() => return,
            next = changes.next() => match next {
                Some(next) => next,
                None => return,
            },
        };
        // The index first: a decision the cache no longer holds is made from it.
        index.apply(change);
        match stale {
            Stale::Nothing => {}
            Stale::Namespace(namespace) => authorizer.forget_namespace(&namespace),
            Stale::Cluster(cluster) => authorizer.forget_cluster(&cluster),
            Stale::Everything => {
                tracing::debug!("RBAC changed for anyone: authorization decisions dropped");
                authorizer.forget_all();
            }
        }
    }
}

/// One kind's watch as what each event makes stale and the change it makes to the index.
fn changes<K>(api: Api<K>) -> std::pin::Pin<Box<dyn Stream<Item = (Stale, RbacChange)> + Send>>
where
    K: RbacObject + Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let name = K::kind(&K::DynamicType::default()).into_owned();
    let namespaced = matches!(K::KIND, RbacKind::Role | RbacKind::RoleBinding);
    Box::pin(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| {
                let next = match event {
                    Ok(event) => {
                        let stale = stale(&event, namespaced);
                        let change = match event {
                            watcher::Event::Init => RbacChange::Relisting(K::KIND),
                            watcher::Event::InitDone => RbacChange::Listed(K::KIND),
                            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                                object.change(false)
                            }
                            watcher::Event::Delete(object) => object.change(true),
                        };
                        Some((stale, change))
                    }
                    Err(err) => {
                        // The watcher resumes (or relists, which drops everything) by itself.
                        tracing::warn!(kind = %name, %err, "RBAC watch failed; retrying");
                        None
                    }
                };
                std::future::ready(next)
            }),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use ocm_api::kube::core::PartialObjectMeta;

    use super::*;

    fn meta<K>(namespace: Option<&str>, cluster: Option<&str>) -> PartialObjectMeta<K> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some("x".to_owned()),
                namespace: namespace.map(str::to_owned),
                labels: cluster
                    .map(|c| BTreeMap::from([(CLUSTER_NAME_LABEL.to_owned(), c.to_owned())])),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    #[test]
    fn namespaced_changes_touch_their_namespace_labelled_cluster_scoped_ones_their_cluster() {
        let binding = watcher::Event::Apply(meta::<RoleBinding>(Some("c1"), None));
        assert_eq!(stale(&binding, true), Stale::Namespace("c1".to_owned()));
        let role = watcher::Event::Delete(meta::<ClusterRole>(None, Some("c2")));
        assert_eq!(stale(&role, false), Stale::Cluster("c2".to_owned()));
    }

    #[test]
    fn an_unlabelled_cluster_role_or_a_relisting_drops_everything_and_listing_itself_nothing() {
        let aggregated = watcher::Event::Apply(meta::<ClusterRole>(None, None));
        assert_eq!(stale(&aggregated, false), Stale::Everything);
        assert_eq!(
            stale(&watcher::Event::<PartialObjectMeta<Role>>::InitDone, true),
            Stale::Everything
        );
        let listed = watcher::Event::InitApply(meta::<Role>(Some("c1"), None));
        assert_eq!(stale(&listed, true), Stale::Nothing);
        assert_eq!(
            stale(&watcher::Event::<PartialObjectMeta<Role>>::Init, true),
            Stale::Nothing
        );
    }
}
