//! Proof that a local cluster is a real Kubernetes: Deployments become Available on kwok
//! nodes, garbage collection and namespace deletion happen, and service-account tokens work.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ocm_api::{k8s_openapi, kube};
use ocm_testenv::Cluster;

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn nginx_deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "nginx", "image": "nginx:1.27" }] }
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn deployment_becomes_available_on_kwok_node_and_is_garbage_collected_on_delete() {
    let cluster = Cluster::start("workloads").await.unwrap();
    let client = cluster.client().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");

    let ssa = PatchParams::apply("ocm-testenv-test").force();
    deployments
        .patch("web", &ssa, &Patch::Apply(nginx_deployment("web", 2)))
        .await
        .unwrap();

    let available = eventually("2 available replicas", Duration::from_secs(60), || async {
        let deployment = deployments.get("web").await.ok()?;
        let available = deployment.status?.available_replicas?;
        (available == 2).then_some(available)
    })
    .await;
    assert_eq!(available, 2);

    let running = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 2);
    let kwok_node = &cluster.node_names()[0];
    for pod in &running.items {
        let spec = pod.spec.as_ref().unwrap();
        let status = pod.status.as_ref().unwrap();
        assert_eq!(
            spec.node_name.as_ref(),
            Some(kwok_node),
            "scheduled onto the kwok node"
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_some(), "kwok assigns a pod IP");
    }
    assert_eq!(
        replicasets
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Background cascading deletion: only the garbage collector removes the dependents.
    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    eventually(
        "ReplicaSet and Pods garbage-collected",
        Duration::from_secs(60),
        || async {
            let sets = replicasets
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let left = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            (sets.items.is_empty() && left.items.is_empty()).then_some(())
        },
    )
    .await;
    cluster.stop();
}

#[tokio::test]
async fn namespace_delete_completes_after_its_contents_are_removed() {
    let cluster = Cluster::start("namespaces").await.unwrap();
    let client = cluster.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "doomed" } })).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({ "metadata": { "name": "data" }, "data": { "k": "v" } }),
    )
    .unwrap();
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    // The namespace controller must empty it and remove the `kubernetes` finalizer.
    eventually("namespace gone", Duration::from_secs(60), || async {
        matches!(namespaces.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await;
    cluster.stop();
}

#[tokio::test]
async fn service_account_tokens_and_client_certificates_authenticate_as_issued() {
    let cluster = Cluster::start("tokens").await.unwrap();
    let client = cluster.client().unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let sa: ServiceAccount =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "bootstrap" } })).unwrap();
    accounts.create(&PostParams::default(), &sa).await.unwrap();

    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec![cluster.server_url().to_owned()],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued = accounts
        .create_token_request("bootstrap", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token;

    let reviews: Api<TokenReview> = Api::all(client);
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            audiences: None,
        },
        ..Default::default()
    };
    let result = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(result.authenticated, Some(true), "{result:?}");
    assert_eq!(
        result.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:default:bootstrap")
    );

    let forged = TokenReview {
        spec: TokenReviewSpec {
            token: Some("not-a-token".into()),
            audiences: None,
        },
        ..Default::default()
    };
    let result = Api::<TokenReview>::all(cluster.client().unwrap())
        .create(&PostParams::default(), &forged)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(result.authenticated, Some(true));

    // A client certificate from `kubeconfig_for` authenticates with its CN as user and every O
    // as a group.
    let yaml = cluster
        .kubeconfig_for("bob", &["team-a", "team-b"])
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let bob = kube::Client::try_from(config).unwrap();
    let review = Api::<SelfSubjectReview>::all(bob)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(user.username.as_deref(), Some("bob"));
    let groups = user.groups.unwrap_or_default();
    for group in ["team-a", "team-b", "system:authenticated"] {
        assert!(
            groups.iter().any(|g| g == group),
            "{group} missing from {groups:?}"
        );
    }
    cluster.stop();
}
