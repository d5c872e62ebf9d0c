//! `ocm-agent` as a user runs it: OCM's gRPC bootstrap config file (url, caData, token) and the
//! managed cluster's kubeconfig; it joins a real hub, is accepted, reports Available, serves
//! `/healthz`, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::Duration;

use base64::Engine as _;
use ocm_api::cluster::v1::{CONDITION_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::kube::Api;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_testenv::{Cluster, free_port};
use support::{BOOTSTRAP_USER, start_hub};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_agent_binary_joins_with_ocms_bootstrap_config_and_reports_available() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("bin-hub"), Cluster::start("bin-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let hub_kube = hub_cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub(&hub_kube, vec![BOOTSTRAP_USER.into()], &cancel).await;

    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("config.yaml");
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
    std::fs::write(
        &bootstrap,
        format!("url: localhost:{port}\ncaData: {ca_data}\ntoken: {token}\n"),
    )
    .unwrap();
    let health = free_port().unwrap();
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_ocm-agent"))
        .args(["--cluster-name", "cluster1", "--agent-name", "agent1"])
        .arg("--bootstrap-config")
        .arg(&bootstrap)
        .arg("--kubeconfig")
        .arg(spoke_cluster.kubeconfig_path())
        .args(["--health-listen", &format!("127.0.0.1:{health}")])
        .args(["--status-interval", "500ms"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let clusters: Api<ManagedCluster> = Api::all(hub_kube.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while clusters.get_opt("cluster1").await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never joined"
        );
        assert!(agent.try_wait().unwrap().is_none(), "ocm-agent exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    clusters
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": true}})),
        )
        .await
        .unwrap();
    loop {
        let cluster = clusters.get("cluster1").await.unwrap();
        let conditions = cluster.status.map(|s| s.conditions).unwrap_or_default();
        if condition::find(&conditions, CONDITION_AVAILABLE)
            .is_some_and(|c| c.status == ConditionStatus::True)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never Available");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healthz = tokio::net::TcpStream::connect(("127.0.0.1", health)).await;
    assert!(healthz.is_ok(), "no health endpoint");

    let pid = agent.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), agent.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "ocm-agent exited with {status}");
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}
