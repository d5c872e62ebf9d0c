//! The work agent's apply and delete on a real managed cluster (apiserver, controller-manager,
//! kwok): a work with a namespace, Deployment, Service, ConfigMap, a CRD and one of its custom
//! resources applies in order and feeds back its replicas; applying again writes nothing; an
//! edit on the spoke is put back; an update is followed and a removed manifest pruned; an
//! invalid manifest fails alone; ServerSideApply conflicts are reported, CreateOnly never
//! overwrites, ReadOnly only reads; deleting removes what the work owns — all of it
//! (Foreground), none (Orphan), or all but the listed (SelectivelyOrphan).

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::apps::v1::Deployment;
use ocm_api::k8s_openapi::api::core::v1::{ConfigMap, Service};
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    AppliedManifestWork, CONDITION_APPLIED, CONDITION_AVAILABLE, DeleteOption,
    DeletePropagationPolicy, FeedbackRule, FeedbackType, Manifest, ManifestCondition,
    ManifestConfigOption, ManifestWork, ManifestWorkSpec, ManifestsTemplate, OrphaningRule,
    ResourceIdentifier, SelectivelyOrphan, ServerSideApplyConfig, UpdateStrategy,
    UpdateStrategyType,
};
use ocm_spoke_agent::work::reconcile::{Applier, WorkOutcome};
use ocm_testenv::Cluster;
use serde_json::{Value, json};

async fn spoke(name: &str) -> (Cluster, Client) {
    let cluster = Cluster::start(name).await.unwrap();
    let client = cluster.client().unwrap();
    ocm_hub_server::crds::install(&client, &ocm_api::crds::spoke(), Duration::from_secs(30))
        .await
        .unwrap();
    (cluster, client)
}

fn work(name: &str, manifests: Vec<Value>, generation: i64) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: manifests.into_iter().map(Manifest).collect(),
            },
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some("cluster1".into());
    work.metadata.generation = Some(generation);
    work
}

fn applier(client: &Client) -> Applier {
    Applier::new(
        client.clone(),
        "hubhash".into(),
        "agent-1".into(),
        64 * 1024,
    )
}

fn manifest<'a>(outcome: &'a WorkOutcome, kind: &str, name: &str) -> &'a ManifestCondition {
    outcome
        .status
        .resource_status
        .manifests
        .iter()
        .find(|m| m.resource_meta.kind == kind && m.resource_meta.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}: {:?}", outcome.status))
}

fn condition_of(m: &ManifestCondition, t: &str) -> Option<(ConditionStatus, String)> {
    condition::find(&m.conditions, t).map(|c| (c.status, c.message.clone()))
}

fn work_condition(outcome: &WorkOutcome, t: &str) -> Option<ConditionStatus> {
    condition::find(&outcome.status.conditions, t).map(|c| c.status)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "app"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.27"}],
                    "nodeSelector": {"type": "kwok"},
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}]
                }
            }
        }
    })
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "app"}, "data": {"key": value}})
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    })
}

#[tokio::test]
async fn a_work_applies_in_order_feeds_back_restores_follows_and_prunes() {
    let (cluster, client) = spoke("work-apply").await;
    let applier = applier(&client);
    let manifests = vec![
        deployment(),
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "app"}, "spec": {"size": 3}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "app"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        config_map("settings", "one"),
        crd(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
        // Invalid: an unknown kind, and no name. They fail; the others apply.
        json!({"apiVersion": "nowhere.io/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "app"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "app"}}),
    ];
    let mut w = work("web", manifests.clone(), 1);
    w.spec.manifest_configs = vec![{
        let mut option = ManifestConfigOption::new(ResourceIdentifier {
            group: "apps".into(),
            resource: "deployments".into(),
            name: "web".into(),
            namespace: "app".into(),
        });
        option.feedback_rules = vec![FeedbackRule {
            r#type: FeedbackType::WellKnownStatus,
            json_paths: Vec::new(),
        }];
        option
    }];
    let outcome = applier.apply(&w).await.unwrap();
    for (kind, name) in [
        ("Namespace", "app"),
        ("CustomResourceDefinition", "widgets.example.com"),
        ("Deployment", "web"),
        ("Widget", "w1"),
        ("Service", "web"),
        ("ConfigMap", "settings"),
    ] {
        let m = manifest(&outcome, kind, name);
        assert_eq!(
            condition_of(m, CONDITION_APPLIED).map(|c| c.0),
            Some(ConditionStatus::True),
            "{kind} {name}: {:?}",
            m.conditions
        );
        assert_eq!(
            condition_of(m, CONDITION_AVAILABLE).map(|c| c.0),
            Some(ConditionStatus::True)
        );
    }
    let gadget = manifest(&outcome, "Gadget", "g");
    let (status, message) = condition_of(gadget, CONDITION_APPLIED).unwrap();
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("nowhere.io/v1"), "{message}");
    let nameless = manifest(&outcome, "ConfigMap", "");
    let (_, message) = condition_of(nameless, CONDITION_APPLIED).unwrap();
    assert!(message.contains("without metadata.name"), "{message}");
    assert_eq!(
        work_condition(&outcome, CONDITION_APPLIED),
        Some(ConditionStatus::False)
    );
    assert!(outcome.failed());
    // Ordinals follow the work's order.
    let ordinals: Vec<i32> = outcome
        .status
        .resource_status
        .manifests
        .iter()
        .map(|m| m.resource_meta.ordinal)
        .collect();
    assert_eq!(ordinals, (0..8).collect::<Vec<_>>());

    // Owned by the AppliedManifestWork, which records what was applied.
    let applied = Api::<AppliedManifestWork>::all(client.clone())
        .get("hubhash-web")
        .await
        .unwrap();
    assert_eq!(applied.spec.manifest_work_name, "web");
    assert_eq!(applied.status.unwrap().applied_resources.len(), 6);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "app");
    let live = deployments.get("web").await.unwrap();
    assert_eq!(
        live.metadata.owner_references.unwrap()[0].uid,
        applied.metadata.uid.unwrap()
    );

    // The valid part only, from now on. Replicas come back as feedback once kwok runs the pods.
    let valid: Vec<Value> = manifests[..6].to_vec();
    let mut w = work("web", valid.clone(), 2);
    w.spec.manifest_configs = work_configs();
    let fed_back = ocm_testenv::eventually(
        "availableReplicas fed back",
        Duration::from_secs(60),
        async || {
            let outcome = applier.apply(&w).await.unwrap();
            let values = &manifest(&outcome, "Deployment", "web")
                .status_feedback
                .values;
            values
                .iter()
                .find(|v| v.name == "AvailableReplicas")
                .and_then(|v| v.field_value.integer)
                .filter(|n| *n == 2)
                .map(|_| outcome)
        },
    )
    .await;
    assert_eq!(
        work_condition(&fed_back, CONDITION_APPLIED),
        Some(ConditionStatus::True)
    );
    assert_eq!(
        work_condition(&fed_back, CONDITION_AVAILABLE),
        Some(ConditionStatus::True)
    );
    // Applying again writes nothing.
    let again = applier.apply(&w).await.unwrap();
    assert_eq!(again.writes, 0, "an unchanged work is not rewritten");

    // An edit on the spoke is put back; labels added by others stay.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}, "spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let restored = applier.apply(&w).await.unwrap();
    assert_eq!(
        restored.writes,
        1,
        "{:?}",
        manifest(&restored, "Deployment", "web").conditions
    );
    let live = deployments.get("web").await.unwrap();
    assert_eq!(live.spec.unwrap().replicas, Some(2));
    assert_eq!(live.metadata.labels.unwrap()["team"], "x");

    // The hub changes the ConfigMap and drops the Service: followed, and pruned.
    let mut next: Vec<Value> = valid.clone();
    next[3] = config_map("settings", "two");
    next.remove(2);
    let mut w = work("web", next, 3);
    w.spec.manifest_configs = work_configs();
    applier.apply(&w).await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "app");
    assert_eq!(
        config_maps.get("settings").await.unwrap().data.unwrap()["key"],
        "two"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "app");
    ocm_testenv::eventually("the Service pruned", Duration::from_secs(20), async || {
        services
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    cluster.stop();
}

fn work_configs() -> Vec<ManifestConfigOption> {
    let mut option = ManifestConfigOption::new(ResourceIdentifier {
        group: "apps".into(),
        resource: "deployments".into(),
        name: "*".into(),
        namespace: "*".into(),
    });
    option.feedback_rules = vec![FeedbackRule {
        r#type: FeedbackType::WellKnownStatus,
        json_paths: Vec::new(),
    }];
    vec![option]
}

fn strategy(
    kind: UpdateStrategyType,
    name: &str,
    ssa: Option<ServerSideApplyConfig>,
) -> ManifestConfigOption {
    let mut option = ManifestConfigOption::new(ResourceIdentifier {
        group: String::new(),
        resource: "configmaps".into(),
        name: name.into(),
        namespace: "default".into(),
    });
    option.update_strategy = Some(UpdateStrategy {
        r#type: kind,
        server_side_apply: ssa,
    });
    option
}

fn plain_config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"key": value}})
}

#[tokio::test]
async fn update_strategies_conflict_create_once_and_read_only_as_ocm() {
    let (cluster, client) = spoke("work-strategies").await;
    let applier = applier(&client);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    // Someone else manages `ssa`'s key; `created` exists already; `watched` exists, `absent` not.
    for (name, value) in [("ssa", "theirs"), ("created", "spoke"), ("watched", "live")] {
        let object: ConfigMap = serde_json::from_value(plain_config_map(name, value)).unwrap();
        config_maps
            .patch(name, &PatchParams::apply("kubectl"), &Patch::Apply(&object))
            .await
            .unwrap();
    }
    let mut w = work(
        "strategies",
        vec![
            plain_config_map("ssa", "ours"),
            plain_config_map("created", "hub"),
            plain_config_map("watched", "hub"),
            plain_config_map("absent", "hub"),
        ],
        1,
    );
    w.spec.manifest_configs = vec![
        strategy(UpdateStrategyType::ServerSideApply, "ssa", None),
        strategy(UpdateStrategyType::CreateOnly, "created", None),
        strategy(UpdateStrategyType::ReadOnly, "watched", None),
        strategy(UpdateStrategyType::ReadOnly, "absent", None),
    ];
    w.spec.manifest_configs[2].feedback_rules = vec![FeedbackRule {
        r#type: FeedbackType::JsonPaths,
        json_paths: vec![ocm_api::work::v1::JsonPath {
            name: "key".into(),
            version: String::new(),
            path: ".data.key".into(),
        }],
    }];
    let outcome = applier.apply(&w).await.unwrap();
    let ssa = manifest(&outcome, "ConfigMap", "ssa");
    let applied = condition::find(&ssa.conditions, CONDITION_APPLIED).unwrap();
    assert_eq!(
        (applied.status, applied.reason.as_str()),
        (ConditionStatus::False, "ApplyConflict")
    );
    assert!(
        applied.message.contains("kubectl"),
        "names the other manager: {}",
        applied.message
    );
    let value = |name: &str| {
        let config_maps = config_maps.clone();
        let name = name.to_owned();
        async move { config_maps.get(&name).await.unwrap().data.unwrap()["key"].clone() }
    };
    assert_eq!(value("ssa").await, "theirs");
    assert_eq!(
        value("created").await,
        "spoke",
        "CreateOnly never overwrites"
    );
    assert_eq!(value("watched").await, "live", "ReadOnly never writes");
    assert!(
        config_maps.get_opt("absent").await.unwrap().is_none(),
        "ReadOnly never creates"
    );
    let watched = manifest(&outcome, "ConfigMap", "watched");
    assert_eq!(
        watched.status_feedback.values[0]
            .field_value
            .string
            .as_deref(),
        Some("live")
    );
    assert_eq!(
        condition_of(
            manifest(&outcome, "ConfigMap", "absent"),
            CONDITION_AVAILABLE
        )
        .map(|c| c.0),
        Some(ConditionStatus::False)
    );

    // With force, the conflict is taken over.
    w.spec.manifest_configs[0] = strategy(
        UpdateStrategyType::ServerSideApply,
        "ssa",
        Some(ServerSideApplyConfig {
            force: true,
            ..ServerSideApplyConfig::default()
        }),
    );
    w.metadata.generation = Some(2);
    let outcome = applier.apply(&w).await.unwrap();
    assert_eq!(
        condition_of(manifest(&outcome, "ConfigMap", "ssa"), CONDITION_APPLIED).map(|c| c.0),
        Some(ConditionStatus::True)
    );
    assert_eq!(value("ssa").await, "ours");
    // Deleting: only what the work wrote and owns goes; ReadOnly objects stay.
    while !applier.delete("strategies").await.unwrap() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(config_maps.get_opt("ssa").await.unwrap().is_none());
    assert!(config_maps.get_opt("watched").await.unwrap().is_some());
    cluster.stop();
}

#[tokio::test]
async fn deleting_a_work_removes_all_none_or_all_but_the_listed() {
    let (cluster, client) = spoke("work-delete").await;
    let applier = applier(&client);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let manifests = |prefix: &str| {
        vec![
            plain_config_map(&format!("{prefix}-a"), "1"),
            plain_config_map(&format!("{prefix}-b"), "1"),
        ]
    };
    let policies = [
        ("foreground", DeletePropagationPolicy::Foreground, vec![]),
        ("orphan", DeletePropagationPolicy::Orphan, vec![]),
        (
            "selective",
            DeletePropagationPolicy::SelectivelyOrphan,
            vec!["selective-b"],
        ),
    ];
    for (name, policy, orphaned) in &policies {
        let mut w = work(name, manifests(name), 1);
        w.spec.delete_option = Some(DeleteOption {
            propagation_policy: *policy,
            selectively_orphan: Some(SelectivelyOrphan {
                orphaning_rules: orphaned
                    .iter()
                    .map(|n| OrphaningRule {
                        group: String::new(),
                        resource: "configmaps".into(),
                        name: (*n).into(),
                        namespace: "default".into(),
                    })
                    .collect(),
            }),
            ttl_seconds_after_finished: None,
        });
        let outcome = applier.apply(&w).await.unwrap();
        assert!(!outcome.failed(), "{:?}", outcome.status);
    }
    for (name, _, _) in &policies {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !applier.delete(name).await.unwrap() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never finished deleting"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            Api::<AppliedManifestWork>::all(client.clone())
                .get_opt(&format!("hubhash-{name}"))
                .await
                .unwrap()
                .is_none(),
            "{name}'s AppliedManifestWork is gone"
        );
    }
    let exists = |name: &'static str| {
        let config_maps = config_maps.clone();
        async move { config_maps.get_opt(name).await.unwrap().is_some() }
    };
    assert!(!exists("foreground-a").await && !exists("foreground-b").await);
    assert!(exists("orphan-a").await && exists("orphan-b").await);
    assert!(!exists("selective-a").await && exists("selective-b").await);
    // What was orphaned carries no owner reference to the deleted record.
    let kept = config_maps.get("orphan-a").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    cluster.stop();
}

#[tokio::test]
async fn a_work_with_an_executor_applies_only_what_that_account_may() {
    use ocm_api::k8s_openapi::api::rbac::v1::{Role, RoleBinding, RoleRef, Subject};
    use ocm_api::work::v1::{
        ExecutorSubjectType, ManifestWorkExecutor, ManifestWorkExecutorSubject,
        ManifestWorkSubjectServiceAccount,
    };
    let (cluster, client) = spoke("work-executor").await;
    let applier = applier(&client);
    let mut w = work("as-deployer", vec![plain_config_map("deployed", "1")], 1);
    w.spec.executor = Some(ManifestWorkExecutor {
        subject: Some(ManifestWorkExecutorSubject {
            r#type: ExecutorSubjectType::ServiceAccount,
            service_account: Some(ManifestWorkSubjectServiceAccount {
                namespace: "default".into(),
                name: "deployer".into(),
            }),
        }),
    });
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let refused = applier.apply(&w).await.unwrap();
    let (status, message) = condition_of(
        manifest(&refused, "ConfigMap", "deployed"),
        CONDITION_APPLIED,
    )
    .unwrap();
    assert_eq!(status, ConditionStatus::False);
    assert!(
        message.contains("not allowed")
            && message.contains("system:serviceaccount:default:deployer"),
        "{message}"
    );
    assert!(
        config_maps.get_opt("deployed").await.unwrap().is_none(),
        "nothing applied"
    );

    // Granted what applying needs (in this namespace): applied.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "deployer", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update", "patch", "delete"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), "default")
        .create(&Default::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("deployer".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: "deployer".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "deployer".into(),
            namespace: Some("default".into()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), "default")
        .create(&Default::default(), &binding)
        .await
        .unwrap();
    let applied = ocm_testenv::eventually(
        "applied once granted",
        Duration::from_secs(20),
        async || {
            let outcome = applier.apply(&w).await.unwrap();
            (!outcome.failed()).then_some(outcome)
        },
    )
    .await;
    assert_eq!(
        work_condition(&applied, CONDITION_APPLIED),
        Some(ConditionStatus::True)
    );
    assert!(config_maps.get_opt("deployed").await.unwrap().is_some());
    cluster.stop();
}
