//! `ocmctl init`, `get token`, `join`, `accept` and `unjoin` as an administrator runs them: the
//! `ocmctl` binary against real hub and managed-cluster apiservers, the real `ocm-hub` as a
//! process, and the real `ocm-agent` that `join --local` starts.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::k8s_openapi::api::apps::v1::Deployment;
use ocm_api::k8s_openapi::api::authentication::v1::TokenRequest;
use ocm_api::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use ocm_api::k8s_openapi::api::core::v1::ConfigMap;
use ocm_api::k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use ocm_api::kube::ResourceExt as _;
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{AppliedManifestWork, ManifestWork};
use ocm_cli::hub::HubUrl;
use ocm_cli::local::LocalFiles;
use ocm_testenv::{Cluster, eventually, free_port};
use ocm_transport::grpc_config::GrpcConfigFile;
use support::{join_args, ocmctl, ocmctl_command, start_hub, strs, with_flag};

const AGENT_NAMESPACE: &str = "open-cluster-management-agent";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The hub CA as ocm-hub keeps it, base64 as in the join command.
async fn stored_ca_data(hub: &Client) -> String {
    let secret = Api::<Secret>::namespaced(hub.clone(), "open-cluster-management-hub")
        .get("ocm-hub-ca")
        .await
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(&secret.data.unwrap()["tls.crt"].0)
}

async fn namespace_exists(spoke: &Client) -> bool {
    Api::<Namespace>::all(spoke.clone())
        .get_opt(AGENT_NAMESPACE)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn init_join_local_accept_and_unjoin_register_a_cluster_and_leave_nothing_behind() {
    let (hub, spoke) = tokio::join!(Cluster::start("hub"), Cluster::start("cluster1"));
    let (hub, spoke) = (hub.unwrap(), spoke.unwrap());
    let (hub_kube, spoke_kube) = (hub.client().unwrap(), spoke.client().unwrap());
    let grpc_port = free_port().unwrap();
    let url = format!("localhost:{grpc_port}");

    // init before ocm-hub runs, twice: the same CA, a new token each time.
    let first = ocmctl(
        hub.kubeconfig_path(),
        &["init", "--hub-url", &url, "-o", "json"],
    );
    assert!(first.ok, "{}", first.err);
    let first = json(&first.out);
    let second = ocmctl(
        hub.kubeconfig_path(),
        &["init", "--hub-url", &url, "-o", "json"],
    );
    assert!(second.ok, "{}", second.err);
    let second = json(&second.out);
    assert_eq!(first["caData"], second["caData"]);
    assert_eq!(first["hubUrl"], url.as_str());
    assert_ne!(first["hubToken"], second["hubToken"]);
    assert!(
        first["joinCommand"]
            .as_str()
            .unwrap()
            .starts_with("ocmctl join --hub-token ")
    );

    // ocm-hub started afterwards keeps init's CA; `init --wait` returns once it serves.
    let _ocm_hub = start_hub(&hub, grpc_port, &[]);
    let third = ocmctl(
        hub.kubeconfig_path(),
        &["init", "--hub-url", &url, "--wait"],
    );
    assert!(third.ok, "{}", third.err);
    assert!(
        third.out.contains(&format!("ocm-hub serves at {url}.")),
        "{}",
        third.out
    );
    assert!(third.err.contains("ocm-hub serves at"), "{}", third.err);
    assert_eq!(
        stored_ca_data(&hub_kube).await,
        first["caData"].as_str().unwrap()
    );
    // The first token still works: the broker lets it subscribe as a joining agent would.
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(first["caData"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    ocm_cli::hub::check_token(
        &HubUrl::parse(&url).unwrap(),
        &ca_pem,
        first["hubToken"].as_str().unwrap(),
        "cluster1",
        Duration::from_secs(15),
    )
    .await
    .unwrap();

    // join --local --wait with the printed command, in the background until accepted.
    let state = support::StateDir::new();
    let state_dir = state.path().display().to_string();
    let mut args = join_args(&third.out, "cluster1");
    args.extend(["--local", "--wait", "--state-dir", &state_dir].map(str::to_owned));
    let mut joining = ocmctl_command(spoke.kubeconfig_path(), &strs(&args))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let files = LocalFiles::new(&state.path(), "cluster1");
    // Its progress (stderr, not a terminal), line by line as it comes.
    let stderr = joining.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push(line);
        }
        all.join("\n")
    });
    let waiting = lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(
        waiting,
        "waiting for the hub to approve cluster1 (on the hub: ocmctl accept --clusters cluster1) …"
    );
    // accept --wait waits for the agent's ManagedCluster and its certificate request.
    let accepted = ocmctl(
        hub.kubeconfig_path(),
        &["accept", "--clusters", "cluster1", "--wait"],
    );
    assert!(accepted.ok, "{}", accepted.err);
    assert!(
        accepted
            .out
            .contains("cluster1: accepted; approved cluster1-"),
        "{}",
        accepted.out
    );
    let joined = tokio::task::spawn_blocking(move || joining.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&joined.stdout),
        reader.join().unwrap(),
    );
    assert!(joined.status.success(), "{out}\n{err}");
    assert!(
        out.contains("cluster1: ocm-agent runs locally (pid "),
        "{out}"
    );
    assert!(
        out.contains(&format!("cluster1 joined the hub at {url}")),
        "{out}"
    );
    // Plain lines, no escape codes.
    assert!(
        err.contains("cluster1 joined: the hub signed its agent's certificate (")
            && !err.contains('\x1b'),
        "{err}"
    );
    let pid = ocm_cli::local::running(&files, "cluster1").expect("the local agent runs");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&files.bootstrap_config)
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the token is the owner's only");

    // The hub sees it joined and available.
    let clusters: Api<ManagedCluster> = Api::all(hub_kube.clone());
    eventually(
        "cluster1 Joined and Available",
        Duration::from_secs(60),
        async || {
            let cluster = clusters.get("cluster1").await.ok()?;
            let conditions = cluster.status?.conditions;
            let is_true = |t: &str| {
                ocm_api::condition::find(&conditions, t)
                    .is_some_and(|c| c.status == ocm_api::condition::ConditionStatus::True)
            };
            (is_true(ocm_api::cluster::v1::CONDITION_JOINED)
                && is_true(ocm_api::cluster::v1::CONDITION_AVAILABLE))
            .then_some(())
        },
    )
    .await;
    let listed = ocmctl(hub.kubeconfig_path(), &["get", "clusters"]);
    let row: Vec<&str> = listed
        .out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..4],
        ["cluster1", "true", "True", "True"],
        "{}",
        listed.out
    );

    // get token: a new token, the recorded URL, the same CA.
    let token = ocmctl(hub.kubeconfig_path(), &["get", "token", "-o", "json"]);
    assert!(token.ok, "{}", token.err);
    let token = json(&token.out);
    assert_eq!(token["hubUrl"], url.as_str());
    assert_eq!(token["caData"], first["caData"]);
    assert_ne!(token["hubToken"], first["hubToken"]);
    let text = ocmctl(hub.kubeconfig_path(), &["get", "token"]);
    assert!(
        text.out.starts_with("token=") && text.out.contains("\nocmctl join --hub-token "),
        "{}",
        text.out
    );

    // Work applied on the cluster: one work deleting its resources with it (the default), one
    // leaving them (Orphan).
    let works: Api<ManifestWork> = Api::namespaced(hub_kube.clone(), "cluster1");
    for (name, orphan) in [("gone", false), ("kept", true)] {
        let mut work = serde_json::json!({
            "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
            "metadata": {"name": name, "namespace": "cluster1"},
            "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("{name}-cm"), "namespace": "default"},
                "data": {"a": "1"}}]}},
        });
        if orphan {
            work["spec"]["deleteOption"] = serde_json::json!({"propagationPolicy": "Orphan"});
        }
        works
            .create(
                &PostParams::default(),
                &serde_json::from_value(work).unwrap(),
            )
            .await
            .unwrap();
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(spoke_kube.clone(), "default");
    let records: Api<AppliedManifestWork> = Api::all(spoke_kube.clone());
    eventually("both works applied", Duration::from_secs(60), async || {
        let applied = records.list(&Default::default()).await.ok()?.items.len();
        let gone = config_maps.get_opt("gone-cm").await.ok()??;
        config_maps.get_opt("kept-cm").await.ok()??;
        // The agent owns what the work deletes with it; what it orphans it does not.
        (applied == 2 && !gone.owner_references().is_empty()).then_some(())
    })
    .await;

    // unjoin refuses while the agent's work is there, naming it…
    let refused = ocmctl(
        spoke.kubeconfig_path(),
        &[
            "unjoin",
            "--cluster-name",
            "cluster1",
            "--state-dir",
            &state_dir,
        ],
    );
    assert!(!refused.ok);
    assert!(
        refused.err.contains("-gone")
            && refused.err.contains("-kept")
            && refused.err.contains("--force"),
        "{}",
        refused.err
    );
    assert!(namespace_exists(&spoke_kube).await, "nothing was removed");

    // …and with --force releases it as each work says, then stops the agent and removes what
    // join and the agent wrote.
    assert!(namespace_exists(&spoke_kube).await);
    let unjoined = ocmctl(
        spoke.kubeconfig_path(),
        &[
            "unjoin",
            "--cluster-name",
            "cluster1",
            "--state-dir",
            &state_dir,
            "--force",
        ],
    );
    assert!(unjoined.ok, "{}", unjoined.err);
    assert!(
        unjoined
            .out
            .contains("deleted [configmaps/default/gone-cm]")
            && unjoined.out.contains("left [configmaps/default/kept-cm]"),
        "{}",
        unjoined.out
    );
    assert!(
        records
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    eventually("gone-cm deleted", Duration::from_secs(30), async || {
        config_maps
            .get_opt("gone-cm")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kept = config_maps.get("kept-cm").await.unwrap();
    assert!(
        kept.owner_references().is_empty(),
        "kept-cm is left unowned"
    );
    assert!(
        unjoined
            .out
            .contains(&format!("cluster1: stopped the local agent (pid {pid})"))
            && unjoined
                .out
                .contains("cluster1: deleted Namespace/open-cluster-management-agent"),
        "{}",
        unjoined.out
    );
    assert_eq!(ocm_cli::local::running(&files, "cluster1"), None);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap()
                .is_empty(),
        "the agent {pid} still runs"
    );
    assert!(!files.pid.exists() && !files.bootstrap_config.exists());
    assert!(
        !namespace_exists(&spoke_kube).await,
        "unjoin waits until the namespace is gone"
    );
    let again = ocmctl(
        spoke.kubeconfig_path(),
        &[
            "unjoin",
            "--cluster-name",
            "cluster1",
            "--state-dir",
            &state_dir,
        ],
    );
    assert!(
        again.ok && again.out.contains("nothing of its agent was here"),
        "{}",
        again.out
    );
}

#[tokio::test]
async fn join_refuses_what_cannot_work_and_writes_the_agent_to_the_managed_cluster() {
    let (hub, spoke) = tokio::join!(Cluster::start("hub"), Cluster::start("cluster2"));
    let (hub, spoke) = (hub.unwrap(), spoke.unwrap());
    let spoke_kube = spoke.client().unwrap();
    let grpc_port = free_port().unwrap();
    let url = format!("localhost:{grpc_port}");
    let _ocm_hub = start_hub(&hub, grpc_port, &[]);
    let init = ocmctl(
        hub.kubeconfig_path(),
        &["init", "--hub-url", &url, "--wait"],
    );
    assert!(init.ok, "{}", init.err);
    let args = join_args(&init.out, "cluster2");
    let join = |args: &[String]| ocmctl(spoke.kubeconfig_path(), &strs(args));

    // A token the hub never issued, and a real one of another cluster: refused, with what to do.
    let forged = join(&with_flag(&args, "--hub-token", "not-a-token"));
    assert!(!forged.ok);
    assert!(
        forged.err.contains("refused the bootstrap token")
            && forged.err.contains("ocmctl get token"),
        "{}",
        forged.err
    );
    let foreign = Api::<ServiceAccount>::namespaced(spoke_kube.clone(), "default")
        .create_token_request("default", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let foreign = join(&with_flag(&args, "--hub-token", &foreign));
    assert!(
        !foreign.ok && foreign.err.contains("refused the bootstrap token"),
        "{}",
        foreign.err
    );
    // Another CA than the hub's: the broker's certificate is not trusted.
    let other_ca = base64::engine::general_purpose::STANDARD.encode(spoke.ca_pem());
    let wrong_ca = join(&with_flag(&args, "--ca-data", &other_ca));
    assert!(
        !wrong_ca.ok && wrong_ca.err.contains("does not accept"),
        "{}",
        wrong_ca.err
    );
    // Nothing listening there.
    let nowhere = join(&with_flag(
        &args,
        "--hub-url",
        &format!("localhost:{}", free_port().unwrap()),
    ));
    assert!(
        !nowhere.ok && nowhere.err.contains("nothing answers at"),
        "{}",
        nowhere.err
    );
    assert!(!namespace_exists(&spoke_kube).await, "nothing was written");

    // The agent's manifests, applied (twice: it is idempotent).
    let mut in_cluster = args.clone();
    in_cluster.extend(["--image", "example.com/ocm-agent:test"].map(str::to_owned));
    for _ in 0..2 {
        let applied = join(&in_cluster);
        assert!(applied.ok, "{}", applied.err);
        assert!(
            applied
                .out
                .contains("cluster2: applied Secret/bootstrap-hub-kubeconfig")
                && applied
                    .out
                    .contains("cluster2: applied Deployment/ocm-agent")
                && applied.out.contains("ocmctl accept --clusters cluster2"),
            "{}",
            applied.out
        );
    }
    let secret = Api::<Secret>::namespaced(spoke_kube.clone(), AGENT_NAMESPACE)
        .get("bootstrap-hub-kubeconfig")
        .await
        .unwrap();
    let config = String::from_utf8(secret.data.unwrap()["config.yaml"].0.clone()).unwrap();
    let config = GrpcConfigFile::from_yaml(&config)
        .unwrap()
        .resolve(|_| Err(std::io::Error::other("no files")))
        .unwrap();
    let flag = |name: &str| args[args.iter().position(|a| a == name).unwrap() + 1].clone();
    assert_eq!(config.url, url);
    assert_eq!(config.token, Some(flag("--hub-token")));
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(config.ca_pem.unwrap()),
        flag("--ca-data")
    );
    let deployment = Api::<Deployment>::namespaced(spoke_kube.clone(), AGENT_NAMESPACE)
        .get("ocm-agent")
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("example.com/ocm-agent:test")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("ocm-agent"));
    Api::<ServiceAccount>::namespaced(spoke_kube.clone(), AGENT_NAMESPACE)
        .get("ocm-agent")
        .await
        .unwrap();
    Api::<Role>::namespaced(spoke_kube.clone(), AGENT_NAMESPACE)
        .get("ocm-agent")
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(spoke_kube.clone(), AGENT_NAMESPACE)
        .get("ocm-agent")
        .await
        .unwrap();
    // The agent's account may do what the agent does, and no more (asked of the real RBAC).
    let agent_may = async |verb: &str, resource: &str, namespace: Option<&str>| {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some("system:serviceaccount:open-cluster-management-agent:ocm-agent".into()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    namespace: namespace.map(str::to_owned),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        Api::<SubjectAccessReview>::all(spoke_kube.clone())
            .create(&PostParams::default(), &review)
            .await
            .unwrap()
            .status
            .unwrap()
            .allowed
    };
    assert!(agent_may("create", "secrets", Some(AGENT_NAMESPACE)).await);
    assert!(agent_may("list", "nodes", None).await);
    // The work half applies whatever ManifestWorks carry, as OCM's work agent (admin plus its
    // execution aggregate) does: through its own ClusterRole, removed by unjoin.
    assert!(agent_may("create", "deployments", Some("default")).await);
    assert!(agent_may("impersonate", "serviceaccounts", Some("default")).await);

    // This cluster joined as cluster2: another name is refused, for join and unjoin alike.
    let renamed = join(&with_flag(&in_cluster, "--cluster-name", "cluster3"));
    assert!(
        !renamed.ok && renamed.err.contains("already joined a hub as \"cluster2\""),
        "{}",
        renamed.err
    );
    let wrong = ocmctl(
        spoke.kubeconfig_path(),
        &["unjoin", "--cluster-name", "cluster3"],
    );
    assert!(
        !wrong.ok && wrong.err.contains("joined as \"cluster2\""),
        "{}",
        wrong.err
    );

    // unjoin removes all of it.
    let state = support::StateDir::new();
    let unjoined = ocmctl(
        spoke.kubeconfig_path(),
        &[
            "unjoin",
            "--cluster-name",
            "cluster2",
            "--state-dir",
            &state.path().display().to_string(),
        ],
    );
    assert!(unjoined.ok, "{}", unjoined.err);
    for deleted in [
        "Namespace/open-cluster-management-agent",
        "ClusterRole/open-cluster-management:ocm-agent",
        "ClusterRoleBinding/open-cluster-management:ocm-agent",
        "ClusterRole/open-cluster-management:ocm-agent:work",
        "ClusterRoleBinding/open-cluster-management:ocm-agent:work",
    ] {
        assert!(
            unjoined
                .out
                .contains(&format!("cluster2: deleted {deleted}")),
            "{}",
            unjoined.out
        );
    }
    assert!(!namespace_exists(&spoke_kube).await);
    assert!(
        Api::<ClusterRole>::all(spoke_kube.clone())
            .get_opt("open-cluster-management:ocm-agent")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(spoke_kube.clone())
            .get_opt("open-cluster-management:ocm-agent")
            .await
            .unwrap()
            .is_none()
    );
}
