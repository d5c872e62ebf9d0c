//! Cluster sets on a real apiserver: the built-in `default` and `global` sets are created,
//! recreated when deleted and their selector edits rolled back (unless annotated
//! `autoupdate: "false"`); a new ManagedCluster is put in `default`; each set's `ClusterSetEmpty`
//! follows its clusters' labels as they change; a binding is Bound exactly while its set exists;
//! and a set's status is written only when it changes (counted by the apiserver).

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec};
use ocm_api::cluster::v1beta2::{
    CLUSTER_SET_LABEL, CONDITION_BOUND, CONDITION_CLUSTER_SET_EMPTY, ManagedClusterSelector,
    ManagedClusterSet, ManagedClusterSetBinding, ManagedClusterSetBindingSpec,
    ManagedClusterSetSpec, SelectorType,
};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement,
};
use ocm_api::kube::api::{DeleteParams, GetParams, Patch, PatchParams, PostParams};
use ocm_api::kube::core::Request;
use ocm_api::kube::{Api, Client};
use ocm_hub_server::registration::clusters::SharedClusters;
use ocm_hub_server::registration::clustersets::{
    self, AUTO_UPDATE_ANNOTATION, DEFAULT_SET, GLOBAL_SET,
};
use ocm_testenv::Cluster;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    ocm_testenv::eventually(what, Duration::from_secs(20), check).await
}

/// A set's `ClusterSetEmpty` as (status, reason, message).
async fn emptiness(
    sets: &Api<ManagedClusterSet>,
    name: &str,
) -> Option<(ConditionStatus, String, String)> {
    let set = sets.get_opt(name).await.unwrap()?;
    let conditions = set.status.map(|s| s.conditions).unwrap_or_default();
    condition::find(&conditions, CONDITION_CLUSTER_SET_EMPTY)
        .map(|c| (c.status, c.reason.clone(), c.message.clone()))
}

/// Waits until set `name` selects `count` clusters, as its status says.
async fn until_selected(sets: &Api<ManagedClusterSet>, name: &str, count: usize) {
    let expected = if count == 0 {
        (
            ConditionStatus::True,
            "NoClusterMatched".to_owned(),
            "No ManagedCluster selected".to_owned(),
        )
    } else {
        (
            ConditionStatus::False,
            "ClustersSelected".to_owned(),
            format!("{count} ManagedClusters selected"),
        )
    };
    eventually(
        &format!("set {name} to select {count} clusters"),
        async || (emptiness(sets, name).await.as_ref() == Some(&expected)).then_some(()),
    )
    .await;
}

async fn until_bound(
    bindings: &Api<ManagedClusterSetBinding>,
    name: &str,
    expected: (ConditionStatus, &str),
) {
    eventually(&format!("binding {name} to be {expected:?}"), async || {
        let binding = bindings.get(name).await.unwrap();
        let conditions = binding.status.map(|s| s.conditions).unwrap_or_default();
        condition::find(&conditions, CONDITION_BOUND)
            .is_some_and(|c| (c.status, c.reason.as_str()) == expected)
            .then_some(())
    })
    .await;
}

async fn set_label(clusters: &Api<ManagedCluster>, cluster: &str, key: &str, value: &str) {
    clusters
        .patch(
            cluster,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {key: value}}})),
        )
        .await
        .unwrap();
}

async fn set_label_of(clusters: &Api<ManagedCluster>, cluster: &str) -> Option<String> {
    clusters
        .get(cluster)
        .await
        .unwrap()
        .metadata
        .labels
        .and_then(|l| l.get(CLUSTER_SET_LABEL).cloned())
}

/// How many ManagedClusterSet status patches the apiserver has accepted (its own request
/// counter), so a test can see writes that changed nothing, which leave no trace in the objects.
async fn status_writes(kube: &Client) -> u64 {
    let request = Request::new("")
        .get("metrics", &GetParams::default())
        .unwrap();
    let metrics = kube.request_text(request).await.unwrap();
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_request_total{")
                && [
                    r#"code="200""#,
                    r#"resource="managedclustersets""#,
                    r#"subresource="status""#,
                    r#"verb="PATCH""#,
                ]
                .iter()
                .all(|label| line.contains(label))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn selector(set: &ManagedClusterSet) -> ManagedClusterSelector {
    set.spec.cluster_selector.clone()
}

fn team_selector() -> serde_json::Value {
    serde_json::json!({"spec": {"clusterSelector": {
        "selectorType": "LabelSelector",
        "labelSelector": {"matchLabels": {"team": "x"}},
    }}})
}

#[tokio::test]
async fn cluster_sets_built_ins_membership_and_bindings() {
    let hub = Cluster::start("clustersets").await.unwrap();
    let kube = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    // As the hub runs it: on the registration controllers' shared ManagedCluster cache, woken
    // by its changes.
    let mut shared = SharedClusters::new();
    let changed = Arc::new(Notify::new());
    shared.notify_changes(Arc::clone(&changed));
    let sets_controller = clustersets::run(kube.clone(), shared.store(), changed, cancel.clone());
    let controller =
        tokio::spawn(shared.run(kube.clone(), cancel.clone(), vec![sets_controller.boxed()]));
    let sets: Api<ManagedClusterSet> = Api::all(kube.clone());
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    let bindings: Api<ManagedClusterSetBinding> = Api::namespaced(kube.clone(), "default");

    // The built-in sets, empty while there are no clusters.
    until_selected(&sets, DEFAULT_SET, 0).await;
    until_selected(&sets, GLOBAL_SET, 0).await;
    let default = sets.get(DEFAULT_SET).await.unwrap();
    assert_eq!(
        selector(&default),
        selector(&clustersets::default_set()),
        "default selects by the set label"
    );
    assert_eq!(
        selector(&sets.get(GLOBAL_SET).await.unwrap()),
        ManagedClusterSelector {
            selector_type: SelectorType::LabelSelector,
            label_selector: Some(LabelSelector::default()),
        },
        "global selects every cluster"
    );

    // A new cluster without a set label is put in default.
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new("cluster1", ManagedClusterSpec::default()),
        )
        .await
        .unwrap();
    eventually("cluster1 to be labelled into default", async || {
        (set_label_of(&clusters, "cluster1").await.as_deref() == Some(DEFAULT_SET)).then_some(())
    })
    .await;
    until_selected(&sets, DEFAULT_SET, 1).await;
    until_selected(&sets, GLOBAL_SET, 1).await;

    // Moving the label moves the cluster: dev gains it, default is empty again, and the
    // non-empty label is left as it is.
    sets.create(
        &PostParams::default(),
        &ManagedClusterSet::new("dev", ManagedClusterSetSpec::default()),
    )
    .await
    .unwrap();
    until_selected(&sets, "dev", 0).await;
    set_label(&clusters, "cluster1", CLUSTER_SET_LABEL, "dev").await;
    until_selected(&sets, "dev", 1).await;
    until_selected(&sets, DEFAULT_SET, 0).await;
    until_selected(&sets, GLOBAL_SET, 1).await;
    assert_eq!(
        set_label_of(&clusters, "cluster1").await.as_deref(),
        Some("dev")
    );

    // A label selector set: clusters whose env is prod or staging.
    let mut by_env = ManagedClusterSet::new("by-env", ManagedClusterSetSpec::default());
    by_env.spec.cluster_selector = ManagedClusterSelector {
        selector_type: SelectorType::LabelSelector,
        label_selector: Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into(), "staging".into()]),
            }]),
        }),
    };
    sets.create(&PostParams::default(), &by_env).await.unwrap();
    until_selected(&sets, "by-env", 0).await;
    clusters
        .create(
            &PostParams::default(),
            &ManagedCluster::new("cluster2", ManagedClusterSpec::default()),
        )
        .await
        .unwrap();
    set_label(&clusters, "cluster1", "env", "prod").await;
    until_selected(&sets, "by-env", 1).await;
    until_selected(&sets, GLOBAL_SET, 2).await;
    until_selected(&sets, DEFAULT_SET, 1).await;
    set_label(&clusters, "cluster2", "env", "staging").await;
    until_selected(&sets, "by-env", 2).await;
    set_label(&clusters, "cluster1", "env", "dev").await;
    until_selected(&sets, "by-env", 1).await;

    // A deleted default comes back (a new object, so a new UID).
    let old_uid = default.metadata.uid.clone();
    sets.delete(DEFAULT_SET, &DeleteParams::default())
        .await
        .unwrap();
    eventually("default to be recreated", async || {
        let set = sets.get_opt(DEFAULT_SET).await.unwrap()?;
        (set.metadata.uid != old_uid).then_some(())
    })
    .await;
    until_selected(&sets, DEFAULT_SET, 1).await;

    // An edit of global's selector is rolled back…
    sets.patch(
        GLOBAL_SET,
        &PatchParams::default(),
        &Patch::Merge(team_selector()),
    )
    .await
    .unwrap();
    eventually("global's selector to be rolled back", async || {
        let global = sets.get(GLOBAL_SET).await.unwrap();
        (selector(&global) == selector(&clustersets::global_set())).then_some(())
    })
    .await;
    until_selected(&sets, GLOBAL_SET, 2).await;

    // …but kept once global is annotated autoupdate=false: its status then follows the edited
    // selector (no cluster has team=x), which shows the controller saw the edit and kept it.
    sets.patch(
        GLOBAL_SET,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({
            "metadata": {"annotations": {AUTO_UPDATE_ANNOTATION: "false"}},
        })),
    )
    .await
    .unwrap();
    sets.patch(
        GLOBAL_SET,
        &PatchParams::default(),
        &Patch::Merge(team_selector()),
    )
    .await
    .unwrap();
    until_selected(&sets, GLOBAL_SET, 0).await;
    let global = sets.get(GLOBAL_SET).await.unwrap();
    assert_eq!(
        global
            .spec
            .cluster_selector
            .label_selector
            .and_then(|s| s.match_labels),
        Some([("team".to_owned(), "x".to_owned())].into()),
        "the annotated edit is kept"
    );

    // Bindings: Bound while their set exists, flipping as sets come and go.
    for (name, set) in [("dev", "dev"), ("qa", "qa")] {
        bindings
            .create(
                &PostParams::default(),
                &ManagedClusterSetBinding::new(
                    name,
                    ManagedClusterSetBindingSpec {
                        cluster_set: set.into(),
                    },
                ),
            )
            .await
            .unwrap();
    }
    until_bound(&bindings, "dev", (ConditionStatus::True, "ClusterSetBound")).await;
    until_bound(
        &bindings,
        "qa",
        (ConditionStatus::False, "ClusterSetNotFound"),
    )
    .await;

    // From here on only qa's status needs writing (when it is created): a label no set selects
    // by, bindings coming and going and dev's deletion write nothing else.
    let before = status_writes(&kube).await;
    assert!(before > 0, "the apiserver counted the status writes so far");
    set_label(&clusters, "cluster2", "color", "blue").await;
    sets.create(
        &PostParams::default(),
        &ManagedClusterSet::new("qa", ManagedClusterSetSpec::default()),
    )
    .await
    .unwrap();
    until_bound(&bindings, "qa", (ConditionStatus::True, "ClusterSetBound")).await;
    sets.delete("dev", &DeleteParams::default()).await.unwrap();
    until_bound(
        &bindings,
        "dev",
        (ConditionStatus::False, "ClusterSetNotFound"),
    )
    .await;
    until_selected(&sets, "qa", 0).await;
    assert_eq!(
        status_writes(&kube).await - before,
        1,
        "only qa's status was written"
    );

    // A deleted cluster leaves its sets at once, not at the next resync (minutes away).
    clusters
        .delete("cluster2", &DeleteParams::default())
        .await
        .unwrap();
    until_selected(&sets, "by-env", 0).await;
    until_selected(&sets, DEFAULT_SET, 0).await;

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .unwrap()
        .unwrap();
    hub.stop();
}
