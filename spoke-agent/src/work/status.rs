//! A ManifestWork's status as the agent reports it (as OCM's work agent writes it), from
//! what applying each manifest did and what its live object looks like. Pure.
//!
//! Per manifest: `Applied` (how the apply went), `Available` (whether the object exists),
//! `StatusFeedbackSynced` and the feedback values of the work's rules, and the conditions of its
//! condition rules ([`cel`]). For the work: `Applied` when every manifest applied, and
//! `Available` summed up as OCM words it.

use ocm_api::condition::{self, Condition, ConditionStatus};
use ocm_api::k8s_openapi::jiff::Timestamp;
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_AVAILABLE, CONDITION_STATUS_FEEDBACK_SYNCED, FeedbackType,
    FeedbackValue, FieldValue, ManifestCondition, ManifestConfigOption, ManifestResourceMeta,
    ManifestResourceStatus, ManifestWork, ManifestWorkStatus, REASON_APPLIED_MANIFEST_COMPLETE,
    REASON_APPLIED_MANIFEST_WORK_COMPLETE, REASON_APPLIED_MANIFEST_WORK_FAILED,
    REASON_FETCHING_RESOURCE_FAILED, REASON_INCOMPLETE_RESOURCE_META,
    REASON_NO_STATUS_FEEDBACK_SYNCED, REASON_RESOURCE_AVAILABLE, REASON_RESOURCE_NOT_AVAILABLE,
    REASON_RESOURCES_AVAILABLE, REASON_RESOURCES_NOT_AVAILABLE, REASON_RESOURCES_STATUS_UNKNOWN,
    REASON_STATUS_FEEDBACK_SYNC_FAILED, REASON_STATUS_FEEDBACK_SYNCED,
};
use serde_json::Value;

use super::cel;
use super::feedback::{self, NamedPath, Scalar};

/// How applying one manifest went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    Failed { reason: String, message: String },
}

/// What the agent knows of the manifest's live object.
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    Found(Value),
    NotFound,
    /// Reading it failed.
    Unreadable(String),
}

/// One manifest's outcome, as the status is built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestOutcome {
    pub meta: ManifestResourceMeta,
    pub applied: Applied,
    pub live: Live,
}

/// Sets a condition with the generation it was computed for; whether anything changed.
pub fn set_observed(
    conditions: &mut Vec<Condition>,
    condition_type: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let mut changed = condition::set(conditions, condition_type, status, reason, message, now);
    if let Some(condition) = conditions.iter_mut().find(|c| c.r#type == condition_type)
        && condition.observed_generation != generation
    {
        condition.observed_generation = generation;
        changed = true;
    }
    changed
}

/// The status entry of one manifest, keeping transition times from `previous`.
pub fn manifest_condition(
    previous: Option<&ManifestCondition>,
    outcome: &ManifestOutcome,
    config: Option<&ManifestConfigOption>,
    generation: Option<i64>,
    max_raw: usize,
    now: Timestamp,
) -> ManifestCondition {
    let mut conditions = previous.map(|p| p.conditions.clone()).unwrap_or_default();
    match &outcome.applied {
        Applied::Done => set_observed(
            &mut conditions,
            CONDITION_APPLIED,
            ConditionStatus::True,
            REASON_APPLIED_MANIFEST_COMPLETE,
            "Apply manifest complete",
            generation,
            now,
        ),
        Applied::Failed { reason, message } => set_observed(
            &mut conditions,
            CONDITION_APPLIED,
            ConditionStatus::False,
            reason,
            message,
            generation,
            now,
        ),
    };
    let meta = &outcome.meta;
    let (status, reason, message) =
        if meta.resource.is_empty() || meta.version.is_empty() || meta.name.is_empty() {
            (
                ConditionStatus::Unknown,
                REASON_INCOMPLETE_RESOURCE_META,
                "Resource meta is incompleted".to_owned(),
            )
        } else {
            match &outcome.live {
                Live::Found(_) => (
                    ConditionStatus::True,
                    REASON_RESOURCE_AVAILABLE,
                    "Resource is available".to_owned(),
                ),
                Live::NotFound => (
                    ConditionStatus::False,
                    REASON_RESOURCE_NOT_AVAILABLE,
                    "Resource is not available".to_owned(),
                ),
                Live::Unreadable(error) => (
                    ConditionStatus::Unknown,
                    REASON_FETCHING_RESOURCE_FAILED,
                    format!("Failed to fetch resource: {error}"),
                ),
            }
        };
    set_observed(
        &mut conditions,
        CONDITION_AVAILABLE,
        status,
        reason,
        &message,
        generation,
        now,
    );
    let mut values = Vec::new();
    if let Live::Found(object) = &outcome.live {
        let (found, synced) = feedback_values(object, meta, config, max_raw);
        values = found;
        let (status, reason, message) = synced;
        set_observed(
            &mut conditions,
            CONDITION_STATUS_FEEDBACK_SYNCED,
            status,
            reason,
            &message,
            None,
            now,
        );
        let rules = config
            .map(|c| c.condition_rules.as_slice())
            .unwrap_or_default();
        for rule in cel::evaluate_rules(object, meta, rules) {
            set_observed(
                &mut conditions,
                &rule.condition,
                rule.status,
                rule.reason,
                &rule.message,
                generation,
                now,
            );
        }
    }
    // Conditions of rules the work no longer has (they are from an older generation) go.
    conditions.retain(|c| {
        !(c.reason.starts_with("ConditionRule") && c.observed_generation != generation)
    });
    ManifestCondition {
        resource_meta: meta.clone(),
        status_feedback: ocm_api::work::v1::StatusFeedbackResult { values },
        conditions,
    }
}

type Judgement = (ConditionStatus, &'static str, String);

fn feedback_values(
    object: &Value,
    meta: &ManifestResourceMeta,
    config: Option<&ManifestConfigOption>,
    max_raw: usize,
) -> (Vec<FeedbackValue>, Judgement) {
    let rules = config
        .map(|c| c.feedback_rules.as_slice())
        .unwrap_or_default();
    if rules.is_empty() {
        return (
            Vec::new(),
            (
                ConditionStatus::True,
                REASON_NO_STATUS_FEEDBACK_SYNCED,
                String::new(),
            ),
        );
    }
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for rule in rules {
        let paths: Vec<(NamedPath<'_>, Option<&str>)> = match rule.r#type {
            FeedbackType::WellKnownStatus => {
                match feedback::well_known(&meta.group, &meta.version, &meta.kind) {
                    Some(paths) => paths.iter().map(|p| (*p, None)).collect(),
                    None => {
                        errors.push(format!(
                            "cannot find the wellknown statuses for resource with gvk {}",
                            gvk(meta)
                        ));
                        continue;
                    }
                }
            }
            FeedbackType::JsonPaths => rule
                .json_paths
                .iter()
                .map(|p| {
                    (
                        NamedPath {
                            name: &p.name,
                            path: &p.path,
                        },
                        Some(p.version.as_str()).filter(|v| !v.is_empty()),
                    )
                })
                .collect(),
        };
        for (path, version) in paths {
            if version.is_some_and(|v| v != meta.version) {
                errors.push(format!(
                    "version set in the path {} is not matched for the related resource",
                    path.name
                ));
                continue;
            }
            match feedback::evaluate(object, path, max_raw) {
                Ok(Some(value)) => values.push(FeedbackValue {
                    name: path.name.to_owned(),
                    field_value: field_value(value),
                }),
                Ok(None) => {}
                Err(error) => errors.push(error.to_string()),
            }
        }
    }
    let synced = if errors.is_empty() {
        (
            ConditionStatus::True,
            REASON_STATUS_FEEDBACK_SYNCED,
            String::new(),
        )
    } else {
        (
            ConditionStatus::False,
            REASON_STATUS_FEEDBACK_SYNC_FAILED,
            format!(
                "Sync status feedback failed with error {}",
                errors.join(", ")
            ),
        )
    };
    (values, synced)
}

fn field_value(value: Scalar) -> FieldValue {
    match value {
        Scalar::Integer(i) => FieldValue::integer(i),
        Scalar::String(s) => FieldValue::string(s),
        Scalar::Boolean(b) => FieldValue::boolean(b),
        Scalar::JsonRaw(raw) => FieldValue::json_raw(raw),
    }
}

fn gvk(meta: &ManifestResourceMeta) -> String {
    format!("{}/{}, Kind={}", meta.group, meta.version, meta.kind)
}

/// The whole status of `work` from its manifests' outcomes (in any order): each manifest's entry
/// keeps the transition times of its entry in the status held, and the work's own conditions
/// are summed up from them. What the agent reports after a pass, and what the scale simulator
/// reports for its in-memory clusters.
pub fn work_status(
    work: &ManifestWork,
    outcomes: Vec<ManifestOutcome>,
    max_raw: usize,
    now: Timestamp,
) -> ManifestWorkStatus {
    let previous = work.status.as_ref();
    let generation = work.metadata.generation;
    let manifests: Vec<ManifestCondition> = outcomes
        .into_iter()
        .map(|outcome| {
            let before = previous.and_then(|p| {
                p.resource_status
                    .manifests
                    .iter()
                    .find(|m| same_resource(&m.resource_meta, &outcome.meta))
            });
            let config = work.spec.manifest_config_for(&outcome.meta);
            manifest_condition(before, &outcome, config.as_ref(), generation, max_raw, now)
        })
        .collect();
    let held = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    ManifestWorkStatus {
        conditions: work_conditions(held, &manifests, generation, now),
        resource_status: ManifestResourceStatus { manifests },
    }
}

/// The same object in two statuses (its resource, known only after discovery, aside).
pub fn same_resource(a: &ManifestResourceMeta, b: &ManifestResourceMeta) -> bool {
    a.group == b.group && a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

/// The work's own `Applied` and `Available`, from its manifests' (keeping other conditions and
/// transition times).
pub fn work_conditions(
    previous: &[Condition],
    manifests: &[ManifestCondition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut conditions = previous.to_vec();
    let status_of =
        |m: &ManifestCondition, t: &str| condition::find(&m.conditions, t).map(|c| c.status);
    let all_applied = manifests
        .iter()
        .all(|m| status_of(m, CONDITION_APPLIED) == Some(ConditionStatus::True));
    if all_applied {
        set_observed(
            &mut conditions,
            CONDITION_APPLIED,
            ConditionStatus::True,
            REASON_APPLIED_MANIFEST_WORK_COMPLETE,
            "Apply manifest work complete",
            generation,
            now,
        );
    } else {
        set_observed(
            &mut conditions,
            CONDITION_APPLIED,
            ConditionStatus::False,
            REASON_APPLIED_MANIFEST_WORK_FAILED,
            "Failed to apply manifest work",
            generation,
            now,
        );
    }
    let count = |s: ConditionStatus| {
        manifests
            .iter()
            .filter(|m| status_of(m, CONDITION_AVAILABLE) == Some(s))
            .count()
    };
    let (available, unavailable, unknown) = (
        count(ConditionStatus::True),
        count(ConditionStatus::False),
        count(ConditionStatus::Unknown),
    );
    let total = manifests.len();
    let (status, reason, message) = if unavailable > 0 {
        (
            ConditionStatus::False,
            REASON_RESOURCES_NOT_AVAILABLE,
            format!("{unavailable} of {total} resources are not available"),
        )
    } else if unknown > 0 {
        (
            ConditionStatus::Unknown,
            REASON_RESOURCES_STATUS_UNKNOWN,
            format!("{unknown} of {total} resources have unknown status"),
        )
    } else if available == 0 {
        (
            ConditionStatus::Unknown,
            REASON_RESOURCES_STATUS_UNKNOWN,
            "cannot get any available resource".to_owned(),
        )
    } else {
        (
            ConditionStatus::True,
            REASON_RESOURCES_AVAILABLE,
            "All resources are available".to_owned(),
        )
    };
    set_observed(
        &mut conditions,
        CONDITION_AVAILABLE,
        status,
        reason,
        &message,
        generation,
        now,
    );
    conditions
}

#[cfg(test)]
mod tests {
    use ocm_api::work::v1::{
        ConditionRule, ConditionRuleType, FeedbackRule, JsonPath, REASON_CONDITION_RULE_EVALUATED,
        ResourceIdentifier,
    };

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or_default()
    }

    fn meta(group: &str, kind: &str, resource: &str) -> ManifestResourceMeta {
        ManifestResourceMeta {
            ordinal: 0,
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            resource: resource.into(),
            name: "web".into(),
            namespace: "default".into(),
        }
    }

    fn config(feedback: Vec<FeedbackRule>, rules: Vec<ConditionRule>) -> ManifestConfigOption {
        let mut option = ManifestConfigOption::new(ResourceIdentifier::default());
        option.feedback_rules = feedback;
        option.condition_rules = rules;
        option
    }

    fn status(m: &ManifestCondition, t: &str) -> Option<(ConditionStatus, String)> {
        condition::find(&m.conditions, t).map(|c| (c.status, c.reason.clone()))
    }

    #[test]
    fn an_applied_available_deployment_feeds_back_its_replicas() {
        let outcome = ManifestOutcome {
            meta: meta("apps", "Deployment", "deployments"),
            applied: Applied::Done,
            live: Live::Found(
                serde_json::json!({"status": {"replicas": 2, "availableReplicas": 2, "readyReplicas": 2}}),
            ),
        };
        let rules = config(
            vec![FeedbackRule {
                r#type: FeedbackType::WellKnownStatus,
                json_paths: Vec::new(),
            }],
            Vec::new(),
        );
        let m = manifest_condition(None, &outcome, Some(&rules), Some(3), 1024, at(10));
        assert_eq!(
            status(&m, CONDITION_APPLIED),
            Some((
                ConditionStatus::True,
                REASON_APPLIED_MANIFEST_COMPLETE.into()
            ))
        );
        assert_eq!(
            status(&m, CONDITION_AVAILABLE),
            Some((ConditionStatus::True, REASON_RESOURCE_AVAILABLE.into()))
        );
        assert_eq!(
            status(&m, CONDITION_STATUS_FEEDBACK_SYNCED),
            Some((ConditionStatus::True, REASON_STATUS_FEEDBACK_SYNCED.into()))
        );
        let names: Vec<_> = m
            .status_feedback
            .values
            .iter()
            .map(|v| (v.name.as_str(), v.field_value.integer))
            .collect();
        assert_eq!(
            names,
            [
                ("ReadyReplicas", Some(2)),
                ("Replicas", Some(2)),
                ("AvailableReplicas", Some(2))
            ]
        );
        assert_eq!(
            condition::find(&m.conditions, CONDITION_APPLIED).and_then(|c| c.observed_generation),
            Some(3)
        );
        // Recomputed later with the same outcome: transition times stay.
        let again = manifest_condition(Some(&m), &outcome, Some(&rules), Some(3), 1024, at(99));
        assert_eq!(again, m);
    }

    #[test]
    fn failures_missing_objects_and_bad_rules_are_reported_as_ocm_words_them() {
        let failed = ManifestOutcome {
            meta: meta("", "ConfigMap", "configmaps"),
            applied: Applied::Failed {
                reason: "ApplyConflict".into(),
                message: "conflict with kubectl".into(),
            },
            live: Live::NotFound,
        };
        let rules = config(
            vec![FeedbackRule {
                r#type: FeedbackType::WellKnownStatus,
                json_paths: Vec::new(),
            }],
            Vec::new(),
        );
        let m = manifest_condition(None, &failed, Some(&rules), Some(1), 1024, at(0));
        assert_eq!(
            status(&m, CONDITION_APPLIED),
            Some((ConditionStatus::False, "ApplyConflict".into()))
        );
        assert_eq!(
            status(&m, CONDITION_AVAILABLE),
            Some((ConditionStatus::False, REASON_RESOURCE_NOT_AVAILABLE.into()))
        );
        assert_eq!(
            status(&m, CONDITION_STATUS_FEEDBACK_SYNCED),
            None,
            "nothing to read"
        );

        let config_map = ManifestOutcome {
            live: Live::Found(serde_json::json!({"data": {"a": "1"}})),
            applied: Applied::Done,
            ..failed.clone()
        };
        let m = manifest_condition(None, &config_map, Some(&rules), Some(1), 1024, at(0));
        assert_eq!(
            status(&m, CONDITION_STATUS_FEEDBACK_SYNCED),
            Some((
                ConditionStatus::False,
                REASON_STATUS_FEEDBACK_SYNC_FAILED.into()
            )),
            "no well-known status for a ConfigMap"
        );
        let paths = config(
            vec![FeedbackRule {
                r#type: FeedbackType::JsonPaths,
                json_paths: vec![JsonPath {
                    name: "a".into(),
                    version: String::new(),
                    path: ".data.a".into(),
                }],
            }],
            Vec::new(),
        );
        let m = manifest_condition(None, &config_map, Some(&paths), Some(1), 1024, at(0));
        assert_eq!(
            m.status_feedback.values[0].field_value,
            FieldValue::string("1")
        );

        let incomplete = ManifestOutcome {
            meta: ManifestResourceMeta {
                resource: String::new(),
                ..meta("x.io", "Widget", "")
            },
            applied: Applied::Failed {
                reason: ocm_api::work::v1::REASON_APPLIED_MANIFEST_FAILED.into(),
                message: "the server does not serve x.io/v1, Kind=Widget".into(),
            },
            live: Live::NotFound,
        };
        let m = manifest_condition(None, &incomplete, None, Some(1), 1024, at(0));
        assert_eq!(
            status(&m, CONDITION_AVAILABLE),
            Some((
                ConditionStatus::Unknown,
                REASON_INCOMPLETE_RESOURCE_META.into()
            ))
        );
    }

    #[test]
    fn condition_rules_set_manifest_conditions_of_the_works_generation() {
        let job = meta("batch", "Job", "jobs");
        let running = serde_json::json!({"spec": {"completions": 1}, "status": {"active": 1}});
        let rules = config(
            Vec::new(),
            vec![
                ConditionRule {
                    condition: "Complete".into(),
                    r#type: ConditionRuleType::WellKnownConditions,
                    cel_expressions: Vec::new(),
                    message: String::new(),
                    message_expression: String::new(),
                },
                ConditionRule {
                    condition: "Started".into(),
                    r#type: ConditionRuleType::Cel,
                    cel_expressions: vec![
                        "has(object.status.active) || has(object.status.succeeded)".into(),
                    ],
                    message: String::new(),
                    message_expression: r#"result ? "started" : "waiting""#.into(),
                },
            ],
        );
        let outcome = |live: Value| ManifestOutcome {
            meta: job.clone(),
            applied: Applied::Done,
            live: Live::Found(live),
        };
        let find = |m: &ManifestCondition, t: &str| {
            condition::find(&m.conditions, t).map(|c| {
                (
                    c.status,
                    c.reason.clone(),
                    c.message.clone(),
                    c.observed_generation,
                    c.last_transition_time.clone(),
                )
            })
        };
        let m = manifest_condition(
            None,
            &outcome(running.clone()),
            Some(&rules),
            Some(2),
            1024,
            at(0),
        );
        assert_eq!(
            find(&m, "Complete").map(|c| (c.0, c.1, c.2, c.3)),
            Some((
                ConditionStatus::False,
                REASON_CONDITION_RULE_EVALUATED.into(),
                "Job is not finished".into(),
                Some(2)
            ))
        );
        assert_eq!(
            find(&m, "Started").map(|c| (c.0, c.2)),
            Some((ConditionStatus::True, "started".into()))
        );
        // The Job finishes: Complete turns True with a new transition time; Started keeps its.
        let finished = serde_json::json!({"status": {"succeeded": 1, "conditions": [
            {"type": "Complete", "status": "True"}]}});
        let later = manifest_condition(
            Some(&m),
            &outcome(finished.clone()),
            Some(&rules),
            Some(2),
            1024,
            at(50),
        );
        assert_eq!(
            find(&later, "Complete").map(|c| (c.0, c.2)),
            Some((ConditionStatus::True, "Job is finished".into()))
        );
        assert_ne!(
            find(&later, "Complete").map(|c| c.4),
            find(&m, "Complete").map(|c| c.4)
        );
        assert_eq!(
            find(&later, "Started").map(|c| c.4),
            find(&m, "Started").map(|c| c.4)
        );
        // The rule removed in generation 3: its condition goes.
        let m = manifest_condition(
            Some(&later),
            &outcome(finished),
            None,
            Some(3),
            1024,
            at(60),
        );
        assert_eq!(status(&m, "Complete"), None);
        assert_eq!(status(&m, "Started"), None);
        assert_eq!(
            status(&m, CONDITION_APPLIED),
            Some((
                ConditionStatus::True,
                REASON_APPLIED_MANIFEST_COMPLETE.into()
            ))
        );
    }

    #[test]
    fn the_work_is_applied_when_every_manifest_is_and_available_as_ocm_sums_it_up() {
        let with = |applied: ConditionStatus, available: ConditionStatus| {
            let mut conditions = Vec::new();
            condition::set(&mut conditions, CONDITION_APPLIED, applied, "r", "", at(0));
            condition::set(
                &mut conditions,
                CONDITION_AVAILABLE,
                available,
                "r",
                "",
                at(0),
            );
            ManifestCondition {
                conditions,
                ..ManifestCondition::default()
            }
        };
        let all = [
            with(ConditionStatus::True, ConditionStatus::True),
            with(ConditionStatus::True, ConditionStatus::True),
        ];
        let work = work_conditions(&[], &all, Some(4), at(0));
        let find = |c: &[Condition], t: &str| {
            condition::find(c, t).map(|c| {
                (
                    c.status,
                    c.reason.clone(),
                    c.message.clone(),
                    c.observed_generation,
                )
            })
        };
        assert_eq!(
            find(&work, CONDITION_APPLIED),
            Some((
                ConditionStatus::True,
                REASON_APPLIED_MANIFEST_WORK_COMPLETE.into(),
                "Apply manifest work complete".into(),
                Some(4)
            ))
        );
        assert_eq!(
            find(&work, CONDITION_AVAILABLE),
            Some((
                ConditionStatus::True,
                REASON_RESOURCES_AVAILABLE.into(),
                "All resources are available".into(),
                Some(4)
            ))
        );
        let mixed = [
            with(ConditionStatus::False, ConditionStatus::False),
            with(ConditionStatus::True, ConditionStatus::Unknown),
            with(ConditionStatus::True, ConditionStatus::True),
        ];
        let work = work_conditions(&work, &mixed, Some(5), at(1));
        assert_eq!(
            find(&work, CONDITION_APPLIED).map(|c| c.1),
            Some(REASON_APPLIED_MANIFEST_WORK_FAILED.to_owned())
        );
        assert_eq!(
            find(&work, CONDITION_AVAILABLE).map(|c| c.2),
            Some("1 of 3 resources are not available".to_owned())
        );
        let unknown = [with(ConditionStatus::True, ConditionStatus::Unknown)];
        assert_eq!(
            find(
                &work_conditions(&[], &unknown, None, at(0)),
                CONDITION_AVAILABLE
            )
            .map(|c| c.2),
            Some("1 of 1 resources have unknown status".to_owned())
        );
        assert_eq!(
            find(&work_conditions(&[], &[], None, at(0)), CONDITION_AVAILABLE).map(|c| c.2),
            Some("cannot get any available resource".to_owned())
        );
    }
}
