//! `ocmctl` as a hub administrator runs it, against a real hub apiserver with OCM's CRDs.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec};
use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::Api;
use ocm_api::kube::api::PostParams;
use ocm_testenv::Cluster;

fn ocmctl(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ocmctl"))
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn accept_approves_the_clusters_requests_and_get_clusters_shows_it() {
    let hub = Cluster::start("ocmctl").await.unwrap();
    let kube = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    let (ok, out, _) = ocmctl(&hub, &["get", "clusters"]);
    assert!(ok && out.contains("No clusters"), "{out}");

    // A cluster that asked to join: its ManagedCluster and a pending certificate request.
    Api::<ManagedCluster>::all(kube.clone())
        .create(
            &PostParams::default(),
            &ManagedCluster::new("cluster1", ManagedClusterSpec::default()),
        )
        .await
        .unwrap();
    request_certificate(&kube, "cluster1", "cluster1-abcde", "a", BOOTSTRAP_USER).await;
    // Someone else's request for the same cluster is left alone.
    request_certificate(&kube, "cluster1", "cluster1-other", "b", "alice").await;

    let (ok, out, err) = ocmctl(&hub, &["accept", "--clusters", "cluster1"]);
    assert!(ok, "{err}");
    assert_eq!(out, "cluster1: accepted; approved cluster1-abcde\n");
    assert!(
        err.contains("cluster1-other (requester alice"),
        "the skipped request is named: {err}"
    );
    let csr = Api::<CertificateSigningRequest>::all(kube.clone())
        .get("cluster1-abcde")
        .await
        .unwrap();
    let approved = csr.status.unwrap().conditions.unwrap();
    assert_eq!(approved[0].type_, "Approved");
    assert!(
        Api::<ManagedCluster>::all(kube.clone())
            .get("cluster1")
            .await
            .unwrap()
            .spec
            .hub_accepts_client
    );
    let (ok, out, _) = ocmctl(&hub, &["accept", "--clusters", "cluster1"]);
    assert!(ok);
    assert_eq!(
        out,
        "cluster1: was already accepted; no pending certificate request\n"
    );

    // Two bootstrap requests for one cluster: one of them is not its agent's. Nothing is
    // approved and both are listed, until the administrator says otherwise.
    Api::<ManagedCluster>::all(kube.clone())
        .create(
            &PostParams::default(),
            &ManagedCluster::new("cluster2", ManagedClusterSpec::default()),
        )
        .await
        .unwrap();
    request_certificate(&kube, "cluster2", "cluster2-agent", "x7f2k", BOOTSTRAP_USER).await;
    request_certificate(&kube, "cluster2", "cluster2-evil", "evil", BOOTSTRAP_USER).await;
    let (ok, _, err) = ocmctl(&hub, &["accept", "--clusters", "cluster2"]);
    assert!(!ok);
    assert!(
        err.contains("2 certificate requests waiting")
            && err.contains("cluster2-agent (requester")
            && err.contains("common name system:open-cluster-management:cluster2:evil"),
        "{err}"
    );
    let csrs = Api::<CertificateSigningRequest>::all(kube.clone());
    for name in ["cluster2-agent", "cluster2-evil"] {
        let status = csrs.get(name).await.unwrap().status.unwrap_or_default();
        assert!(
            status.conditions.unwrap_or_default().is_empty(),
            "{name} approved"
        );
    }
    let (ok, out, err) = ocmctl(
        &hub,
        &["accept", "--clusters", "cluster2", "--skip-approve-check"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("approved cluster2-agent, cluster2-evil"),
        "{out}"
    );

    // A cluster that never joined: what to do next.
    let (ok, _, err) = ocmctl(&hub, &["accept", "--clusters", "cluster9"]);
    assert!(!ok);
    assert!(
        err.contains("\"cluster9\" has not joined this hub") && err.contains("--wait"),
        "{err}"
    );

    let (ok, out, _) = ocmctl(&hub, &["get", "clusters"]);
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME       HUB ACCEPTED   MANAGED CLUSTER URLS"),
        "{out}"
    );
    assert!(lines[1].starts_with("cluster1   true"), "{out}");
    let (ok, out, _) = ocmctl(&hub, &["get", "clusters", "-o", "json"]);
    assert!(ok);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed[0]["metadata"]["name"], "cluster1");
    hub.stop();
}

const BOOTSTRAP_USER: &str =
    "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";

/// A pending certificate request for `cluster`'s agent `agent`, as the hub creates it for
/// `requester` (recorded in the `csr-user` annotation).
async fn request_certificate(
    kube: &ocm_api::kube::Client,
    cluster: &str,
    name: &str,
    agent: &str,
    requester: &str,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("system:open-cluster-management:{cluster}:{agent}"),
    );
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    Api::<CertificateSigningRequest>::all(kube.clone())
        .create(
            &PostParams::default(),
            &CertificateSigningRequest {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(BTreeMap::from([(
                        "open-cluster-management.io/cluster-name".to_owned(),
                        cluster.to_owned(),
                    )])),
                    annotations: Some(BTreeMap::from([(
                        "open-cluster-management.io/csr-user".to_owned(),
                        requester.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                spec: CertificateSigningRequestSpec {
                    request: ByteString(request.into_bytes()),
                    signer_name: "open-cluster-management.io/grpc".into(),
                    usages: Some(vec!["client auth".into()]),
                    ..CertificateSigningRequestSpec::default()
                },
                status: None,
            },
        )
        .await
        .unwrap();
}
