//! Work delivery as a user meets it: the local environment (`ocm-localenv up --ocm`: a hub and
//! two managed clusters, the real `ocm-hub` and one real `ocm-agent` process per cluster, joined
//! with `ocmctl`), and a ManifestWork applied with kubectl to the hub for cluster2 holding a
//! Deployment, a Service, a ConfigMap, a CRD and one of its custom resources. It lands on
//! cluster2 only, with the Deployment's replicas fed back to the hub.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ocm_testenv::Assets;

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

/// kubectl against `cluster` of the environment in `dir`; stdout, or `None` when it failed.
fn kubectl(dir: &Path, cluster: &str, args: &[&str], stdin: Option<&str>) -> Option<String> {
    let mut child = Command::new(Assets::from_env().unwrap().kubectl)
        .arg("--kubeconfig")
        .arg(dir.join(format!("{cluster}.kubeconfig")))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

const WORK: &str = r#"
apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: shop
  namespace: cluster2
spec:
  workload:
    manifests:
      - apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: carts.shop.example.com
        spec:
          group: shop.example.com
          scope: Namespaced
          names: {plural: carts, singular: cart, kind: Cart}
          versions:
            - name: v1
              served: true
              storage: true
              schema:
                openAPIV3Schema:
                  type: object
                  properties:
                    spec:
                      type: object
                      properties:
                        items: {type: integer}
      - apiVersion: shop.example.com/v1
        kind: Cart
        metadata: {name: first, namespace: shop}
        spec: {items: 3}
      - apiVersion: v1
        kind: ConfigMap
        metadata: {name: shop-settings, namespace: shop}
        data: {currency: EUR}
      - apiVersion: apps/v1
        kind: Deployment
        metadata: {name: shop, namespace: shop}
        spec:
          replicas: 2
          selector: {matchLabels: {app: shop}}
          template:
            metadata: {labels: {app: shop}}
            spec:
              containers: [{name: shop, image: "nginx:1.27"}]
      - apiVersion: v1
        kind: Service
        metadata: {name: shop, namespace: shop}
        spec:
          selector: {app: shop}
          ports: [{port: 80}]
      - apiVersion: v1
        kind: Namespace
        metadata: {name: shop}
  manifestConfigs:
    - resourceIdentifier: {group: apps, resource: deployments, name: shop, namespace: shop}
      feedbackRules: [{type: WellKnownStatus}]
"#;

#[test]
fn a_work_with_a_crd_its_resource_and_a_deployment_lands_on_the_named_cluster_only() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("env");
    localenv(&["up", "--managed", "2", "--ocm"], &dir);

    // Listed in an order that does not work as written: the agent applies the namespace first,
    // then the CRD, and the Cart once its CRD is served.
    kubectl(&dir, "hub", &["apply", "-f", "-"], Some(WORK)).expect("kubectl apply the work");
    let work = eventually(
        "the work Applied and Available with 2 replicas fed back",
        Duration::from_secs(120),
        || {
            let json = kubectl(
                &dir,
                "hub",
                &[
                    "get",
                    "manifestwork",
                    "-n",
                    "cluster2",
                    "shop",
                    "-o",
                    "json",
                ],
                None,
            )?;
            let work: serde_json::Value = serde_json::from_str(&json).ok()?;
            let conditions = work["status"]["conditions"].as_array()?.clone();
            let holds = |t: &str| {
                conditions
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True")
            };
            let replicas = work["status"]["resourceStatus"]["manifests"]
                .as_array()?
                .iter()
                .flat_map(|m| m["statusFeedback"]["values"].as_array().cloned())
                .flatten()
                .find(|v| v["name"] == "AvailableReplicas")?["fieldValue"]["integer"]
                .as_i64()?;
            (holds("Applied") && holds("Available") && replicas == 2).then_some(work)
        },
    );
    assert_eq!(
        work["status"]["resourceStatus"]["manifests"]
            .as_array()
            .unwrap()
            .len(),
        6,
        "a status for every manifest: {work}"
    );

    // On cluster2: every object, the custom resource included, and the pods Running.
    for (kind, name) in [
        ("crd", "carts.shop.example.com"),
        ("cart", "first"),
        ("configmap", "shop-settings"),
        ("deployment", "shop"),
        ("service", "shop"),
    ] {
        let namespace: &[&str] = if kind == "crd" { &[] } else { &["-n", "shop"] };
        let args = [&["get", kind, name][..], namespace].concat();
        assert!(
            kubectl(&dir, "cluster2", &args, None).is_some(),
            "{kind} {name} on cluster2"
        );
    }
    let pods = kubectl(
        &dir,
        "cluster2",
        &["get", "pods", "-n", "shop", "--no-headers"],
        None,
    )
    .unwrap();
    assert_eq!(
        pods.lines().filter(|l| l.contains(" Running ")).count(),
        2,
        "{pods}"
    );
    // On cluster1: nothing of it.
    assert!(
        kubectl(&dir, "cluster1", &["get", "namespace", "shop"], None).is_none(),
        "cluster1 got the shop namespace"
    );
    assert!(
        kubectl(
            &dir,
            "cluster1",
            &["get", "crd", "carts.shop.example.com"],
            None
        )
        .is_none(),
        "cluster1 got the CRD"
    );

    let out = localenv(&["down"], &dir);
    assert!(out.contains("none left running"), "{out}");
}
