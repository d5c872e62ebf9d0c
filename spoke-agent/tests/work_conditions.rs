//! ManifestWork condition rules on a real managed cluster (apiserver, controller-manager, kwok):
//! a CEL rule turns a Deployment's manifest condition True once the Deployment has rolled out,
//! with its message expression; a ConfigMap's rule follows the hub's changes to the data; a rule
//! reading a field that is not there is False with `ConditionRuleExpressionError`; a rule the
//! work drops takes its condition with it; a well-known rule for a kind without one sets nothing.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use ocm_api::condition::{self, Condition, ConditionStatus};
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_COMPLETE, ConditionRule, ConditionRuleType, Manifest,
    ManifestCondition, ManifestConfigOption, ManifestWork, ManifestWorkSpec, ManifestsTemplate,
    REASON_CONDITION_RULE_EVALUATED, REASON_CONDITION_RULE_EXPRESSION_ERROR, ResourceIdentifier,
};
use ocm_spoke_agent::work::reconcile::{Applier, WorkOutcome};
use ocm_testenv::Cluster;
use serde_json::{Value, json};

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

fn manifests(mode: &str) -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app"}}),
        deployment(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "app"},
               "data": {"mode": mode}}),
    ]
}

fn rule(condition: &str, expressions: &[&str], message_expression: &str) -> ConditionRule {
    ConditionRule {
        condition: condition.into(),
        r#type: ConditionRuleType::Cel,
        cel_expressions: expressions.iter().map(|e| (*e).to_owned()).collect(),
        message: String::new(),
        message_expression: message_expression.into(),
    }
}

fn config(resource: &str, name: &str, rules: Vec<ConditionRule>) -> ManifestConfigOption {
    let group = if resource == "deployments" {
        "apps"
    } else {
        ""
    };
    let mut option = ManifestConfigOption::new(ResourceIdentifier {
        group: group.into(),
        resource: resource.into(),
        name: name.into(),
        namespace: "app".into(),
    });
    option.condition_rules = rules;
    option
}

/// The work at `generation`, with the status the agent reported before (as the hub keeps it).
fn work(
    generation: i64,
    mode: &str,
    config_map_rules: Vec<ConditionRule>,
    previous: Option<&WorkOutcome>,
) -> ManifestWork {
    let mut work = ManifestWork::new(
        "conditions",
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: manifests(mode).into_iter().map(Manifest).collect(),
            },
            manifest_configs: vec![
                config(
                    "deployments",
                    "web",
                    vec![
                        rule(
                            "RolledOut",
                            &[
                                "hasConditions(object.status)",
                                "object.status.availableReplicas == object.spec.replicas",
                            ],
                            r#"result ? "rolled out" : "rolling out""#,
                        ),
                        // OCM has no well-known Complete for Deployments: nothing is set.
                        ConditionRule {
                            r#type: ConditionRuleType::WellKnownConditions,
                            ..rule(CONDITION_COMPLETE, &[], "")
                        },
                    ],
                ),
                config("configmaps", "settings", config_map_rules),
            ],
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some("cluster1".into());
    work.metadata.generation = Some(generation);
    work.status = previous.map(|p| p.status.clone());
    work
}

fn manifest<'a>(outcome: &'a WorkOutcome, kind: &str) -> &'a ManifestCondition {
    outcome
        .status
        .resource_status
        .manifests
        .iter()
        .find(|m| m.resource_meta.kind == kind)
        .unwrap_or_else(|| panic!("no status for {kind}: {:?}", outcome.status))
}

fn condition<'a>(outcome: &'a WorkOutcome, kind: &str, t: &str) -> Option<&'a Condition> {
    condition::find(&manifest(outcome, kind).conditions, t)
}

fn summary(c: Option<&Condition>) -> Option<(ConditionStatus, &str, &str, Option<i64>)> {
    c.map(|c| {
        (
            c.status,
            c.reason.as_str(),
            c.message.as_str(),
            c.observed_generation,
        )
    })
}

#[tokio::test]
async fn cel_condition_rules_follow_the_live_objects() {
    let cluster = Cluster::start("work-conditions").await.unwrap();
    let client = cluster.client().unwrap();
    ocm_hub_server::crds::install(&client, &ocm_api::crds::spoke(), Duration::from_secs(30))
        .await
        .unwrap();
    let applier = Applier::new(client, "hubhash".into(), "agent-1".into(), 64 * 1024);

    let configured = || rule("Configured", &["object.data.mode == 'on'"], "");
    let broken = || rule("Broken", &["object.data.missing == 'x'"], "");
    let w = work(1, "off", vec![configured(), broken()], None);
    // kwok runs the pods; the controller-manager then reports them available.
    let rolled_out = ocm_testenv::eventually(
        "the Deployment rolled out",
        Duration::from_secs(90),
        async || {
            let outcome = applier.apply(&w).await.unwrap();
            (condition(&outcome, "Deployment", "RolledOut")?.status == ConditionStatus::True)
                .then_some(outcome)
        },
    )
    .await;
    assert_eq!(
        summary(condition(&rolled_out, "Deployment", "RolledOut")),
        Some((
            ConditionStatus::True,
            REASON_CONDITION_RULE_EVALUATED,
            "rolled out",
            Some(1)
        ))
    );
    assert!(condition(&rolled_out, "Deployment", CONDITION_COMPLETE).is_none());
    assert_eq!(
        summary(condition(&rolled_out, "ConfigMap", "Configured")),
        Some((
            ConditionStatus::False,
            REASON_CONDITION_RULE_EVALUATED,
            "Manifest is not Configured",
            Some(1)
        ))
    );
    assert_eq!(
        summary(condition(&rolled_out, "ConfigMap", "Broken")),
        Some((
            ConditionStatus::False,
            REASON_CONDITION_RULE_EXPRESSION_ERROR,
            "no such key: missing",
            Some(1)
        ))
    );
    assert_eq!(
        condition(&rolled_out, "ConfigMap", CONDITION_APPLIED).map(|c| c.status),
        Some(ConditionStatus::True),
        "a failing rule does not fail the apply"
    );

    // The hub turns the mode on and drops the broken rule: the ConfigMap is rewritten, its
    // condition turns True for generation 2, and the dropped rule's condition is gone.
    let w = work(2, "on", vec![configured()], Some(&rolled_out));
    let updated = applier.apply(&w).await.unwrap();
    assert_eq!(
        summary(condition(&updated, "ConfigMap", "Configured")),
        Some((
            ConditionStatus::True,
            REASON_CONDITION_RULE_EVALUATED,
            "Manifest is Configured",
            Some(2)
        ))
    );
    assert!(condition(&updated, "ConfigMap", "Broken").is_none());
    // The Deployment's condition is the new generation's, its transition time kept.
    let before = condition(&rolled_out, "Deployment", "RolledOut").unwrap();
    let after = condition(&updated, "Deployment", "RolledOut").unwrap();
    assert_eq!(after.observed_generation, Some(2));
    assert_eq!(after.last_transition_time, before.last_transition_time);
    cluster.stop();
}
