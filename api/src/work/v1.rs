//! `work.open-cluster-management.io/v1`: ManifestWork, a set of Kubernetes objects the hub asks
//! one managed cluster to apply (created in that cluster's namespace on the hub), and
//! AppliedManifestWork, the agent's cluster-scoped record on the managed cluster of what it
//! applied for one ManifestWork (as OCM's work agent keeps it).
//!
//! The JSON is OCM's: manifests are raw embedded objects kept as JSON values ([`Manifest`]),
//! enums carry OCM's strings, and the defaults are the ones OCM's CRD applies. Empty optional
//! strings and lists are left out when serialising (Go writes some of them as `""` or `null`;
//! every reader treats the two alike), and a list Go writes as `null` is read as empty.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::condition::Condition;

// Condition types. OCM uses the same strings for the work's conditions (`status.conditions`)
// and for each manifest's (`status.resourceStatus.manifests[].conditions`).

/// `Applied`: the work's manifests (or one manifest) were applied on the managed cluster.
pub const CONDITION_APPLIED: &str = "Applied";
/// `Available`: the applied resources (or one resource) exist on the managed cluster.
pub const CONDITION_AVAILABLE: &str = "Available";
/// `Progressing`: the workload is being applied.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// `Degraded`: the workload has not matched the desired state for a while.
pub const CONDITION_DEGRADED: &str = "Degraded";
/// `Complete`: the resource (by a condition rule) or the whole work has completed and is no
/// longer updated.
pub const CONDITION_COMPLETE: &str = "Complete";
/// `StatusFeedbackSynced` (per manifest): whether the feedback rules could be evaluated.
pub const CONDITION_STATUS_FEEDBACK_SYNCED: &str = "StatusFeedbackSynced";
/// `Deleted` (in a ManifestBundleStatus on the wire): the agent finished deleting the work's
/// resources; the hub's cue to remove its finalizer.
pub const CONDITION_DELETED: &str = "Deleted";

// Reasons, as OCM's agent writes them.

/// Work `Applied=True`.
pub const REASON_APPLIED_MANIFEST_WORK_COMPLETE: &str = "AppliedManifestWorkComplete";
/// Work `Applied=False`.
pub const REASON_APPLIED_MANIFEST_WORK_FAILED: &str = "AppliedManifestWorkFailed";
/// Work `Available=True`.
pub const REASON_RESOURCES_AVAILABLE: &str = "ResourcesAvailable";
/// Work `Available=False`.
pub const REASON_RESOURCES_NOT_AVAILABLE: &str = "ResourcesNotAvailable";
/// Work `Available=Unknown`.
pub const REASON_RESOURCES_STATUS_UNKNOWN: &str = "ResourcesStatusUnknown";
/// Manifest `Applied=True`.
pub const REASON_APPLIED_MANIFEST_COMPLETE: &str = "AppliedManifestComplete";
/// Manifest `Applied=False`.
pub const REASON_APPLIED_MANIFEST_FAILED: &str = "AppliedManifestFailed";
/// Manifest `Applied=False` after a server-side apply conflict.
pub const REASON_APPLY_CONFLICT: &str = "ApplyConflict";
/// Manifest `Available=True`.
pub const REASON_RESOURCE_AVAILABLE: &str = "ResourceAvailable";
/// Manifest `Available=False`: the resource is not found.
pub const REASON_RESOURCE_NOT_AVAILABLE: &str = "ResourceNotAvailable";
/// Manifest `Available=Unknown`: reading the resource failed.
pub const REASON_FETCHING_RESOURCE_FAILED: &str = "FetchingResourceFailed";
/// Manifest `Available=Unknown`: the resource meta lacks resource, version or name (OCM's
/// spelling).
pub const REASON_INCOMPLETE_RESOURCE_META: &str = "IncompletedResourceMeta";
/// `StatusFeedbackSynced=True` with values.
pub const REASON_STATUS_FEEDBACK_SYNCED: &str = "StatusFeedbackSynced";
/// `StatusFeedbackSynced=True` without feedback rules.
pub const REASON_NO_STATUS_FEEDBACK_SYNCED: &str = "NoStatusFeedbackSynced";
/// `StatusFeedbackSynced=False`.
pub const REASON_STATUS_FEEDBACK_SYNC_FAILED: &str = "StatusFeedbackSyncFailed";
/// A condition rule was evaluated.
pub const REASON_CONDITION_RULE_EVALUATED: &str = "ConditionRuleEvaluated";
/// A condition rule is invalid.
pub const REASON_CONDITION_RULE_INVALID: &str = "ConditionRuleInvalid";
/// A condition rule's expression failed.
pub const REASON_CONDITION_RULE_EXPRESSION_ERROR: &str = "ConditionRuleExpressionError";
/// A condition rule could not be evaluated for an internal reason.
pub const REASON_CONDITION_RULE_INTERNAL_ERROR: &str = "ConditionRuleInternalError";
/// `Deleted=True` on the wire.
pub const REASON_MANIFESTS_DELETED: &str = "ManifestsDeleted";

/// The agent's finalizer on a ManifestWork: kept until its AppliedManifestWork is gone.
pub const MANIFEST_WORK_FINALIZER: &str =
    "cluster.open-cluster-management.io/manifest-work-cleanup";
/// The agent's finalizer on an AppliedManifestWork: kept until the resources it applied are
/// gone.
pub const APPLIED_MANIFEST_WORK_FINALIZER: &str =
    "cluster.open-cluster-management.io/applied-manifest-work-cleanup";
/// On applied resources: the hash of the manifest they were applied from (Update strategy).
pub const OBJECT_HASH_ANNOTATION: &str = "open-cluster-management.io/object-hash";
/// On resources applied with ServerSideApply and `ignoreFields`: the hash of the applied body
/// without the ignored fields.
pub const CONFIG_SPEC_HASH_ANNOTATION: &str = "open-cluster-management.io/config-spec-hash";
/// The server-side apply field manager when a work names none.
pub const DEFAULT_FIELD_MANAGER: &str = "work-agent";

/// How long a `jsonRaw` feedback value may be, by default, before the agent drops it: 64 KiB,
/// where OCM's agent defaults to 1 KiB (`--max-json-raw-length`).
pub const DEFAULT_MAX_JSON_RAW_LENGTH: usize = 64 * 1024;
/// The CRD's bound on a `jsonRaw` value (1 MiB): the most an agent may be configured to send.
/// OCM's CRD says 1 KiB, which would refuse the larger values ocm-rs reports.
pub const MAX_JSON_RAW_LENGTH: usize = 1024 * 1024;
const _: () = assert!(DEFAULT_MAX_JSON_RAW_LENGTH <= MAX_JSON_RAW_LENGTH);

/// A DNS subdomain (service account namespace and name).
const DNS_SUBDOMAIN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$";

/// What the hub asks one managed cluster to apply.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "work.open-cluster-management.io",
    version = "v1",
    kind = "ManifestWork",
    namespaced,
    status = "ManifestWorkStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ManifestWork is a set of Kubernetes resources the hub wants applied on one managed cluster. It is created in that cluster's namespace on the hub; the cluster's work agent applies the manifests, owns them through an AppliedManifestWork and reports their status back."
)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkSpec {
    /// The manifests to apply.
    #[serde(default)]
    pub workload: ManifestsTemplate,
    /// What happens to the applied resources when the work is deleted; Foreground if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_option: Option<DeleteOption>,
    /// Per-resource configuration: feedback rules, update strategy, condition rules.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub manifest_configs: Vec<ManifestConfigOption>,
    /// The identity whose permissions the agent checks before applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ManifestWorkExecutor>,
}

/// `spec.workload`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManifestsTemplate {
    /// Kubernetes objects, each a complete object with `apiVersion`, `kind` and `metadata`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub manifests: Vec<Manifest>,
}

/// One raw Kubernetes object of a work, kept as JSON exactly as given. Serialises as the object
/// itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Manifest(pub Value);

impl Manifest {
    pub fn new(object: Value) -> Self {
        Self(object)
    }

    /// `apiVersion`, if it is a string.
    pub fn api_version(&self) -> Option<&str> {
        self.0.get("apiVersion").and_then(Value::as_str)
    }

    /// `kind`, if it is a string.
    pub fn kind(&self) -> Option<&str> {
        self.0.get("kind").and_then(Value::as_str)
    }

    /// `metadata.name`, if it is a string.
    pub fn name(&self) -> Option<&str> {
        self.metadata_str("name")
    }

    /// `metadata.namespace`, if it is a string.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata_str("namespace")
    }

    fn metadata_str(&self, key: &str) -> Option<&str> {
        self.0.get("metadata")?.get(key)?.as_str()
    }
}

impl From<Value> for Manifest {
    fn from(object: Value) -> Self {
        Self(object)
    }
}

/// As OCM's: an embedded Kubernetes object whose fields the apiserver keeps as given.
impl JsonSchema for Manifest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Manifest".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A Kubernetes object to apply on the managed cluster.",
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// What happens to a work's resources when the work is deleted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOption {
    #[serde(default)]
    pub propagation_policy: DeletePropagationPolicy,
    /// With `SelectivelyOrphan`: the resources left behind.
    #[serde(
        rename = "selectivelyOrphans",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub selectively_orphan: Option<SelectivelyOrphan>,
    /// Once the work is Complete (by condition rules), delete it after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeletePropagationPolicy {
    /// The resources are owned by the work and deleted with it.
    #[default]
    Foreground,
    /// No resource is owned by the work; all survive it.
    Orphan,
    /// Only the resources listed in `selectivelyOrphans` survive the work.
    SelectivelyOrphan,
}

/// The resources a `SelectivelyOrphan` work leaves behind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectivelyOrphan {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub orphaning_rules: Vec<OrphaningRule>,
}

/// One resource of the work to orphan, matched exactly.
pub type OrphaningRule = ResourceIdentifier;

/// A resource by group, resource (plural), namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct ResourceIdentifier {
    /// The API group; empty for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The resource, e.g. `deployments`.
    pub resource: String,
    /// The name; in `manifestConfigs` (not in orphaning rules) `*` matches any run of
    /// characters.
    pub name: String,
    /// Empty for cluster-scoped resources; in `manifestConfigs` (not in orphaning rules) `*`
    /// matches any run of characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl ResourceIdentifier {
    /// Whether this identifier, as a `manifestConfigs` entry, selects the resource `meta`
    /// describes: group and resource exactly, namespace and name with `*` wildcards (OCM's
    /// `resourceMatch`).
    pub fn matches(&self, meta: &ManifestResourceMeta) -> bool {
        self.group == meta.group
            && self.resource == meta.resource
            && wildcard_match(&self.namespace, &meta.namespace)
            && wildcard_match(&self.name, &meta.name)
    }
}

/// Whether `value` matches `pattern`, in which each `*` stands for any run of characters
/// (possibly empty) and everything else for itself.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        // No `*`: the pattern stands for itself.
        return pattern == value;
    };
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    // Each middle part at its leftmost place leaves the most room for those after it.
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The configuration of the manifests `resourceIdentifier` selects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestConfigOption {
    pub resource_identifier: ResourceIdentifier,
    /// Which status fields to report back; none if empty.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub feedback_rules: Vec<FeedbackRule>,
    /// How feedback is collected.
    #[serde(default)]
    pub feedback_scrape_type: FeedbackScrapeType,
    /// How the resource is written; Update if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<UpdateStrategy>,
    /// Conditions to set on the manifest from its live state.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["condition"]))]
    pub condition_rules: Vec<ConditionRule>,
}

impl ManifestConfigOption {
    /// An option for `resource_identifier` with nothing configured.
    pub fn new(resource_identifier: ResourceIdentifier) -> Self {
        Self {
            resource_identifier,
            feedback_rules: Vec::new(),
            feedback_scrape_type: FeedbackScrapeType::default(),
            update_strategy: None,
            condition_rules: Vec::new(),
        }
    }
}

/// A set of status fields to report back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackRule {
    pub r#type: FeedbackType,
    /// With `JSONPaths`: the fields.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub json_paths: Vec<JsonPath>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FeedbackType {
    /// The fields OCM's built-in table lists for the resource's kind.
    WellKnownStatus,
    /// The fields named by `jsonPaths`.
    #[serde(rename = "JSONPaths")]
    JsonPaths,
}

/// One reported field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct JsonPath {
    /// The name the value is reported under.
    pub name: String,
    /// The resource version to read the path in; the preferred one if empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// A Kubernetes JSONPath evaluated from the object's root, e.g. `.status.replicas`.
    pub path: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum FeedbackScrapeType {
    /// Read periodically.
    #[default]
    Poll,
    /// Read on every change of the resource.
    Watch,
}

/// How a manifest is written on the managed cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    #[serde(default)]
    pub r#type: UpdateStrategyType,
    /// With `ServerSideApply`: how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_apply: Option<ServerSideApplyConfig>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum UpdateStrategyType {
    /// Create, or replace the whole object when it differs.
    #[default]
    Update,
    /// Create if missing; never update.
    CreateOnly,
    /// Server-side apply with the field manager; a conflict fails the manifest.
    ServerSideApply,
    /// Never write; only read status and feedback.
    ReadOnly,
}

/// Server-side apply settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSideApplyConfig {
    /// Take over fields other managers own.
    #[serde(default)]
    pub force: bool,
    /// `work-agent`, or a name starting with it.
    #[serde(default = "default_field_manager")]
    #[schemars(regex(pattern = r"^work-agent"))]
    pub field_manager: String,
    /// Fields left alone on the managed cluster.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["condition"]))]
    pub ignore_fields: Vec<IgnoreField>,
}

fn default_field_manager() -> String {
    DEFAULT_FIELD_MANAGER.to_owned()
}

/// As the apiserver defaults it: not forced, field manager `work-agent`.
impl Default for ServerSideApplyConfig {
    fn default() -> Self {
        Self {
            force: false,
            field_manager: default_field_manager(),
            ignore_fields: Vec::new(),
        }
    }
}

/// Fields to leave alone, and when.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreField {
    #[serde(default)]
    pub condition: IgnoreFieldsCondition,
    /// Kubernetes JSONPaths.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub json_paths: Vec<String>,
    /// jq path expressions.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub jq_path_expressions: Vec<String>,
    /// RFC 6901 JSON Pointers.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub json_pointers: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum IgnoreFieldsCondition {
    /// Ignored once the resource exists on the managed cluster.
    #[default]
    OnSpokePresent,
    /// Ignored while the hub's spec is unchanged (re-applied when it changes).
    OnSpokeChange,
}

/// A condition to set on a manifest from its live state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "message": "Condition is required for CEL rules",
    "rule": "self.type != 'CEL' || self.condition != \"\""
}]))]
pub struct ConditionRule {
    /// The condition type to set, e.g. `Complete`.
    pub condition: String,
    pub r#type: ConditionRuleType,
    /// With `CEL`: all must hold (variable `object`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub cel_expressions: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A CEL expression for the message (variables `object`, `result`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message_expression: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionRuleType {
    /// Built-in rules (Complete for Jobs and Pods).
    WellKnownConditions,
    /// `celExpressions`.
    #[serde(rename = "CEL")]
    Cel,
}

/// Whose permissions the agent checks before applying.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManifestWorkExecutor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<ManifestWorkExecutorSubject>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkExecutorSubject {
    pub r#type: ExecutorSubjectType,
    /// Required with type `ServiceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ManifestWorkSubjectServiceAccount>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ExecutorSubjectType {
    ServiceAccount,
}

/// A service account on the managed cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ManifestWorkSubjectServiceAccount {
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN))]
    pub name: String,
}

impl ManifestWorkSubjectServiceAccount {
    /// The user the service account authenticates as: `system:serviceaccount:<ns>:<name>` (the
    /// resource name of the hub's `execute-as` check, the user of the agent's
    /// SubjectAccessReviews).
    pub fn user_name(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

impl ManifestWorkSpec {
    /// The configuration for the resource `meta` describes, merged as OCM merges it: over the
    /// `manifestConfigs` entries that match ([`ResourceIdentifier::matches`]), in order, the
    /// first non-empty feedback rules (with their scrape type), the first update strategy and
    /// the first non-empty condition rules. `None` when no match configures anything.
    pub fn manifest_config_for(&self, meta: &ManifestResourceMeta) -> Option<ManifestConfigOption> {
        let mut found = ManifestConfigOption::new(ResourceIdentifier {
            group: meta.group.clone(),
            resource: meta.resource.clone(),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
        });
        for option in self
            .manifest_configs
            .iter()
            .filter(|o| o.resource_identifier.matches(meta))
        {
            if found.feedback_rules.is_empty() && !option.feedback_rules.is_empty() {
                found.feedback_rules.clone_from(&option.feedback_rules);
                found.feedback_scrape_type = option.feedback_scrape_type;
            }
            if found.update_strategy.is_none() {
                found.update_strategy.clone_from(&option.update_strategy);
            }
            if found.condition_rules.is_empty() {
                found.condition_rules.clone_from(&option.condition_rules);
            }
        }
        let configured = !found.feedback_rules.is_empty()
            || found.update_strategy.is_some()
            || !found.condition_rules.is_empty();
        configured.then_some(found)
    }

    /// The update strategy for the resource `meta` describes: the first matching one, else
    /// Update.
    pub fn update_strategy_for(&self, meta: &ManifestResourceMeta) -> UpdateStrategy {
        self.manifest_config_for(meta)
            .and_then(|o| o.update_strategy)
            .unwrap_or_default()
    }

    /// Whether the work owns (and so deletes with itself) the resource `group`/`resource`
    /// `namespace`/`name`: always under Foreground (or no delete option), never under Orphan,
    /// and under SelectivelyOrphan unless an orphaning rule names it exactly (OCM's
    /// `OwnedByTheWork`).
    pub fn owns(&self, group: &str, resource: &str, namespace: &str, name: &str) -> bool {
        let Some(option) = &self.delete_option else {
            return true;
        };
        match option.propagation_policy {
            DeletePropagationPolicy::Foreground => true,
            DeletePropagationPolicy::Orphan => false,
            DeletePropagationPolicy::SelectivelyOrphan => {
                !option.selectively_orphan.as_ref().is_some_and(|s| {
                    s.orphaning_rules.iter().any(|r| {
                        r.group == group
                            && r.resource == resource
                            && r.namespace == namespace
                            && r.name == name
                    })
                })
            }
        }
    }
}

/// What the agent reports about a work.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestWorkStatus {
    /// `Applied`, `Available`, `Progressing`, `Degraded`, `Complete` and condition-rule
    /// conditions.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub resource_status: ManifestResourceStatus,
}

/// `status.resourceStatus`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManifestResourceStatus {
    /// One entry per manifest.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub manifests: Vec<ManifestCondition>,
}

/// The state of one manifest's resource on the managed cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestCondition {
    pub resource_meta: ManifestResourceMeta,
    #[serde(default, rename = "statusFeedback")]
    pub status_feedback: StatusFeedbackResult,
    /// The resource's conditions: `Applied`, `Available`, `StatusFeedbackSynced` and
    /// condition-rule conditions.
    // Always written; Go writes an empty list as `null`, read here as empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Which resource a manifest is, and where it sits in `spec.workload.manifests`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct ManifestResourceMeta {
    /// The manifest's index in the spec.
    pub ordinal: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The resource (plural), from discovery.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// Reported status values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct StatusFeedbackResult {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub values: Vec<FeedbackValue>,
}

/// One reported value, named as in its feedback rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackValue {
    pub name: String,
    pub field_value: FieldValue,
}

/// A value of one of four types; the field named by `type` holds it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldValue {
    pub r#type: ValueType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integer: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boolean: Option<bool>,
    /// A list or object as JSON, up to the agent's configured length (64 KiB by default).
    // The bound is MAX_JSON_RAW_LENGTH; the agent's default cap is DEFAULT_MAX_JSON_RAW_LENGTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_JSON_RAW_LENGTH))]
    pub json_raw: Option<String>,
}

impl FieldValue {
    pub fn integer(value: i64) -> Self {
        Self::of(ValueType::Integer, |v| v.integer = Some(value))
    }

    pub fn string(value: impl Into<String>) -> Self {
        let value = value.into();
        Self::of(ValueType::String, |v| v.string = Some(value))
    }

    pub fn boolean(value: bool) -> Self {
        Self::of(ValueType::Boolean, |v| v.boolean = Some(value))
    }

    /// `json` is the list or object serialised as JSON.
    pub fn json_raw(json: impl Into<String>) -> Self {
        let json = json.into();
        Self::of(ValueType::JsonRaw, |v| v.json_raw = Some(json))
    }

    fn of(r#type: ValueType, set: impl FnOnce(&mut Self)) -> Self {
        let mut value = Self {
            r#type,
            integer: None,
            string: None,
            boolean: None,
            json_raw: None,
        };
        set(&mut value);
        value
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ValueType {
    Integer,
    String,
    Boolean,
    JsonRaw,
}

/// The agent's record of one ManifestWork it applied; owner of the applied resources.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "work.open-cluster-management.io",
    version = "v1",
    kind = "AppliedManifestWork",
    status = "AppliedManifestWorkStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "AppliedManifestWork records, on the managed cluster, the resources the work agent applied for one ManifestWork of one hub, and owns them: deleting it deletes them. Its name is <hub hash>-<ManifestWork name>."
)]
pub struct AppliedManifestWorkSpec {
    /// The SHA-256 (hex) of the URL of the hub the work came from.
    #[serde(rename = "hubHash", default, skip_serializing_if = "String::is_empty")]
    pub hub_hash: String,
    /// The agent that handles this record.
    #[serde(rename = "agentID", default, skip_serializing_if = "String::is_empty")]
    pub agent_id: String,
    /// The ManifestWork's name on the hub.
    #[serde(
        rename = "manifestWorkName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub manifest_work_name: String,
}

/// What the agent applied.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedManifestWorkStatus {
    /// The resources applied and not yet deleted.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub applied_resources: Vec<AppliedManifestResourceMeta>,
    /// Set when the hub no longer has the work (or the hub changed); the record is deleted
    /// once the eviction grace period has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_start_time: Option<Time>,
}

/// One applied resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct AppliedManifestResourceMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub version: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    /// The UID of the object applied.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl AppliedManifestResourceMeta {
    /// The resource without version and UID.
    pub fn identifier(&self) -> ResourceIdentifier {
        ResourceIdentifier {
            group: self.group.clone(),
            resource: self.resource.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// Which hub an AppliedManifestWork belongs to: the lowercase hex SHA-256 of the hub's URL, as
/// the agent was given it (OCM's `HubHash`; no normalisation).
pub fn hub_hash(hub_url: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, hub_url.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// The AppliedManifestWork of ManifestWork `work_name` from the hub of `hub_hash`:
/// `<hubHash>-<work name>`.
pub fn applied_manifest_work_name(hub_hash: &str, work_name: &str) -> String {
    format!("{hub_hash}-{work_name}")
}

/// The ManifestWork an AppliedManifestWork named `applied_name` stands for, if it belongs to
/// the hub of `hub_hash`.
pub fn manifest_work_name<'a>(hub_hash: &str, applied_name: &'a str) -> Option<&'a str> {
    applied_name
        .strip_prefix(hub_hash)?
        .strip_prefix('-')
        .filter(|name| !name.is_empty())
}

/// Go marshals an empty (nil) slice as `null`; read it as an empty list.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A ManifestWork using every spec field, in OCM's JSON.
    fn full_spec_json() -> Value {
        json!({
            "workload": {"manifests": [
                {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": "default"},
                 "spec": {"replicas": 2, "x-unknown": {"kept": true}}}
            ]},
            "deleteOption": {
                "propagationPolicy": "SelectivelyOrphan",
                "selectivelyOrphans": {"orphaningRules": [
                    {"group": "apps", "resource": "deployments", "namespace": "default", "name": "web"}
                ]},
                "ttlSecondsAfterFinished": 30
            },
            "manifestConfigs": [{
                "resourceIdentifier": {"group": "apps", "resource": "deployments", "namespace": "default", "name": "web"},
                "feedbackRules": [
                    {"type": "WellKnownStatus"},
                    {"type": "JSONPaths", "jsonPaths": [{"name": "replicas", "version": "v1", "path": ".status.replicas"}]}
                ],
                "feedbackScrapeType": "Watch",
                "updateStrategy": {"type": "ServerSideApply", "serverSideApply": {
                    "force": true,
                    "fieldManager": "work-agent-x",
                    "ignoreFields": [{"condition": "OnSpokeChange", "jsonPaths": [".spec.replicas"],
                                      "jqPathExpressions": [".spec.template"], "jsonPointers": ["/spec/paused"]}]
                }},
                "conditionRules": [
                    {"condition": "Complete", "type": "CEL", "celExpressions": ["object.status.ready"],
                     "message": "done", "messageExpression": "'ready: ' + string(result)"},
                    {"condition": "Complete2", "type": "WellKnownConditions"}
                ]
            }],
            "executor": {"subject": {"type": "ServiceAccount",
                                     "serviceAccount": {"namespace": "ns", "name": "sa"}}}
        })
    }

    #[test]
    fn every_spec_field_reads_and_writes_back_as_ocms_json() {
        let spec: ManifestWorkSpec = serde_json::from_value(full_spec_json()).unwrap();
        assert_eq!(
            spec.delete_option.as_ref().map(|d| d.propagation_policy),
            Some(DeletePropagationPolicy::SelectivelyOrphan)
        );
        let config = &spec.manifest_configs[0];
        assert_eq!(config.feedback_rules[1].r#type, FeedbackType::JsonPaths);
        assert_eq!(config.feedback_scrape_type, FeedbackScrapeType::Watch);
        assert_eq!(config.condition_rules[0].r#type, ConditionRuleType::Cel);
        assert_eq!(
            config.update_strategy.as_ref().map(|u| u.r#type),
            Some(UpdateStrategyType::ServerSideApply)
        );
        assert_eq!(serde_json::to_value(&spec).unwrap(), full_spec_json());
    }

    #[test]
    fn manifests_are_kept_whole_and_serialise_as_the_object_itself() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}});
        let manifest: Manifest = serde_json::from_value(object.clone()).unwrap();
        assert_eq!(manifest, Manifest::new(object.clone()));
        assert_eq!(serde_json::to_value(&manifest).unwrap(), object);
        assert_eq!(manifest.api_version(), Some("v1"));
        assert_eq!(manifest.kind(), Some("ConfigMap"));
        assert_eq!(manifest.name(), Some("c"));
        assert_eq!(manifest.namespace(), Some("ns"));
        let odd = Manifest::from(json!({"kind": 5, "metadata": "x"}));
        assert_eq!(
            (odd.kind(), odd.name(), odd.api_version()),
            (None, None, None)
        );
    }

    #[test]
    fn omitted_fields_take_ocms_defaults() {
        let spec: ManifestWorkSpec = serde_json::from_value(json!({
            "deleteOption": {},
            "manifestConfigs": [{
                "resourceIdentifier": {"resource": "configmaps", "name": "c"},
                "updateStrategy": {"serverSideApply": {"ignoreFields": [{"jsonPaths": [".data"]}]}},
                // Go writes these lists (no omitempty) as null when empty.
                "conditionRules": [{"condition": "Complete", "type": "WellKnownConditions",
                                    "celExpressions": null}],
                "feedbackRules": null
            }]
        }))
        .unwrap();
        assert_eq!(
            spec.delete_option.map(|d| d.propagation_policy),
            Some(DeletePropagationPolicy::Foreground)
        );
        let config = &spec.manifest_configs[0];
        assert_eq!(config.feedback_scrape_type, FeedbackScrapeType::Poll);
        assert!(config.feedback_rules.is_empty());
        assert!(config.condition_rules[0].cel_expressions.is_empty());
        let strategy = config.update_strategy.clone().unwrap();
        assert_eq!(strategy.r#type, UpdateStrategyType::Update);
        let ssa = strategy.server_side_apply.unwrap();
        assert_eq!(
            (ssa.force, ssa.field_manager.as_str()),
            (false, "work-agent")
        );
        assert_eq!(
            ssa.ignore_fields[0].condition,
            IgnoreFieldsCondition::OnSpokePresent
        );
        assert_eq!(
            ServerSideApplyConfig::default().field_manager,
            DEFAULT_FIELD_MANAGER
        );
        assert_eq!(
            ManifestWorkSpec::default(),
            serde_json::from_value(json!({})).unwrap()
        );
    }

    #[test]
    fn a_go_agents_status_reads_including_null_lists() {
        let status: ManifestWorkStatus = serde_json::from_value(json!({
            "conditions": [{"type": "Applied", "status": "True", "reason": "AppliedManifestWorkComplete",
                            "message": "", "lastTransitionTime": "2025-01-02T03:04:05Z", "observedGeneration": 2}],
            "resourceStatus": {"manifests": [
                {"resourceMeta": {"ordinal": 0, "group": "apps", "version": "v1", "kind": "Deployment",
                                  "resource": "deployments", "name": "web", "namespace": "default"},
                 "statusFeedback": {"values": [
                     {"name": "ReadyReplicas", "fieldValue": {"type": "Integer", "integer": 2}},
                     {"name": "phase", "fieldValue": {"type": "String", "string": "Running"}},
                     {"name": "ok", "fieldValue": {"type": "Boolean", "boolean": false}},
                     {"name": "raw", "fieldValue": {"type": "JsonRaw", "jsonRaw": "[1,2]"}}
                 ]},
                 "conditions": null},
                {"resourceMeta": {"ordinal": 1}, "statusFeedback": {}, "conditions": []}
            ]}
        }))
        .unwrap();
        assert_eq!(status.conditions[0].r#type, CONDITION_APPLIED);
        let first = &status.resource_status.manifests[0];
        assert!(first.conditions.is_empty());
        assert_eq!(
            first
                .status_feedback
                .values
                .iter()
                .map(|v| v.field_value.clone())
                .collect::<Vec<_>>(),
            [
                FieldValue::integer(2),
                FieldValue::string("Running"),
                FieldValue::boolean(false),
                FieldValue::json_raw("[1,2]"),
            ]
        );
        assert_eq!(status.resource_status.manifests[1].resource_meta.ordinal, 1);
    }

    #[test]
    fn feedback_values_serialise_with_only_their_types_field() {
        assert_eq!(
            serde_json::to_value(FieldValue::integer(3)).unwrap(),
            json!({"type": "Integer", "integer": 3})
        );
        assert_eq!(
            serde_json::to_value(FieldValue::json_raw("{}")).unwrap(),
            json!({"type": "JsonRaw", "jsonRaw": "{}"})
        );
        // A manifest's entry always carries its conditions and statusFeedback, as Go writes it.
        assert_eq!(
            serde_json::to_value(ManifestCondition::default()).unwrap(),
            json!({"resourceMeta": {"ordinal": 0}, "statusFeedback": {}, "conditions": []})
        );
    }

    #[test]
    fn applied_manifest_work_keeps_ocms_key_names() {
        let json = json!({
            "apiVersion": "work.open-cluster-management.io/v1",
            "kind": "AppliedManifestWork",
            "metadata": {"name": "abc-work"},
            "spec": {"hubHash": "abc", "agentID": "agent-1", "manifestWorkName": "work"},
            "status": {
                "appliedResources": [{"group": "apps", "version": "v1", "resource": "deployments",
                                      "namespace": "default", "name": "web", "uid": "u-1"}],
                "evictionStartTime": "2025-01-02T03:04:05Z"
            }
        });
        let applied: AppliedManifestWork = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(applied.spec.agent_id, "agent-1");
        let resource = &applied.status.as_ref().unwrap().applied_resources[0];
        assert_eq!(
            resource.identifier(),
            ResourceIdentifier {
                group: "apps".into(),
                resource: "deployments".into(),
                name: "web".into(),
                namespace: "default".into(),
            }
        );
        assert_eq!(serde_json::to_value(&applied).unwrap(), json);
    }

    #[test]
    fn hub_hash_is_the_hex_sha256_of_the_url_as_given() {
        assert_eq!(
            hub_hash("https://hub.example.com:6443"),
            "badbd4de19b639898c31f168ba913abc5d9e2bbcf25d70e3ee016190492578ae"
        );
        assert_eq!(
            hub_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // No normalisation: a trailing slash is another hub.
        assert_ne!(
            hub_hash("https://hub.example.com:6443/"),
            hub_hash("https://hub.example.com:6443")
        );
    }

    #[test]
    fn applied_manifest_work_names_join_and_split_on_the_hub_hash() {
        let hash = hub_hash("https://hub.example.com:6443");
        let name = applied_manifest_work_name(&hash, "nginx");
        assert_eq!(name, format!("{hash}-nginx"));
        assert_eq!(manifest_work_name(&hash, &name), Some("nginx"));
        // Work names may contain dashes.
        let dashed = applied_manifest_work_name(&hash, "a-b-c");
        assert_eq!(manifest_work_name(&hash, &dashed), Some("a-b-c"));
        // Another hub's record, or no separator, or no work name, is not this hub's.
        let other = applied_manifest_work_name(&hub_hash("https://other"), "nginx");
        assert_eq!(manifest_work_name(&hash, &other), None);
        assert_eq!(manifest_work_name(&hash, &format!("{hash}nginx")), None);
        assert_eq!(manifest_work_name(&hash, &format!("{hash}-")), None);
    }

    #[test]
    fn wildcards_stand_for_any_run_of_characters() {
        for (pattern, value, expected) in [
            ("web", "web", true),
            ("web", "web2", false),
            ("web", "", false),
            ("", "", true),
            ("*", "", true),
            ("*", "anything", true),
            ("web-*", "web-1", true),
            ("web-*", "web-", true),
            ("web-*", "api-1", false),
            ("*-db", "orders-db", true),
            ("*-db", "orders-db2", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("ab*ba", "abba", true),
            ("**", "x", true),
            ("kube-.*", "kube-system", false), // `.` is literal, not a regex
            ("kube-.*", "kube-.x", true),
        ] {
            assert_eq!(
                wildcard_match(pattern, value),
                expected,
                "{pattern:?} against {value:?}"
            );
        }
    }

    fn meta(group: &str, resource: &str, namespace: &str, name: &str) -> ManifestResourceMeta {
        ManifestResourceMeta {
            ordinal: 0,
            group: group.into(),
            version: "v1".into(),
            kind: "Kind".into(),
            resource: resource.into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    fn identifier(group: &str, resource: &str, namespace: &str, name: &str) -> ResourceIdentifier {
        ResourceIdentifier {
            group: group.into(),
            resource: resource.into(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    #[test]
    fn identifiers_match_group_and_resource_exactly_and_wildcard_namespace_and_name() {
        let web = meta("apps", "deployments", "default", "web-1");
        assert!(identifier("apps", "deployments", "default", "web-1").matches(&web));
        assert!(identifier("apps", "deployments", "*", "web-*").matches(&web));
        assert!(identifier("apps", "deployments", "def*", "*").matches(&web));
        assert!(!identifier("", "deployments", "*", "*").matches(&web));
        assert!(!identifier("*", "deployments", "*", "*").matches(&web));
        assert!(!identifier("apps", "*", "*", "*").matches(&web));
        assert!(!identifier("apps", "deployments", "other", "*").matches(&web));
        // A cluster-scoped resource matches an empty namespace, or `*`.
        let ns = meta("", "namespaces", "", "team-a");
        assert!(identifier("", "namespaces", "", "team-a").matches(&ns));
        assert!(identifier("", "namespaces", "*", "team-*").matches(&ns));
    }

    fn option(
        identifier: ResourceIdentifier,
        feedback: Option<FeedbackType>,
        update: Option<UpdateStrategyType>,
        condition: Option<&str>,
    ) -> ManifestConfigOption {
        ManifestConfigOption {
            feedback_rules: feedback
                .map(|r#type| FeedbackRule {
                    r#type,
                    json_paths: Vec::new(),
                })
                .into_iter()
                .collect(),
            feedback_scrape_type: FeedbackScrapeType::Watch,
            update_strategy: update.map(|r#type| UpdateStrategy {
                r#type,
                server_side_apply: None,
            }),
            condition_rules: condition
                .map(|condition| ConditionRule {
                    condition: condition.into(),
                    r#type: ConditionRuleType::WellKnownConditions,
                    cel_expressions: Vec::new(),
                    message: String::new(),
                    message_expression: String::new(),
                })
                .into_iter()
                .collect(),
            ..ManifestConfigOption::new(identifier)
        }
    }

    #[test]
    fn manifest_configs_merge_the_first_match_of_each_setting_in_order() {
        let spec = ManifestWorkSpec {
            manifest_configs: vec![
                option(
                    identifier("apps", "deployments", "*", "api"),
                    Some(FeedbackType::JsonPaths),
                    Some(UpdateStrategyType::ReadOnly),
                    None,
                ),
                option(
                    identifier("apps", "deployments", "*", "*"),
                    Some(FeedbackType::WellKnownStatus),
                    None,
                    None,
                ),
                option(
                    identifier("apps", "deployments", "default", "web-*"),
                    Some(FeedbackType::JsonPaths),
                    Some(UpdateStrategyType::ServerSideApply),
                    Some("Complete"),
                ),
            ],
            ..ManifestWorkSpec::default()
        };
        let web = meta("apps", "deployments", "default", "web-1");
        let found = spec.manifest_config_for(&web).unwrap();
        assert_eq!(
            found.resource_identifier,
            identifier("apps", "deployments", "default", "web-1")
        );
        // Feedback from the second entry (the first that matches), the rest from the third.
        assert_eq!(
            found.feedback_rules[0].r#type,
            FeedbackType::WellKnownStatus
        );
        assert_eq!(found.feedback_scrape_type, FeedbackScrapeType::Watch);
        assert_eq!(
            found.update_strategy.map(|u| u.r#type),
            Some(UpdateStrategyType::ServerSideApply)
        );
        assert_eq!(found.condition_rules[0].condition, "Complete");
        assert_eq!(
            spec.update_strategy_for(&meta("apps", "deployments", "x", "api"))
                .r#type,
            UpdateStrategyType::ReadOnly
        );
        // Nothing matches: nothing configured, and the update strategy is Update.
        let cm = meta("", "configmaps", "default", "web-1");
        assert_eq!(spec.manifest_config_for(&cm), None);
        assert_eq!(spec.update_strategy_for(&cm), UpdateStrategy::default());
        // A match that configures nothing is no configuration either.
        let empty = ManifestWorkSpec {
            manifest_configs: vec![ManifestConfigOption::new(identifier(
                "",
                "configmaps",
                "*",
                "*",
            ))],
            ..ManifestWorkSpec::default()
        };
        assert_eq!(empty.manifest_config_for(&cm), None);
    }

    #[test]
    fn the_delete_option_decides_which_resources_the_work_owns() {
        let with = |policy, rules: Vec<OrphaningRule>| ManifestWorkSpec {
            delete_option: Some(DeleteOption {
                propagation_policy: policy,
                selectively_orphan: Some(SelectivelyOrphan {
                    orphaning_rules: rules,
                }),
                ttl_seconds_after_finished: None,
            }),
            ..ManifestWorkSpec::default()
        };
        let rule = identifier("apps", "deployments", "default", "web");
        assert!(ManifestWorkSpec::default().owns("apps", "deployments", "default", "web"));
        assert!(
            with(DeletePropagationPolicy::Foreground, vec![rule.clone()]).owns(
                "apps",
                "deployments",
                "default",
                "web"
            )
        );
        assert!(!with(DeletePropagationPolicy::Orphan, vec![]).owns("", "configmaps", "a", "b"));
        let selective = with(DeletePropagationPolicy::SelectivelyOrphan, vec![rule]);
        assert!(!selective.owns("apps", "deployments", "default", "web"));
        assert!(selective.owns("apps", "deployments", "default", "web2"));
        assert!(selective.owns("apps", "deployments", "other", "web"));
        assert!(selective.owns("", "deployments", "default", "web"));
        // Orphaning rules match exactly: no wildcards.
        let wildcard = with(
            DeletePropagationPolicy::SelectivelyOrphan,
            vec![identifier("apps", "deployments", "*", "*")],
        );
        assert!(wildcard.owns("apps", "deployments", "default", "web"));
        let mut no_rules = with(DeletePropagationPolicy::SelectivelyOrphan, vec![]);
        assert!(no_rules.owns("apps", "deployments", "default", "web"));
        if let Some(option) = &mut no_rules.delete_option {
            option.selectively_orphan = None;
        }
        assert!(no_rules.owns("apps", "deployments", "default", "web"));
    }

    #[test]
    fn an_executor_service_account_is_a_kubernetes_user() {
        let account = ManifestWorkSubjectServiceAccount {
            namespace: "ns".into(),
            name: "deployer".into(),
        };
        assert_eq!(account.user_name(), "system:serviceaccount:ns:deployer");
    }
}
