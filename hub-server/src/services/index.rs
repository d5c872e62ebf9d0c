//! The hub's objects of one registration kind, by cluster, kept from the same watch that
//! publishes their changes ([`super::source`]). A spec resync is answered from here: with ten
//! thousand agents resubscribing after a network blip, a LIST per agent would be ten thousand
//! requests to the apiserver for objects the hub already holds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ocm_api::kube::Resource;
use ocm_transport::registration::RegistrationKind;
use tokio::sync::watch;
use tonic::Status;

/// How long a resync waits for the first listing after the hub started.
const READY_WAIT: Duration = Duration::from_secs(30);

/// Objects by cluster, shared by the watch that fills it and the services that read it.
pub struct ClusterIndex<K> {
    kind: RegistrationKind,
    state: Arc<RwLock<State<K>>>,
    ready: watch::Sender<bool>,
}

impl<K> Clone for ClusterIndex<K> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind,
            state: Arc::clone(&self.state),
            ready: self.ready.clone(),
        }
    }
}

impl<K> std::fmt::Debug for ClusterIndex<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIndex")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

struct State<K> {
    /// cluster → uid → object.
    by_cluster: HashMap<String, HashMap<String, Arc<K>>>,
    /// uid → cluster, so an object whose cluster changed leaves its old one.
    cluster_of: HashMap<String, String>,
    /// A relisting in progress: replaces everything when it is done.
    relisting: Option<Vec<Arc<K>>>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        Self {
            by_cluster: HashMap::new(),
            cluster_of: HashMap::new(),
            relisting: None,
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone> ClusterIndex<K> {
    pub fn new(kind: RegistrationKind) -> Self {
        Self {
            kind,
            state: Arc::default(),
            ready: watch::Sender::new(false),
        }
    }

    /// The objects of `cluster`, once the first listing is complete (a resync answered from a
    /// partial listing would tell the agent to delete what the hub has not listed yet).
    pub async fn list(&self, cluster: &str) -> Result<Vec<Arc<K>>, Status> {
        self.list_within(cluster, READY_WAIT).await
    }

    async fn list_within(&self, cluster: &str, wait: Duration) -> Result<Vec<Arc<K>>, Status> {
        let mut ready = self.ready.subscribe();
        match tokio::time::timeout(wait, ready.wait_for(|ready| *ready)).await {
            Ok(Ok(_)) => {}
            _ => {
                return Err(Status::unavailable(format!(
                    "the hub has not listed its {} yet; retry",
                    self.kind.data_type()
                )));
            }
        }
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .by_cluster
            .get(cluster)
            .map(|objects| objects.values().cloned().collect())
            .unwrap_or_default())
    }

    /// Whether the first listing is complete.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// A listing starts (after a restart of the watch); until it is done the old picture stays.
    pub fn relist_started(&self) {
        self.write().relisting = Some(Vec::new());
    }

    pub fn relisted(&self, object: &K) {
        let object = Arc::new(slim(object));
        if let Some(listed) = self.write().relisting.as_mut() {
            listed.push(object);
        }
    }

    /// The listing is complete: it replaces the picture, and resyncs may be answered.
    pub fn relist_done(&self) {
        {
            let mut state = self.write();
            let listed = state.relisting.take().unwrap_or_default();
            state.by_cluster.clear();
            state.cluster_of.clear();
            for object in listed {
                insert(self.kind, &mut state, object);
            }
        }
        self.ready.send_replace(true);
    }

    pub fn applied(&self, object: &K) {
        let object = Arc::new(slim(object));
        insert(self.kind, &mut self.write(), object);
    }

    pub fn deleted(&self, object: &K) {
        let uid = object.meta().uid.clone().unwrap_or_default();
        remove(&mut self.write(), &uid);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<K>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The object without its managed fields, which agents never read and which are often larger
/// than the rest of a Lease.
fn slim<K: Resource + Clone>(object: &K) -> K {
    let mut object = object.clone();
    crate::slim::drop_managed_fields(&mut object);
    object
}

fn insert<K: Resource<DynamicType = ()>>(
    kind: RegistrationKind,
    state: &mut State<K>,
    object: Arc<K>,
) {
    let uid = object.meta().uid.clone().unwrap_or_default();
    let cluster = kind.cluster_name(object.meta());
    if state.cluster_of.get(&uid) != Some(&cluster) {
        remove(state, &uid);
    }
    state.cluster_of.insert(uid.clone(), cluster.clone());
    state
        .by_cluster
        .entry(cluster)
        .or_default()
        .insert(uid, object);
}

fn remove<K>(state: &mut State<K>, uid: &str) {
    let Some(cluster) = state.cluster_of.remove(uid) else {
        return;
    };
    if let Some(objects) = state.by_cluster.get_mut(&cluster) {
        objects.remove(uid);
        if objects.is_empty() {
            state.by_cluster.remove(&cluster);
        }
    }
}

#[cfg(test)]
mod tests {
    use ocm_api::k8s_openapi::api::coordination::v1::Lease;
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn lease(namespace: &str, uid: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("managed-cluster-lease".to_owned()),
                namespace: Some(namespace.to_owned()),
                uid: Some(uid.to_owned()),
                managed_fields: Some(vec![Default::default()]),
                ..ObjectMeta::default()
            },
            ..Lease::default()
        }
    }

    fn uids(objects: &[Arc<Lease>]) -> Vec<String> {
        let mut uids: Vec<String> = objects
            .iter()
            .map(|o| o.metadata.uid.clone().unwrap_or_default())
            .collect();
        uids.sort();
        uids
    }

    #[tokio::test]
    async fn a_resync_before_the_first_listing_is_refused_and_after_it_sees_only_its_cluster() {
        let index = ClusterIndex::new(RegistrationKind::Lease);
        let early = index.list_within("a", Duration::from_millis(10)).await;
        assert_eq!(
            early.map(|_| ()).map_err(|s| s.code()),
            Err(tonic::Code::Unavailable)
        );
        index.relist_started();
        index.relisted(&lease("a", "1"));
        index.relisted(&lease("b", "2"));
        index.relist_done();
        let listed = index.list("a").await.unwrap();
        assert_eq!(uids(&listed), ["1"]);
        assert!(listed[0].metadata.managed_fields.is_none());
        assert!(index.list("c").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn changes_move_and_remove_objects_and_a_relisting_replaces_everything() {
        let index = ClusterIndex::new(RegistrationKind::Lease);
        index.relist_started();
        index.relist_done();
        index.applied(&lease("a", "1"));
        index.applied(&lease("a", "2"));
        // The same object now in another namespace (a relabelled CSR, say) leaves "a".
        index.applied(&lease("b", "2"));
        assert_eq!(uids(&index.list("a").await.unwrap()), ["1"]);
        assert_eq!(uids(&index.list("b").await.unwrap()), ["2"]);
        index.deleted(&lease("a", "1"));
        assert!(index.list("a").await.unwrap().is_empty());
        // During a relisting the old picture answers; afterwards only what was listed.
        index.relist_started();
        index.relisted(&lease("c", "3"));
        assert_eq!(uids(&index.list("b").await.unwrap()), ["2"]);
        index.relist_done();
        assert!(index.list("b").await.unwrap().is_empty());
        assert_eq!(uids(&index.list("c").await.unwrap()), ["3"]);
    }
}
