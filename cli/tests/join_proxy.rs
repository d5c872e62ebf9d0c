//! A managed cluster behind a proxy, for real: `ocmctl join --local --proxy-url` with the real
//! `ocm-hub`, `ocm-agent` and `ocmctl` binaries, real hub and managed-cluster apiservers, and a
//! real tinyproxy that requires basic credentials.
//!
//! The hub's broker is reachable only through the proxy: it sits behind a gate that passes on
//! only connections coming from 127.0.0.2, the address tinyproxy's outgoing connections are
//! bound to (`Bind`), and closes every other one. An agent that bypassed the proxy would never
//! register; the gate's counters and tinyproxy's log prove which way every connection went.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use ocm_api::cluster::v1::{CONDITION_AVAILABLE, CONDITION_JOINED, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::apps::v1::Deployment;
use ocm_api::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use ocm_api::kube::Api;
use ocm_api::kube::api::PostParams;
use ocm_api::work::v1::{
    CONDITION_APPLIED, Manifest, ManifestWork, ManifestWorkSpec, ManifestsTemplate,
};
use ocm_cli::hub::HubUrl;
use ocm_testenv::{Cluster, Tinyproxy, TinyproxyOptions, eventually, free_port};
use support::{StateDir, join_args, ocmctl, ocmctl_command, start_hub, strs};

const PROXY_USER: &str = "spoke-proxy-user";
const PROXY_PASSWORD: &str = "pr0xy-s3cret-4711";
/// Where tinyproxy's connections to targets come from.
const PROXY_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Lets through to `target` only connections from `allowed`; closes the others at once.
struct Gate {
    port: u16,
    forwarded: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start(target: SocketAddr, allowed: IpAddr) -> Self {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (forwarded, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = (Arc::clone(&forwarded), Arc::clone(&refused));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, peer)) = listener.accept().await else {
                    return;
                };
                if peer.ip() != allowed {
                    counters.1.fetch_add(1, Ordering::SeqCst);
                    drop(inbound);
                    continue;
                }
                counters.0.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            port,
            forwarded,
            refused,
            task,
        }
    }

    fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP GET on 127.0.0.1: status and body; `None` while nothing answers.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// The agent's counter `name` (all label sets summed).
async fn agent_metric(port: u16, name: &str) -> f64 {
    let (_, text) = http_get(port, "/metrics").await.unwrap();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn config_map_work(name: &str) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: vec![Manifest(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"},
                    "data": {"through": "the proxy"}
                }))],
            },
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some("cluster1".into());
    work
}

fn applied(work: &ManifestWork) -> bool {
    work.status
        .as_ref()
        .and_then(|s| condition::find(&s.conditions, CONDITION_APPLIED))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// Anything that would give the proxy's credentials away.
fn leaks(text: &str) -> Vec<&'static str> {
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    let mut found = Vec::new();
    if text.contains(PROXY_PASSWORD) {
        found.push("the password");
    }
    if text.contains(PROXY_USER) {
        found.push("the user");
    }
    if text.contains(&token) {
        found.push("the Proxy-Authorization token");
    }
    found
}

// Multi-threaded: the gate serves on the runtime's workers while the test waits for `ocmctl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_joined_through_a_proxy_reaches_the_hub_only_through_it_survives_its_restart_and_never_logs_its_credentials()
 {
    let (hub, spoke) = tokio::join!(Cluster::start("hub"), Cluster::start("cluster1"));
    let (hub, spoke) = (hub.unwrap(), spoke.unwrap());
    let (hub_kube, spoke_kube) = (hub.client().unwrap(), spoke.client().unwrap());
    let grpc_port = free_port().unwrap();
    let gate = Gate::start(
        SocketAddr::from((Ipv4Addr::LOCALHOST, grpc_port)),
        IpAddr::V4(PROXY_SOURCE),
    )
    .await;
    let url = format!("127.0.0.1:{}", gate.port);

    // The hub, advertised at the gate; from here it is not reachable directly.
    let init = ocmctl(hub.kubeconfig_path(), &["init", "--hub-url", &url]);
    assert!(init.ok, "{}", init.err);
    let _ocm_hub = start_hub(&hub, grpc_port, &[]);
    let ca_data = join_args(&init.out, "cluster1")
        .windows(2)
        .find(|pair| pair[0] == "--ca-data")
        .map(|pair| pair[1].clone())
        .unwrap();
    let ca = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&ca_data)
            .unwrap(),
    )
    .unwrap();
    let direct = HubUrl::parse(&format!("127.0.0.1:{grpc_port}")).unwrap();
    eventually("ocm-hub serving", Duration::from_secs(60), async || {
        ocm_cli::hub::probe(&direct, &ca).await.ok()
    })
    .await;

    let mut proxy = Tinyproxy::start(TinyproxyOptions {
        basic_auth: Some((PROXY_USER.into(), PROXY_PASSWORD.into())),
        bind: Some(PROXY_SOURCE),
    })
    .unwrap();
    let proxy_url = format!(
        "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}",
        proxy.port()
    );
    let state = StateDir::new();
    let state_dir = state.path().display().to_string();
    let mut args = join_args(&init.out, "cluster1");
    args.extend(["--local", "--state-dir", &state_dir].map(str::to_owned));

    // Without the proxy even the preflight fails: the gate closes direct connections.
    let without = ocmctl(spoke.kubeconfig_path(), &strs(&args));
    assert!(!without.ok, "joined without the proxy: {}", without.out);
    let refused_direct = gate.refused();
    assert!(
        refused_direct > 0,
        "the direct attempt never reached the gate"
    );
    assert_eq!(gate.forwarded(), 0);

    // With it: the preflight and the agent go through tinyproxy. The agent logs at debug level,
    // so every line it could write about its connections is in its log.
    args.extend(["--proxy-url", &proxy_url].map(str::to_owned));
    let joined = ocmctl_command(spoke.kubeconfig_path(), &strs(&args))
        .env(
            "RUST_LOG",
            "debug,h2=info,hyper=info,hyper_util=info,tower=info,rustls=info,kube_client=info",
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&joined.stdout).into_owned(),
        String::from_utf8_lossy(&joined.stderr).into_owned(),
    );
    assert!(joined.status.success(), "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "cluster1: the agent reaches the hub through the proxy http://[redacted]@127.0.0.1:{}",
            proxy.port()
        )),
        "{out}"
    );
    assert_eq!(
        leaks(&format!("{out}\n{err}")),
        Vec::<&str>::new(),
        "{out}\n{err}"
    );
    let health: u16 = out
        .split("health http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no health address in {out}"));
    let files = ocm_cli::local::LocalFiles::new(&state.path(), "cluster1");
    let pid = ocm_cli::local::running(&files, "cluster1").expect("the local agent runs");

    let accepted = ocmctl(
        hub.kubeconfig_path(),
        &["accept", "--clusters", "cluster1", "--wait"],
    );
    assert!(accepted.ok, "{}", accepted.err);
    let clusters: Api<ManagedCluster> = Api::all(hub_kube.clone());
    eventually(
        "cluster1 Joined and Available",
        Duration::from_secs(60),
        async || {
            let cluster = clusters.get("cluster1").await.ok()?;
            let conditions = cluster.status?.conditions;
            let is_true = |t: &str| {
                condition::find(&conditions, t).is_some_and(|c| c.status == ConditionStatus::True)
            };
            (is_true(CONDITION_JOINED) && is_true(CONDITION_AVAILABLE)).then_some(())
        },
    )
    .await;
    let works: Api<ManifestWork> = Api::namespaced(hub_kube.clone(), "cluster1");
    works
        .create(&PostParams::default(), &config_map_work("through-proxy"))
        .await
        .unwrap();
    eventually("the work Applied", Duration::from_secs(60), async || {
        applied(&works.get("through-proxy").await.ok()?).then_some(())
    })
    .await;
    let config_maps: Api<ConfigMap> = Api::namespaced(spoke_kube.clone(), "default");
    config_maps.get("through-proxy").await.unwrap();
    eventually("the agent ready", Duration::from_secs(60), async || {
        (http_get(health, "/readyz").await?.0 == 200).then_some(())
    })
    .await;

    // Every connection to the hub came through the proxy, none directly.
    assert_eq!(
        gate.refused(),
        refused_direct,
        "something connected to the hub without the proxy"
    );
    assert!(gate.forwarded() > 0);
    let connects = proxy.connects();
    assert!(
        !connects.is_empty(),
        "tinyproxy saw no CONNECT: {}",
        proxy.log()
    );
    assert!(connects.iter().all(|target| *target == url), "{connects:?}");

    // The proxy goes away, every tunnel with it: the agent is cut off, then comes back
    // through the restarted proxy and keeps working.
    let reconnects = agent_metric(health, "ocm_agent_hub_reconnects_total").await;
    let forwarded = gate.forwarded();
    proxy.stop();
    eventually("the agent not ready", Duration::from_secs(60), async || {
        (http_get(health, "/readyz").await?.0 == 503).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restart().unwrap();
    eventually(
        "the agent ready again through the restarted proxy",
        Duration::from_secs(120),
        async || (http_get(health, "/readyz").await?.0 == 200).then_some(()),
    )
    .await;
    assert!(
        agent_metric(health, "ocm_agent_hub_reconnects_total").await > reconnects,
        "no reconnect counted"
    );
    assert!(
        !proxy.connects().is_empty() && gate.forwarded() > forwarded,
        "the restarted proxy carried nothing: {}",
        proxy.log()
    );
    works
        .create(&PostParams::default(), &config_map_work("after-restart"))
        .await
        .unwrap();
    eventually(
        "the work after the restart Applied",
        Duration::from_secs(60),
        async || applied(&works.get("after-restart").await.ok()?).then_some(()),
    )
    .await;
    config_maps.get("after-restart").await.unwrap();
    assert_eq!(gate.refused(), refused_direct, "a direct connection");

    // The credentials were used (tinyproxy requires them) and never written anywhere.
    let log = std::fs::read_to_string(&files.log).unwrap();
    assert!(
        log.contains("reaching the hub through an HTTP proxy")
            && log.contains("http://[redacted]@127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains("connecting through the HTTP proxy"),
        "no debug line: {log}"
    );
    assert_eq!(leaks(&log), Vec::<&str>::new(), "the agent's log");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        leaks(&String::from_utf8_lossy(&cmdline)),
        Vec::<&str>::new(),
        "the agent's command line"
    );
    assert!(
        !std::fs::read_dir(files.dir.clone())
            .unwrap()
            .flatten()
            .filter(|entry| entry.path() != files.log)
            .any(|entry| {
                !leaks(&std::fs::read_to_string(entry.path()).unwrap_or_default()).is_empty()
            }),
        "a state file holds the credentials"
    );

    // In the cluster instead: the URL travels in the bootstrap Secret and reaches the agent's
    // environment from there; the Deployment holds none of it. (An https:// proxy with its CA,
    // written as given; the preflight through it is skipped since tinyproxy speaks no TLS.)
    let proxy_ca = spoke.ca_pem();
    let ca_file = state.path().join("proxy-ca.pem");
    std::fs::write(&ca_file, &proxy_ca).unwrap();
    let mut in_cluster = join_args(&init.out, "cluster1");
    in_cluster.extend(
        [
            "--image",
            "example.com/ocm-agent:test",
            "--skip-preflight",
            "--proxy-url",
            &format!("https://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp:3129"),
            "--proxy-ca-file",
            &ca_file.display().to_string(),
        ]
        .map(str::to_owned),
    );
    let applied_manifests = ocmctl(spoke.kubeconfig_path(), &strs(&in_cluster));
    assert!(applied_manifests.ok, "{}", applied_manifests.err);
    assert_eq!(
        leaks(&format!(
            "{}{}",
            applied_manifests.out, applied_manifests.err
        )),
        Vec::<&str>::new()
    );
    let secret = Api::<Secret>::namespaced(spoke_kube.clone(), "open-cluster-management-agent")
        .get("bootstrap-hub-kubeconfig")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(
        String::from_utf8(data["proxy-url"].0.clone()).unwrap(),
        format!("https://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp:3129")
    );
    assert_eq!(
        String::from_utf8(data["proxy-ca.crt"].0.clone()).unwrap(),
        proxy_ca
    );
    let deployment =
        Api::<Deployment>::namespaced(spoke_kube.clone(), "open-cluster-management-agent")
            .get("ocm-agent")
            .await
            .unwrap();
    let written = serde_json::to_string(&deployment).unwrap();
    assert_eq!(leaks(&written), Vec::<&str>::new(), "{written}");
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let env = container.env.as_ref().unwrap();
    let from = env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap();
    assert_eq!(
        (env[0].name.as_str(), from.name.as_str(), from.key.as_str()),
        ("OCM_PROXY_URL", "bootstrap-hub-kubeconfig", "proxy-url")
    );
    assert!(
        container
            .args
            .as_ref()
            .unwrap()
            .join(" ")
            .ends_with("--proxy-ca-file /spoke/bootstrap/proxy-ca.crt")
    );
}
