//! `ocmctl create work`, `get works` and `delete work` as a hub administrator runs them, against
//! a real hub apiserver with OCM's CRDs and managed clusters the test registers by hand (no
//! agent: the test writes the status an agent would, and holds and releases its finalizer).

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_AVAILABLE, FeedbackValue, FieldValue, MANIFEST_WORK_FINALIZER,
    ManifestCondition, ManifestResourceMeta, ManifestResourceStatus, ManifestWork,
    ManifestWorkStatus, REASON_APPLIED_MANIFEST_WORK_COMPLETE, REASON_RESOURCES_AVAILABLE,
    StatusFeedbackResult,
};
use ocm_testenv::Cluster;
use support::{Run, ocmctl, ocmctl_command};

const MANIFESTS: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: default
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: nginx
          image: nginx:1.27
";

/// A hub with OCM's CRDs, and managed clusters: `with_namespace` accepted (their namespace
/// exists, as the hub makes it on acceptance), `without` only registered.
async fn hub(name: &str, with_namespace: &[&str], without: &[&str]) -> (Cluster, Client) {
    let hub = Cluster::start(name).await.unwrap();
    let kube = hub.client().unwrap();
    ocm_hub_server::crds::install(&kube, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    for cluster in with_namespace.iter().chain(without) {
        Api::<ManagedCluster>::all(kube.clone())
            .create(
                &PostParams::default(),
                &ManagedCluster::new(
                    cluster,
                    ManagedClusterSpec {
                        hub_accepts_client: with_namespace.contains(cluster),
                        ..ManagedClusterSpec::default()
                    },
                ),
            )
            .await
            .unwrap();
    }
    for cluster in with_namespace {
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some((*cluster).to_owned());
        Api::<Namespace>::all(kube.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    (hub, kube)
}

async fn get_work(kube: &Client, cluster: &str, name: &str) -> Option<ManifestWork> {
    Api::<ManifestWork>::namespaced(kube.clone(), cluster)
        .get_opt(name)
        .await
        .unwrap()
}

/// `ocmctl` with `input` on its standard input.
fn ocmctl_with_stdin(kubeconfig: &Path, args: &[&str], input: &str) -> Run {
    let mut child = ocmctl_command(kubeconfig, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

/// What the agent would report for `web`: applied, available, and the Deployment's replicas.
fn agent_status() -> ManifestWorkStatus {
    let now = jiff::Timestamp::now();
    let mut conditions = Vec::new();
    condition::set(
        &mut conditions,
        CONDITION_APPLIED,
        ConditionStatus::True,
        REASON_APPLIED_MANIFEST_WORK_COMPLETE,
        "Apply manifest work complete",
        now,
    );
    condition::set(
        &mut conditions,
        CONDITION_AVAILABLE,
        ConditionStatus::True,
        REASON_RESOURCES_AVAILABLE,
        "All resources are available",
        now,
    );
    let value = |name: &str, v: i64| FeedbackValue {
        name: name.to_owned(),
        field_value: FieldValue::integer(v),
    };
    ManifestWorkStatus {
        conditions,
        resource_status: ManifestResourceStatus {
            manifests: vec![
                ManifestCondition {
                    resource_meta: ManifestResourceMeta {
                        ordinal: 0,
                        version: "v1".into(),
                        kind: "ConfigMap".into(),
                        resource: "configmaps".into(),
                        name: "web-config".into(),
                        namespace: "default".into(),
                        ..ManifestResourceMeta::default()
                    },
                    ..ManifestCondition::default()
                },
                ManifestCondition {
                    resource_meta: ManifestResourceMeta {
                        ordinal: 1,
                        group: "apps".into(),
                        version: "v1".into(),
                        kind: "Deployment".into(),
                        resource: "deployments".into(),
                        name: "web".into(),
                        namespace: "default".into(),
                    },
                    status_feedback: StatusFeedbackResult {
                        values: vec![
                            value("ReadyReplicas", 2),
                            value("Replicas", 2),
                            value("AvailableReplicas", 2),
                        ],
                    },
                    conditions: Vec::new(),
                },
            ],
        },
    }
}

#[tokio::test]
async fn create_work_delivers_to_each_cluster_and_get_works_shows_status() {
    let (hub, kube) = hub("works", &["cluster1", "cluster2"], &["cluster3"]).await;
    let kubeconfig = hub.kubeconfig_path();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    let file = file.to_str().unwrap();

    let run = ocmctl(kubeconfig, &["get", "works"]);
    assert!(run.ok && run.out == "No works found.\n", "{run:?}");

    // One ManifestWork per cluster, in the cluster's namespace, with the file's objects in order.
    let run = ocmctl(
        kubeconfig,
        &[
            "create",
            "work",
            "web",
            "-f",
            file,
            "--clusters",
            "cluster1,cluster2",
        ],
    );
    assert!(run.ok, "{run:?}");
    assert_eq!(
        run.out,
        "cluster1: work web created\ncluster2: work web created\n"
    );
    for cluster in ["cluster1", "cluster2"] {
        let work = get_work(&kube, cluster, "web").await.unwrap();
        let manifests = &work.spec.workload.manifests;
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[0].name(), Some("web-config"));
        assert_eq!(manifests[1].kind(), Some("Deployment"));
        assert_eq!(manifests[1].0["spec"]["replicas"], 2);
    }

    // Again without --overwrite: refused, naming each cluster and the flag.
    let run = ocmctl(
        kubeconfig,
        &[
            "create",
            "work",
            "web",
            "-f",
            file,
            "-c",
            "cluster1",
            "--clusters",
            "cluster2",
        ],
    );
    assert!(!run.ok, "{run:?}");
    assert!(
        run.err.contains("nothing was changed on the hub")
            && run
                .err
                .contains("work \"web\" already exists in cluster \"cluster1\"")
            && run
                .err
                .contains("work \"web\" already exists in cluster \"cluster2\"")
            && run.err.contains("--overwrite"),
        "{}",
        run.err
    );

    // --overwrite with manifests from standard input replaces the workload.
    let more = format!(
        "{MANIFESTS}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80}}]\n"
    );
    let overwrite = [
        "create",
        "work",
        "web",
        "-f",
        "-",
        "--clusters",
        "cluster1,cluster2",
        "--overwrite",
    ];
    let run = ocmctl_with_stdin(kubeconfig, &overwrite, &more);
    assert!(run.ok, "{run:?}");
    assert_eq!(
        run.out,
        "cluster1: work web updated\ncluster2: work web updated\n"
    );
    for cluster in ["cluster1", "cluster2"] {
        let work = get_work(&kube, cluster, "web").await.unwrap();
        assert_eq!(work.spec.workload.manifests.len(), 3);
        assert_eq!(work.spec.workload.manifests[2].kind(), Some("Service"));
    }
    let run = ocmctl_with_stdin(kubeconfig, &overwrite, &more);
    assert!(run.ok, "{run:?}");
    assert_eq!(
        run.out,
        "cluster1: work web unchanged\ncluster2: work web unchanged\n"
    );

    // Clusters that cannot take the work: every one named, and nothing written anywhere.
    let run = ocmctl(
        kubeconfig,
        &[
            "create",
            "work",
            "other",
            "-f",
            file,
            "--clusters",
            "cluster1,nope,cluster3",
        ],
    );
    assert!(!run.ok, "{run:?}");
    assert!(
        run.err
            .contains("cluster \"nope\" is not a managed cluster of this hub")
            && run
                .err
                .contains("cluster \"cluster3\" has no namespace on the hub")
            && run.err.contains("ocmctl accept --clusters cluster3"),
        "{}",
        run.err
    );
    assert!(get_work(&kube, "cluster1", "other").await.is_none());

    // An invalid work: every problem at once, with the manifest it is about; nothing sent.
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: default}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {generateName: s-, name: s}\n",
    )
    .unwrap();
    let run = ocmctl(
        kubeconfig,
        &[
            "create",
            "work",
            "bad",
            "-f",
            invalid.to_str().unwrap(),
            "-c",
            "cluster1",
        ],
    );
    assert!(!run.ok, "{run:?}");
    assert!(
        run.err.contains("work \"bad\" is not valid, so nothing was sent to the hub")
            && run.err.contains(
                "spec.workload.manifests[0].metadata.name: Required value: name must be set in manifest (manifest 1 of 2: a ConfigMap)"
            )
            && run
                .err
                .contains("spec.workload.manifests[1].metadata.generateName: Forbidden"),
        "{}",
        run.err
    );
    assert!(get_work(&kube, "cluster1", "bad").await.is_none());
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: ConfigMap\nmetadata:\n  name: a\n bad: [\n").unwrap();
    let run = ocmctl(
        kubeconfig,
        &[
            "create",
            "work",
            "bad",
            "-f",
            broken.to_str().unwrap(),
            "-c",
            "cluster1",
        ],
    );
    assert!(!run.ok, "{run:?}");
    assert!(
        run.err.contains("broken.yaml is not valid YAML"),
        "{}",
        run.err
    );

    // The agent's report on cluster1 (written here as the hub's work service would) shows in
    // the table: conditions and the Deployment's fed-back replicas.
    Api::<ManifestWork>::namespaced(kube.clone(), "cluster1")
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": agent_status()})),
        )
        .await
        .unwrap();
    let run = ocmctl(kubeconfig, &["get", "works"]);
    assert!(run.ok, "{run:?}");
    let lines: Vec<Vec<&str>> = run
        .out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "CLUSTER",
            "MANIFESTS",
            "APPLIED",
            "AVAILABLE",
            "AGE",
            "FEEDBACK"
        ],
        "{}",
        run.out
    );
    assert_eq!(lines.len(), 3, "{}", run.out);
    assert_eq!(
        lines[1][..5],
        ["web", "cluster1", "3", "True", "True"],
        "{}",
        run.out
    );
    assert_eq!(
        lines[1][6], "ReadyReplicas=2,Replicas=2,AvailableReplicas=2",
        "{}",
        run.out
    );
    assert_eq!(lines[2][..3], ["web", "cluster2", "3"], "{}", run.out);
    assert_eq!(lines[2].len(), 4, "no status yet, only an age: {}", run.out);
    // The columns line up under their headers.
    let header = run.out.lines().next().unwrap();
    let row = run.out.lines().nth(1).unwrap();
    assert_eq!(header.find("APPLIED"), row.find("True"), "{}", run.out);

    let run = ocmctl(kubeconfig, &["get", "works", "--cluster", "cluster2"]);
    assert!(run.ok, "{run:?}");
    assert_eq!(run.out.lines().count(), 2, "{}", run.out);
    assert!(
        run.out
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("web    cluster2"),
        "{}",
        run.out
    );

    let run = ocmctl(kubeconfig, &["get", "works", "web", "-o", "json"]);
    assert!(run.ok, "{run:?}");
    let works: serde_json::Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(works.as_array().unwrap().len(), 2);
    assert_eq!(works[0]["kind"], "ManifestWork");
    assert_eq!(works[0]["metadata"]["namespace"], "cluster1");
    assert_eq!(works[0]["status"]["conditions"][0]["type"], "Applied");
    let run = ocmctl(
        kubeconfig,
        &["get", "work", "web", "-c", "cluster1", "-o", "yaml"],
    );
    assert!(run.ok, "{run:?}");
    let works: Vec<ManifestWork> = serde_saphyr::from_str(&run.out).unwrap();
    assert_eq!(works.len(), 1);
    let status = works[0].status.as_ref().unwrap();
    assert_eq!(status.resource_status, agent_status().resource_status);
    assert_eq!(status.conditions.len(), 2);

    let run = ocmctl(kubeconfig, &["get", "works", "missing"]);
    assert!(
        run.ok && run.out == "No works found named missing.\n",
        "{run:?}"
    );
    let run = ocmctl(kubeconfig, &["get", "works", "--cluster", "nope"]);
    assert!(
        !run.ok
            && run
                .err
                .contains("cluster \"nope\" is not a managed cluster"),
        "{run:?}"
    );
    hub.stop();
}

#[tokio::test]
async fn delete_work_waits_until_the_agent_releases_it() {
    let (hub, kube) = hub("works-delete", &["cluster1", "cluster2"], &[]).await;
    let kubeconfig = hub.kubeconfig_path();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    let file = file.to_str().unwrap();
    for name in ["web", "forced"] {
        let run = ocmctl(
            kubeconfig,
            &[
                "create",
                "work",
                name,
                "-f",
                file,
                "--clusters",
                "cluster1,cluster2",
            ],
        );
        assert!(run.ok, "{run:?}");
    }
    // The agent's finalizer on cluster1's works, as an agent adds it.
    let hold = serde_json::json!({"metadata": {"finalizers": [MANIFEST_WORK_FINALIZER]}});
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    let works1 = Api::<ManifestWork>::namespaced(kube.clone(), "cluster1");
    for name in ["web", "forced"] {
        works1
            .patch(name, &PatchParams::default(), &Patch::Merge(&hold))
            .await
            .unwrap();
    }

    // Nothing holds cluster2's: gone at once.
    let run = ocmctl(
        kubeconfig,
        &["delete", "work", "web", "--cluster", "cluster2"],
    );
    assert!(run.ok, "{run:?}");
    assert_eq!(run.out, "cluster2: work web deleted\n");
    assert!(get_work(&kube, "cluster2", "web").await.is_none());

    // cluster1's waits for its agent: without --wait that is said, with a short --timeout the
    // error names the finalizer and what to do.
    let run = ocmctl(
        kubeconfig,
        &["delete", "work", "web", "--cluster", "cluster1"],
    );
    assert!(run.ok, "{run:?}");
    assert!(
        run.out.contains("cluster1: work web is being deleted"),
        "{}",
        run.out
    );
    let work = get_work(&kube, "cluster1", "web").await.unwrap();
    assert!(work.metadata.deletion_timestamp.is_some());
    let run = ocmctl(
        kubeconfig,
        &[
            "delete",
            "work",
            "web",
            "-c",
            "cluster1",
            "--wait",
            "--timeout",
            "1s",
        ],
    );
    assert!(!run.ok, "{run:?}");
    assert!(
        // How long it waited depends on the machine's load; what is said does not.
        run.err
            .contains("work \"web\" is still being deleted after ")
            && run.err.contains(&format!(
                "s in cluster1 (finalizer {MANIFEST_WORK_FINALIZER})"
            ))
            && run.err.contains("--force"),
        "{}",
        run.err
    );

    // --wait waits until the agent lets go, showing plain progress lines in a pipe.
    let mut waiting = ocmctl_command(
        kubeconfig,
        &["delete", "work", "web", "--cluster", "cluster1", "--wait"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "delete --wait returned while the finalizer was still there"
    );
    works1
        .patch("web", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while waiting.try_wait().unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "delete --wait never returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run: Run = waiting.wait_with_output().unwrap().into();
    assert!(run.ok, "{run:?}");
    assert_eq!(run.out, "cluster1: work web deleted\n");
    assert!(
        run.err
            .starts_with("waiting for work web to be deleted from cluster1 …\n")
            && run.err.contains("work web deleted from cluster1 (")
            && !run.err.contains('\r')
            && !run.err.contains('\x1b'),
        "{}",
        run.err
    );
    assert!(get_work(&kube, "cluster1", "web").await.is_none());

    // Already gone: said, not an error; a cluster that does not exist at all is one.
    let run = ocmctl(
        kubeconfig,
        &["delete", "work", "web", "--clusters", "cluster1,cluster2"],
    );
    assert!(run.ok, "{run:?}");
    assert_eq!(
        run.out,
        "cluster1: work web not found (already deleted)\ncluster2: work web not found (already deleted)\n"
    );
    let run = ocmctl(kubeconfig, &["delete", "work", "web", "--cluster", "nope"]);
    assert!(
        !run.ok
            && run
                .err
                .contains("cluster \"nope\" is not a managed cluster"),
        "{run:?}"
    );

    // --force removes the finalizer: both gone at once, held or not.
    let run = ocmctl(
        kubeconfig,
        &[
            "delete",
            "work",
            "forced",
            "--clusters",
            "cluster1,cluster2",
            "--force",
            "--wait",
        ],
    );
    assert!(run.ok, "{run:?}");
    assert_eq!(
        run.out,
        "cluster1: work forced deleted\ncluster2: work forced deleted\n"
    );
    assert!(get_work(&kube, "cluster1", "forced").await.is_none());
    hub.stop();
}
