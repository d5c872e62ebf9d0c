//! One watch of ManagedClusters for the registration controllers that act on whole clusters
//! (acceptance, cleanup, availability, cluster sets): one cache instead of one each, kept
//! without managed fields.
//!
//! Each controller cached every ManagedCluster in full before, managed fields included, and
//! those caches were the largest part of the hub's memory per cluster (about 17 KiB each at
//! 1,000 clusters, measured with heaptrack; the managed fields were 14.5 KiB of it). Sharing
//! the watch also takes three watches off the apiserver. The cluster-set controller, which
//! recomputes from the whole cache, joined later and saves another copy of every cluster.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::kube::runtime::reflector::{self, Store, store::Writer};
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::slim::drop_managed_fields;

/// How many changes a subscriber may fall behind before the watch waits for it. Controllers
/// take their triggers into their own queues at once, so this is rarely reached.
const SUBSCRIBER_BUFFER: usize = 1_024;

/// The shared ManagedCluster cache and its subscribers. Take every subscription before
/// [`SharedClusters::run`]: a subscriber sees the changes from when it subscribed.
#[derive(Debug)]
pub struct SharedClusters {
    store: Store<ManagedCluster>,
    writer: Writer<ManagedCluster>,
    /// Woken on every change, deletions included (see [`SharedClusters::notify_changes`]).
    on_change: Vec<Arc<Notify>>,
}

impl Default for SharedClusters {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedClusters {
    pub fn new() -> Self {
        let (store, writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
        Self {
            store,
            writer,
            on_change: Vec::new(),
        }
    }

    /// Wakes `changed` (one permit, so a wake between two waits is not lost) on every change
    /// the watch sees, deletions included: for a controller that recomputes from the whole
    /// cache rather than acting on one cluster, such as the cluster sets'.
    pub fn notify_changes(&mut self, changed: Arc<Notify>) {
        self.on_change.push(changed);
    }

    /// The cache: every ManagedCluster, without managed fields.
    pub fn store(&self) -> Store<ManagedCluster> {
        self.store.clone()
    }

    /// A controller's view: the cache, and every cluster the watch lists and each one again
    /// when it changes (not when it is deleted), which is what a controller is triggered by.
    pub fn feed(&self) -> ClusterFeed {
        // A shared writer always has a dispatcher, so this is one handle, never none.
        let trigger = futures::stream::iter(self.writer.subscribe()).flatten();
        ClusterFeed {
            trigger: trigger.boxed(),
            store: self.store(),
        }
    }

    /// Watches ManagedClusters into the cache and out to the subscribers until `cancel`, and
    /// starts `controllers` (each on its own task) once the cache holds the first full
    /// listing; returns when they have ended too.
    ///
    /// Why the controllers are started here rather than left to wait for the cache: kube's
    /// readiness signal (`Store::wait_until_ready`, a oneshot behind a mutex) wakes only the
    /// last of several concurrent waiters, and each kube Controller waits for its cache, so the
    /// second controller sharing a cache would wait forever. One task waits here; after that
    /// the signal is remembered and every later wait returns at once.
    pub async fn run(
        self,
        client: Client,
        cancel: CancellationToken,
        controllers: Vec<BoxFuture<'static, ()>>,
    ) {
        let cache = self.store.clone();
        let controllers = tokio::spawn(async move {
            if cache.wait_until_ready().await.is_err() {
                return;
            }
            let running: Vec<_> = controllers.into_iter().map(tokio::spawn).collect();
            for controller in running {
                if let Err(err) = controller.await {
                    tracing::error!(%err, "a ManagedCluster controller failed");
                }
            }
        });
        let clusters: Api<ManagedCluster> = Api::all(client);
        let on_change = self.on_change;
        let watch = watcher(clusters, watcher::Config::default())
            .default_backoff()
            .modify(drop_managed_fields)
            .reflect_shared(self.writer)
            .for_each(move |event| {
                match event {
                    Ok(_) => on_change.iter().for_each(|changed| changed.notify_one()),
                    Err(err) => tracing::debug!(%err, "ManagedCluster watch interrupted"),
                }
                async {}
            });
        tokio::select! {
            () = cancel.cancelled() => {}
            () = watch => {}
        }
        // The controllers end on `cancel` too; with the watch gone, one still waiting for the
        // cache is told it never will be.
        if let Err(err) = controllers.await {
            tracing::error!(%err, "starting the ManagedCluster controllers failed");
        }
    }
}

/// What a controller takes from [`SharedClusters`]: its trigger and the cache.
pub struct ClusterFeed {
    pub trigger: BoxStream<'static, Arc<ManagedCluster>>,
    pub store: Store<ManagedCluster>,
}

impl std::fmt::Debug for ClusterFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterFeed")
            .field("cached", &self.store.len())
            .finish_non_exhaustive()
    }
}
