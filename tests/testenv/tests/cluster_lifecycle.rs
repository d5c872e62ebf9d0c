//! Proof that local clusters are isolated from each other and that none of their processes
//! outlives its owner: not after `stop`, not after a panicking test, not after SIGKILL.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::{k8s_openapi, kube};
use ocm_testenv::{Assets, Cluster, ClusterConfig, TestEnvError};

fn is_alive(pid: u32) -> bool {
    // A zombie has ended; only its parent has not collected it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(
        serde_json::json!({ "metadata": { "name": name }, "data": { "owner": name } }),
    )
    .unwrap()
}

#[tokio::test]
async fn clusters_started_together_do_not_see_each_others_objects_or_accept_each_others_credentials()
 {
    let (a, b) = tokio::join!(Cluster::start("iso-a"), Cluster::start("iso-b"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.server_url(), b.server_url());

    let a_maps: Api<ConfigMap> = Api::namespaced(a.client().unwrap(), "default");
    let b_maps: Api<ConfigMap> = Api::namespaced(b.client().unwrap(), "default");
    a_maps
        .create(&PostParams::default(), &config_map("only-in-a"))
        .await
        .unwrap();
    b_maps
        .create(&PostParams::default(), &config_map("only-in-b"))
        .await
        .unwrap();
    assert!(b_maps.get_opt("only-in-a").await.unwrap().is_none());
    assert!(a_maps.get_opt("only-in-b").await.unwrap().is_none());
    assert!(a_maps.get_opt("only-in-a").await.unwrap().is_some());

    let a_nodes: Vec<String> = Api::<Node>::all(a.client().unwrap())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(a_nodes, a.node_names());

    // A client certificate of cluster b, presented to cluster a (trusting a's CA), is refused.
    let mut foreign =
        Kubeconfig::from_yaml(&b.kubeconfig_for("intruder", &["system:masters"]).unwrap()).unwrap();
    let own =
        Kubeconfig::from_yaml(&std::fs::read_to_string(a.kubeconfig_path()).unwrap()).unwrap();
    foreign.clusters = own.clusters;
    foreign.clusters[0].name = "iso-b".to_owned(); // keep the foreign context's reference
    let config = kube::Config::from_custom_kubeconfig(foreign, &KubeConfigOptions::default())
        .await
        .unwrap();
    let intruder: Api<ConfigMap> =
        Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    match intruder.get_opt("only-in-a").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{status:?}"),
        other => panic!("a foreign certificate must be refused with 401, got {other:?}"),
    }
    a.stop();
    b.stop();
}

#[tokio::test]
async fn stop_leaves_no_process_and_no_directory_behind() {
    let cluster = Cluster::start("stopper").await.unwrap();
    let pids = cluster.components();
    let names: Vec<&str> = pids.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok"
        ]
    );
    let dir = cluster.dir().to_owned();
    assert!(dir.join("logs").join("kube-apiserver.log").is_file());
    cluster.stop();
    for (name, pid) in pids {
        assert!(!is_alive(pid), "{name} ({pid}) still running after stop");
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn a_panicking_test_kills_its_cluster_and_keeps_the_logs() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let cluster = Cluster::start("panicker").await.unwrap();
            seen = Some((cluster.components(), cluster.dir().to_owned()));
            panic!("the test fails while its cluster runs");
        })
    }));
    assert!(outcome.is_err());
    // This thread is still alive, so it was `Drop` (not the parent-death signal) that acted.
    let (pids, dir) = seen.unwrap();
    for (name, pid) in pids {
        assert!(!is_alive(pid), "{name} ({pid}) survived the panic");
    }
    assert!(
        dir.join("logs").join("kube-apiserver.log").is_file(),
        "logs of a failed test are kept"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_component_that_exits_at_start_is_reported_with_its_log() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempfile::tempdir().unwrap();
    let broken = scratch.path().join("kube-apiserver");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'Error: unknown flag: --pretend' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut assets = Assets::from_env().unwrap();
    assets.kube_apiserver = broken;
    let dir = scratch.path().join("cluster");
    let config = ClusterConfig::new("broken").assets(assets).dir(&dir);

    let err = Cluster::start_with(config).await.unwrap_err();
    let TestEnvError::ComponentExited {
        component,
        ref log_tail,
        ..
    } = err
    else {
        panic!("expected ComponentExited, got {err}");
    };
    assert_eq!(component, "kube-apiserver");
    assert!(log_tail.contains("unknown flag: --pretend"), "{err}");
    assert!(
        err.to_string()
            .contains("cluster broken: kube-apiserver exited during start-up"),
        "{err}"
    );
    assert!(
        dir.join("logs").join("etcd.log").is_file(),
        "logs kept after a failed start"
    );
}

/// Runs `ocm-localenv <args>` and returns its stdout, failing on a non-zero exit.
fn localenv(args: &[&str], dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ocm-localenv"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ocm-localenv {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn component_pids(dir: &Path) -> Vec<u32> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    state["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["components"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p[1].as_u64().unwrap() as u32)
        })
        .chain(
            state["ocm"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p[1].as_u64().unwrap() as u32),
        )
        .collect()
}

#[test]
fn local_environment_up_runs_ocm_registers_its_cluster_delivers_nginx_and_down_leaves_no_process() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("env");
    // With ocm-rs itself: ocm-hub on the hub, an ocm-agent on cluster1, joined and accepted.
    let out = localenv(&["up", "--managed", "1", "--ocm"], &dir);
    assert!(
        out.contains("hub.kubeconfig") && out.contains("cluster1.kubeconfig"),
        "{out}"
    );
    let pids = component_pids(&dir);
    assert_eq!(
        pids.len(),
        12,
        "two clusters of five processes, ocm-hub and an agent"
    );

    let kubectl = Assets::from_env().unwrap().kubectl;
    let nodes = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(dir.join("hub.kubeconfig"))
        .args(["get", "nodes", "--no-headers"])
        .output()
        .unwrap();
    let nodes = String::from_utf8_lossy(&nodes.stdout);
    assert!(
        nodes.contains("hub-node-0") && nodes.contains(" Ready "),
        "{nodes}"
    );
    let clusters = Command::new(Assets::from_env().unwrap().kubectl)
        .arg("--kubeconfig")
        .arg(dir.join("hub.kubeconfig"))
        .args(["get", "managedclusters", "--no-headers"])
        .output()
        .unwrap();
    let clusters = String::from_utf8_lossy(&clusters.stdout);
    let row: Vec<&str> = clusters.split_whitespace().collect();
    assert_eq!(
        row.get(..2),
        Some(&["cluster1", "true"][..]),
        "accepted: {clusters}"
    );
    assert_eq!(
        row.iter().filter(|c| **c == "True").count(),
        2,
        "joined and available: {clusters}"
    );
    // Joined through `ocmctl join --local`: its files where `ocmctl unjoin --state-dir` looks.
    let agent = dir.join("agents").join("cluster1");
    let agent_pid: u32 = std::fs::read_to_string(agent.join("ocm-agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pids.contains(&agent_pid), "{agent_pid} is not in {pids:?}");
    assert!(agent.join("bootstrap-config.yaml").is_file());
    // The main job's work: nginx delivered through the hub, Applied and Available with its
    // replicas fed back, its pods Running on cluster1 (kwok).
    assert!(
        out.contains("$ ocmctl get works") && out.contains("nginx"),
        "the works table is shown: {out}"
    );
    let works = Command::new(Assets::from_env().unwrap().kubectl)
        .arg("--kubeconfig")
        .arg(dir.join("hub.kubeconfig"))
        .args([
            "get",
            "manifestworks",
            "-n",
            "cluster1",
            "nginx",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let work: serde_json::Value = serde_json::from_slice(&works.stdout).unwrap();
    let conditions = work["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for wanted in ["Applied", "Available"] {
        assert!(
            conditions
                .iter()
                .any(|c| c["type"] == wanted && c["status"] == "True"),
            "{wanted}: {work}"
        );
    }
    let pods = Command::new(Assets::from_env().unwrap().kubectl)
        .arg("--kubeconfig")
        .arg(dir.join("cluster1.kubeconfig"))
        .args([
            "get",
            "pods",
            "-n",
            "default",
            "-l",
            "app=nginx",
            "--no-headers",
        ])
        .output()
        .unwrap();
    let pods = String::from_utf8_lossy(&pods.stdout);
    assert_eq!(
        pods.lines().filter(|l| l.contains(" Running ")).count(),
        2,
        "nginx pods Running on cluster1: {pods}"
    );
    assert!(localenv(&["status"], &dir).starts_with("running"));
    assert!(localenv(&["up"], &dir).starts_with("already running"));

    let out = localenv(&["down"], &dir);
    assert!(out.contains("none left running"), "{out}");
    for pid in pids {
        assert!(!is_alive(pid), "process {pid} survived `down`");
    }
    assert!(!dir.join("hub.kubeconfig").exists());
    assert!(
        !dir.join("agents").exists(),
        "the agents' tokens went with the hub"
    );
    assert!(localenv(&["status"], &dir).starts_with("not running"));
}

#[test]
fn killing_the_owner_process_kills_every_cluster_process() {
    let scratch = tempfile::tempdir().unwrap();
    let dir: PathBuf = scratch.path().join("env");
    let mut owner = Command::new(env!("CARGO_BIN_EXE_ocm-localenv"))
        .args(["serve", "--managed", "0", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the cluster to be ready", Duration::from_secs(120), || {
        assert!(
            owner.try_wait().unwrap().is_none(),
            "ocm-localenv serve exited early"
        );
        dir.join("state.json").is_file()
    });
    let pids = component_pids(&dir);
    assert_eq!(pids.len(), 5);
    owner.kill().unwrap(); // SIGKILL: no handler, no Drop, only the kernel's parent-death signal
    owner.wait().unwrap();
    wait_until(
        "every cluster process to die with its owner",
        Duration::from_secs(10),
        || pids.iter().all(|pid| !is_alive(*pid)),
    );
}

#[tokio::test]
async fn a_cluster_not_ready_in_time_fails_naming_what_it_waited_for() {
    let scratch = tempfile::tempdir().unwrap();
    let config = ClusterConfig::new("impatient")
        .dir(scratch.path().join("cluster"))
        .start_timeout(Duration::from_millis(1));
    let err = Cluster::start_with(config).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, TestEnvError::StartTimeout { .. }),
        "{message}"
    );
    assert!(
        message.contains("cluster impatient: not ready after 1ms: etcd to accept connections"),
        "{message}"
    );
    assert!(
        message.contains("--- etcd ("),
        "the error carries the component logs: {message}"
    );
}
