//! The ManagedCluster watch that acceptance, cleanup and availability share
//! (`registration::clusters`), on a real apiserver: every controller started on it is triggered
//! by every cluster, listed or created later; the cache keeps no managed fields; and controllers
//! that each wait for the cache, as kube's Controllers do, all start (kube's readiness signal
//! wakes only one of several waiters, so this fails if they are started before the cache is
//! ready); on cancel the watch and its controllers end.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec};
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, ResourceExt as _};
use ocm_hub_server::registration::clusters::SharedClusters;
use ocm_testenv::Cluster;
use tokio_util::sync::CancellationToken;

fn cluster(name: &str) -> ManagedCluster {
    ManagedCluster::new(
        name,
        ManagedClusterSpec {
            hub_accepts_client: true,
            ..ManagedClusterSpec::default()
        },
    )
}

/// What a controller saw: (controller, cluster, it had managed fields, cache size at start).
type Seen = (usize, String, bool, usize);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_cluster_cache_triggers_every_controller_and_keeps_no_managed_fields() {
    let hub = Cluster::start("shared-clusters").await.unwrap();
    let kube = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    // One cluster before the watch starts (seen in its listing), one after (seen as a change).
    clusters
        .create(&PostParams::default(), &cluster("listed"))
        .await
        .unwrap();

    let cancel = CancellationToken::new();
    let shared = SharedClusters::new();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let controllers = (0..3)
        .map(|controller| {
            let feed = shared.feed();
            let seen = Arc::clone(&seen);
            async move {
                // As a kube Controller does before it reconciles anything.
                feed.store.wait_until_ready().await.unwrap();
                let cached = feed.store.len();
                feed.trigger
                    .for_each(|cluster| {
                        seen.lock().unwrap().push((
                            controller,
                            cluster.name_any(),
                            cluster.metadata.managed_fields.is_some(),
                            cached,
                        ));
                        async {}
                    })
                    .await;
            }
            .boxed()
        })
        .collect();
    let store = shared.store();
    let running = tokio::spawn(shared.run(kube.clone(), cancel.clone(), controllers));
    clusters
        .create(&PostParams::default(), &cluster("created"))
        .await
        .unwrap();

    let wanted: BTreeSet<(usize, String)> = (0..3)
        .flat_map(|c| [(c, "listed".to_owned()), (c, "created".to_owned())])
        .collect();
    ocm_testenv::eventually(
        "every controller triggered by both clusters",
        Duration::from_secs(30),
        async || {
            let seen = seen.lock().unwrap();
            let got: BTreeSet<(usize, String)> = seen
                .iter()
                .map(|(c, name, ..)| (*c, name.clone()))
                .collect();
            (got == wanted).then_some(())
        },
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, _, managed_fields, _)| !managed_fields),
        "a controller was given managed fields: {seen:?}"
    );
    assert!(
        seen.iter().all(|(.., cached)| *cached >= 1),
        "a controller started before the first listing was cached: {seen:?}"
    );
    let cached = store.state();
    assert_eq!(cached.len(), 2);
    assert!(cached.iter().all(|c| c.metadata.managed_fields.is_none()));

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the watch and its controllers end on cancel")
        .unwrap();
    hub.stop();
}
