//! OCM's CRDs, generated from our types, on a real kube-apiserver: accepted and served,
//! defaulting and validating as OCM's do, readable through our types, and shown by kubectl with
//! OCM's columns.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec, Taint, TaintEffect};
use ocm_api::cluster::v1alpha1::ClusterClaim;
use ocm_api::cluster::v1beta2::{ManagedClusterSet, SelectorType};
use ocm_api::crds;
use ocm_api::kube::Api;
use ocm_api::kube::api::{DynamicObject, PostParams};
use ocm_api::kube::core::{ApiResource, GroupVersionKind};
use ocm_hub_server::crds::install;
use ocm_testenv::Cluster;

#[tokio::test]
async fn ocm_crds_install_default_validate_and_print_as_ocms() {
    let cluster = Cluster::start("crds").await.unwrap();
    let client = cluster.client().unwrap();
    let all: Vec<_> = crds::all().into_iter().map(|(_, crd)| crd).collect();
    install(&client, &all, Duration::from_secs(30))
        .await
        .unwrap();
    // A second install (a hub restart) changes nothing and succeeds.
    install(&client, &all, Duration::from_secs(30))
        .await
        .unwrap();

    // An object with no spec at all, as OCM admits it: stored with its defaults, and readable
    // through our types.
    let gvk = GroupVersionKind::gvk("cluster.open-cluster-management.io", "v1", "ManagedCluster");
    let untyped: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let bare: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": {"name": "bare"}
    }))
    .unwrap();
    untyped.create(&PostParams::default(), &bare).await.unwrap();
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let read = clusters.get("bare").await.unwrap();
    assert_eq!(
        read.spec.lease_duration_seconds, 60,
        "defaulted as OCM's CRD does"
    );
    assert!(!read.spec.hub_accepts_client);

    // Typed create round-trips.
    let mut cluster1 = ManagedCluster::new(
        "cluster1",
        ManagedClusterSpec {
            hub_accepts_client: true,
            lease_duration_seconds: 20,
            taints: vec![Taint {
                key: "cluster.open-cluster-management.io/unreachable".into(),
                value: String::new(),
                effect: TaintEffect::NoSelect,
                time_added: None,
            }],
            ..ManagedClusterSpec::default()
        },
    );
    let created = clusters
        .create(&PostParams::default(), &cluster1)
        .await
        .unwrap();
    cluster1.metadata = created.metadata.clone();
    assert_eq!(created.spec, cluster1.spec);

    // OCM's validation: an unknown taint effect is refused, naming the field.
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": {"name": "bad"},
        "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}
    }))
    .unwrap();
    let err = untyped
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("spec.taints[0].effect") && message.contains("Sometimes"),
        "{message}"
    );

    // ManagedClusterSet defaults to the exclusive cluster-set label.
    let sets: Api<ManagedClusterSet> = Api::all(client.clone());
    let set = sets
        .create(
            &PostParams::default(),
            &ManagedClusterSet::new("dev", Default::default()),
        )
        .await
        .unwrap();
    assert_eq!(
        set.spec.cluster_selector.selector_type,
        SelectorType::ExclusiveClusterSetLabel
    );

    // The spoke's ClusterClaim: value length is validated.
    let claims: Api<ClusterClaim> = Api::all(client.clone());
    let empty_claim = ClusterClaim::new("id.k8s.io", Default::default());
    claims
        .create(&PostParams::default(), &empty_claim)
        .await
        .unwrap();
    let mut long_claim = ClusterClaim::new("too-long", Default::default());
    long_claim.spec.value = "x".repeat(1025);
    let err = claims
        .create(&PostParams::default(), &long_claim)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("spec.value"), "{err}");

    // kubectl shows OCM's columns.
    let kubectl = ocm_testbins::Assets::from_env().unwrap().kubectl;
    let output = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["get", "mcl"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "HUB",
            "ACCEPTED",
            "MANAGED",
            "CLUSTER",
            "URLS",
            "JOINED",
            "AVAILABLE",
            "AGE"
        ]
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("cluster1") && l.contains("true")),
        "{table}"
    );
    cluster.stop();
}
