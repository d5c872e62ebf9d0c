//! An agent joins a real hub (`ocm-hub`'s assembly, in process, on a real apiserver) with a
//! bootstrap token: with auto-approval it gets its certificate straight away, and joining again
//! (a restart) works; without, it waits until a person approves its request.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

mod support;

use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::kube::Api;
use ocm_api::kube::api::{ListParams, Patch, PatchParams};
use ocm_spoke_agent::bootstrap::bootstrap;
use ocm_testenv::Cluster;
use support::{BOOTSTRAP_USER, config, start_hub, user_of};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn with_auto_approval_a_bootstrap_token_gets_the_agent_its_certificate_again_and_again() {
    let cluster = Cluster::start("join-auto").await.unwrap();
    let kube = cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub(&kube, vec![BOOTSTRAP_USER.into()], &cancel).await;
    // The hub may still be starting its broker: bootstrap waits for its subscriptions.
    let identity = bootstrap(&config(port, &ca, &token, Duration::from_secs(60)), &cancel)
        .await
        .unwrap();
    assert_eq!(
        user_of(&identity),
        "system:open-cluster-management:cluster1:agent1"
    );
    // A restarted agent without its credential joins again: its ManagedCluster exists already.
    let again = bootstrap(&config(port, &ca, &token, Duration::from_secs(60)), &cancel)
        .await
        .unwrap();
    assert_ne!(again.key, identity.key, "a new key");
    cancel.cancel();
    cluster.stop();
}

#[tokio::test]
async fn without_auto_approval_the_agent_waits_for_a_person() {
    let cluster = Cluster::start("join-manual").await.unwrap();
    let kube = cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub(&kube, Vec::new(), &cancel).await;
    let joining = tokio::spawn({
        let (config, cancel) = (
            config(port, &ca, &token, Duration::from_secs(60)),
            cancel.clone(),
        );
        async move { bootstrap(&config, &cancel).await }
    });
    // A person approves the pending request, as `ocmctl accept` will.
    let csrs: Api<CertificateSigningRequest> = Api::all(kube.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let name = loop {
        let pending = csrs
            .list(&ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1"))
            .await
            .unwrap();
        if let Some(csr) = pending.items.first() {
            break csr.metadata.name.clone().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no CSR arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!joining.is_finished(), "joined without approval");
    let approve = serde_json::json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "ApprovedByHubAdmin", "message": "approved by a test"}]}});
    csrs.patch_subresource(
        "approval",
        &name,
        &PatchParams::default(),
        &Patch::Merge(approve),
    )
    .await
    .unwrap();
    let identity = tokio::time::timeout(Duration::from_secs(30), joining)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        user_of(&identity),
        "system:open-cluster-management:cluster1:agent1"
    );
    cancel.cancel();
    cluster.stop();
}
