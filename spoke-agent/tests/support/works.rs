//! ManifestWorks and checks the work tests share.

use std::time::Duration;

use ocm_api::cluster::v1::{CONDITION_AVAILABLE as CLUSTER_AVAILABLE, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    FeedbackRule, FeedbackType, Manifest, ManifestConfigOption, ManifestWork, ManifestWorkSpec,
    ManifestsTemplate, ResourceIdentifier,
};
use ocm_spoke_agent::agent::{AgentConfig, WorkOptions};
use ocm_spoke_agent::credentials::{AGENT_NAMESPACE, CredentialStore, HUB_SECRET};
use ocm_spoke_agent::status::ClaimPolicy;
use serde_json::json;

/// A work `name` for `cluster`: Namespace `namespace`, ConfigMap `settings` there with
/// `data.mode = setting`, and Deployment `web` of nginx with `replicas`, whose available
/// replicas are fed back (WellKnownStatus).
pub(crate) fn web_work(
    name: &str,
    cluster: &str,
    namespace: &str,
    replicas: i64,
    setting: &str,
) -> ManifestWork {
    let mut option = ManifestConfigOption::new(ResourceIdentifier {
        group: "apps".into(),
        resource: "deployments".into(),
        name: "web".into(),
        namespace: namespace.into(),
    });
    option.feedback_rules = vec![FeedbackRule {
        r#type: FeedbackType::WellKnownStatus,
        json_paths: Vec::new(),
    }];
    let manifests = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace}, "data": {"mode": setting}}),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
            }
        }),
    ];
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: manifests.into_iter().map(Manifest).collect(),
            },
            manifest_configs: vec![option],
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some(cluster.into());
    work
}

/// Whether the work's condition `t` is True for its current generation.
pub(crate) fn holds(work: &ManifestWork, t: &str) -> bool {
    work.status
        .as_ref()
        .and_then(|s| condition::find(&s.conditions, t))
        .is_some_and(|c| {
            c.status == ConditionStatus::True && c.observed_generation == work.metadata.generation
        })
}

/// The integer feedback value `name` of any manifest of the work.
pub(crate) fn feedback(work: &ManifestWork, name: &str) -> Option<i64> {
    work.status
        .as_ref()?
        .resource_status
        .manifests
        .iter()
        .flat_map(|m| m.status_feedback.values.iter())
        .find(|v| v.name == name)
        .and_then(|v| v.field_value.integer)
}

/// Waits until the hub has `cluster` Available (accepted: its namespace exists).
pub(crate) async fn wait_cluster_available(hub: &Client, cluster: &str) {
    let clusters: Api<ManagedCluster> = Api::all(hub.clone());
    ocm_testenv::eventually(
        &format!("{cluster} Available"),
        Duration::from_secs(60),
        async || {
            let found = clusters.get_opt(cluster).await.unwrap()?;
            let conditions = found.status?.conditions;
            (condition::find(&conditions, CLUSTER_AVAILABLE)?.status == ConditionStatus::True)
                .then_some(())
        },
    )
    .await;
}

/// The agent of cluster1 joining the hub on `port`, with the work settings `work`.
pub(crate) fn agent_config(
    spoke: &Client,
    port: u16,
    ca: &str,
    token: &str,
    work: WorkOptions,
) -> AgentConfig {
    AgentConfig {
        bootstrap: super::config(port, ca, token, Duration::from_secs(60)),
        credentials: CredentialStore::new(spoke.clone(), AGENT_NAMESPACE, HUB_SECRET),
        status_every: Duration::from_millis(500),
        claims: ClaimPolicy::default(),
        work,
    }
}
