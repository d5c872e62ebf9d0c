//! `ocm-agent` as a user runs it: OCM's gRPC bootstrap config file (url, caData, token) and the
//! managed cluster's kubeconfig; it joins a real hub, is accepted, reports Available, serves
//! `/healthz`, and stops cleanly on SIGTERM.
//!
//! Its health endpoint, read from the real binary: `/readyz` is 503 while it joins, while the
//! hub has not accepted the cluster and while the hub is unreachable (a [`Relay`] cut), 200
//! otherwise; `/healthz` stays 200 through all of that, and fails while a vital loop is stuck
//! (the managed cluster's apiserver stopped with SIGSTOP, so the registration loop hangs on
//! it); `/metrics` shows the reconnect and the work applied, with latency samples.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::Duration;

use base64::Engine as _;
use ocm_api::cluster::v1::{CONDITION_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::kube::Api;
use ocm_api::kube::api::{ListParams, PostParams};
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::work::v1::{
    CONDITION_APPLIED, Manifest, ManifestWork, ManifestWorkSpec, ManifestsTemplate,
};
use ocm_testenv::{Cluster, Relay, eventually, free_port};
use support::works::holds;
use support::{BOOTSTRAP_USER, http_get, metric, start_hub, try_http_get};
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

/// OCM's gRPC bootstrap config for the hub at `localhost:port`, in `dir`.
fn bootstrap_config(dir: &std::path::Path, port: u16, ca: &str, token: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
    std::fs::write(
        &path,
        format!("url: localhost:{port}\ncaData: {ca_data}\ntoken: {token}\n"),
    )
    .unwrap();
    path
}

/// The real `ocm-agent` for cluster1, health on `health`, with `extra` flags.
fn spawn_agent(
    bootstrap: &std::path::Path,
    spoke: &Cluster,
    health: u16,
    extra: &[&str],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ocm-agent"))
        .args(["--cluster-name", "cluster1", "--agent-name", "agent1"])
        .arg("--bootstrap-config")
        .arg(bootstrap)
        .arg("--kubeconfig")
        .arg(spoke.kubeconfig_path())
        .args(["--health-listen", &format!("127.0.0.1:{health}")])
        .args(["--status-interval", "500ms"])
        .args(extra)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A ConfigMap `name` in `default` for cluster1.
fn config_map_work(name: &str) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: vec![Manifest(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"},
                    "data": {"work": name}
                }))],
            },
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some("cluster1".into());
    work
}

async fn sigterm(mut agent: tokio::process::Child) {
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
}

/// Waits until `path` on the agent's health port answers `status` with a body containing
/// `says`; the body.
async fn answers(health: u16, path: &str, status: u16, says: &str, within: Duration) -> String {
    let what = format!("{path} answering {status} with {says:?}");
    eventually(&what, within, async || {
        let (code, body) = try_http_get(health, path).await.ok()?;
        (code == status && body.contains(says)).then_some(body)
    })
    .await
}

#[tokio::test]
async fn the_agent_is_ready_only_while_registered_and_connected_and_counts_reconnects_and_works() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("ready-hub"), Cluster::start("ready-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let hub_kube = hub_cluster.client().unwrap();
    let cancel = CancellationToken::new();
    // No auto-approval: the join waits for a person, so every step can be seen.
    let (port, ca, token) = start_hub(&hub_kube, Vec::new(), &cancel).await;
    let relay = Relay::start(([127, 0, 0, 1], port).into()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = bootstrap_config(dir.path(), relay.port(), &ca, &token);
    let health = free_port().unwrap();
    // Loops must turn within 10 s: /healthz stays 200 throughout, so they did, cut or not.
    let agent = spawn_agent(
        &bootstrap,
        &spoke_cluster,
        health,
        &["--liveness-stall-timeout", "10s"],
    );
    let healthy = async || {
        let (code, body) = http_get(health, "/healthz").await;
        assert_eq!(code, 200, "/healthz: {body}");
        body
    };
    let within = Duration::from_secs(60);

    // Joining: its request waits for approval.
    answers(health, "/readyz", 503, "joining the hub", within).await;
    assert!(healthy().await.contains("registration: idle"));
    let csrs: Api<CertificateSigningRequest> = Api::all(hub_kube.clone());
    let csr = eventually("the agent's CSR", within, async || {
        let listed = csrs
            .list(&ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1"))
            .await
            .unwrap();
        listed.items.first()?.metadata.name.clone()
    })
    .await;
    let (code, _) = http_get(health, "/readyz").await;
    assert_eq!(code, 503, "ready before its certificate was approved");
    let approve = serde_json::json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "ApprovedByHubAdmin", "message": "approved by a test"}]}});
    csrs.patch_subresource(
        "approval",
        &csr,
        &PatchParams::default(),
        &Patch::Merge(approve),
    )
    .await
    .unwrap();

    // Connected with its own certificate, its ManagedCluster not accepted yet: not ready.
    answers(
        health,
        "/readyz",
        503,
        "waiting for the hub to accept the cluster",
        within,
    )
    .await;
    assert_eq!(metric(health, "ocm_agent_registered", &[]).await, 0.0);
    Api::<ManagedCluster>::all(hub_kube.clone())
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": true}})),
        )
        .await
        .unwrap();
    answers(health, "/readyz", 200, "registered and connected", within).await;
    let live = answers(health, "/healthz", 200, "lease-renewal: running", within).await;
    for vital in ["registration: running", "work-agent: running"] {
        assert!(live.contains(vital), "{live}");
    }
    assert_eq!(metric(health, "ocm_agent_hub_connected", &[]).await, 1.0);
    assert_eq!(metric(health, "ocm_agent_registered", &[]).await, 1.0);
    assert_eq!(
        metric(health, "ocm_agent_hub_open_subscriptions", &[]).await,
        3.0
    );
    for data_type in [
        "cluster.open-cluster-management.io.v1.managedclusters",
        "io.open-cluster-management.works.v1alpha1.manifestbundles",
    ] {
        let label = format!("data_type=\"{data_type}\"");
        eventually(
            &format!("a resync of {data_type} counted"),
            within,
            async || {
                (metric(health, "ocm_agent_resyncs_sent_total", &[&label]).await >= 1.0)
                    .then_some(())
            },
        )
        .await;
    }
    let reconnects_before = metric(health, "ocm_agent_hub_reconnects_total", &[]).await;

    // A ManifestWork: applied, counted, with latency samples.
    let works: Api<ManifestWork> = Api::namespaced(hub_kube.clone(), "cluster1");
    works
        .create(&PostParams::default(), &config_map_work("first"))
        .await
        .unwrap();
    eventually("the first work Applied on the hub", within, async || {
        holds(&works.get("first").await.unwrap(), CONDITION_APPLIED).then_some(())
    })
    .await;
    assert!(
        metric(
            health,
            "ocm_agent_work_applies_total",
            &["outcome=\"applied\""]
        )
        .await
            >= 1.0
    );
    assert!(metric(health, "ocm_agent_work_apply_latency_seconds_count", &[]).await >= 1.0);
    assert!(metric(health, "ocm_agent_work_apply_latency_seconds_sum", &[]).await > 0.0);
    assert!(
        metric(
            health,
            "ocm_agent_work_status_report_latency_seconds_count",
            &[]
        )
        .await
            >= 1.0
    );

    // The hub unreachable: not ready, but alive.
    relay.cut();
    answers(health, "/readyz", 503, "not connected to the hub", within).await;
    assert_eq!(metric(health, "ocm_agent_hub_connected", &[]).await, 0.0);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (code, body) = http_get(health, "/readyz").await;
        assert_eq!(code, 503, "ready while cut off from the hub: {body}");
        healthy().await;
    }
    eventually("the agent trying to reconnect", within, async || {
        (relay.refused() > 0).then_some(())
    })
    .await;
    let (code, body) = http_get(health, "/readyz").await;
    assert_eq!(code, 503, "ready after a refused reconnect: {body}");

    // Back: ready again, a reconnect counted, and works still arrive.
    relay.restore();
    answers(
        health,
        "/readyz",
        200,
        "registered and connected",
        Duration::from_secs(90),
    )
    .await;
    healthy().await;
    assert_eq!(metric(health, "ocm_agent_hub_connected", &[]).await, 1.0);
    assert!(
        metric(health, "ocm_agent_hub_reconnects_total", &[]).await >= reconnects_before + 1.0,
        "no reconnect counted"
    );
    let applied_before = metric(
        health,
        "ocm_agent_work_applies_total",
        &["outcome=\"applied\""],
    )
    .await;
    works
        .create(&PostParams::default(), &config_map_work("second"))
        .await
        .unwrap();
    eventually("the second work Applied on the hub", within, async || {
        holds(&works.get("second").await.unwrap(), CONDITION_APPLIED).then_some(())
    })
    .await;
    assert!(
        metric(
            health,
            "ocm_agent_work_applies_total",
            &["outcome=\"applied\""]
        )
        .await
            > applied_before
    );

    sigterm(agent).await;
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}

/// Sends SIGCONT to a stopped process when dropped, so a failing test does not leave it stopped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Self {
        signal(pid, "-STOP");
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

#[tokio::test]
async fn healthz_fails_while_the_registration_loop_is_stuck_and_recovers_after() {
    let (hub_cluster, spoke_cluster) =
        tokio::join!(Cluster::start("stuck-hub"), Cluster::start("stuck-spoke"));
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let hub_kube = hub_cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub(&hub_kube, vec![BOOTSTRAP_USER.into()], &cancel).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = bootstrap_config(dir.path(), port, &ca, &token);
    let health = free_port().unwrap();
    let agent = spawn_agent(
        &bootstrap,
        &spoke_cluster,
        health,
        &["--liveness-stall-timeout", "3s"],
    );
    let clusters: Api<ManagedCluster> = Api::all(hub_kube.clone());
    let within = Duration::from_secs(60);
    eventually("the ManagedCluster", within, async || {
        clusters.get_opt("cluster1").await.unwrap()
    })
    .await;
    clusters
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": true}})),
        )
        .await
        .unwrap();
    answers(health, "/readyz", 200, "registered and connected", within).await;
    answers(health, "/healthz", 200, "registration: running", within).await;

    // The managed cluster's apiserver stops answering (SIGSTOP): the registration loop's next
    // status report waits on it for good.
    let apiserver = spoke_cluster
        .components()
        .into_iter()
        .find(|(name, _)| *name == "kube-apiserver")
        .map(|(_, pid)| pid)
        .unwrap();
    let stopped = Stopped::stop(apiserver);
    let stuck = answers(health, "/healthz", 503, "registration: STUCK", within).await;
    assert!(stuck.starts_with("unhealthy"), "{stuck}");

    // Answering again: alive again, without a restart.
    drop(stopped);
    answers(health, "/healthz", 200, "registration: running", within).await;

    sigterm(agent).await;
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}
