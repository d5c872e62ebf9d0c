//! Cluster sets (OCM's cluster API v1beta2), as OCM's hub registration controllers keep them:
//!
//! - the built-in sets `default` (`ExclusiveClusterSetLabel`) and `global` (`LabelSelector` with
//!   an empty selector: every cluster) are created when missing, recreated when deleted, and an
//!   edit of their `spec.clusterSelector` is rolled back, unless the set is annotated
//!   `cluster.open-cluster-management.io/autoupdate: "false"`;
//! - every ManagedCluster without a non-empty `cluster.open-cluster-management.io/clusterset`
//!   label gets `…/clusterset=default` (see [`needs_default_label`]: the mutating webhook's
//!   job, backed up here for clusters stored without it);
//! - every ManagedClusterSet's `ClusterSetEmpty` condition says how many clusters it selects;
//! - every ManagedClusterSetBinding's `Bound` condition says whether its set exists.
//!
//! One task watches ManagedClusterSets and ManagedClusterSetBindings into reflector stores and
//! reads ManagedClusters from the registration controllers' shared cache
//! ([`super::clusters::SharedClusters`]); any change wakes it, and [`plan`] (pure) compares the whole picture with
//! what the objects say and returns only the writes that change something. Writes are guarded
//! by the resourceVersion they were computed from, so a concurrent edit is never overwritten;
//! a conflict is settled by the next round, which the newer object's watch event starts.
//! Checking every set against every cluster is cheap at a hub's scale (sets × clusters label
//! look-ups per round, and rounds coalesce while one is running).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use jiff::Timestamp;
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::cluster::v1beta2::{
    CLUSTER_SET_LABEL, CONDITION_BOUND, CONDITION_CLUSTER_SET_EMPTY, ManagedClusterSelector,
    ManagedClusterSet, ManagedClusterSetBinding, ManagedClusterSetSpec, SelectorType,
};
use ocm_api::condition::{self, Condition, ConditionStatus};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement,
};
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::runtime::reflector::{self, Store};
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::kube::{Api, Client, Resource};
use ocm_api::label_selector::{LabelSelectorError, Selector};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The built-in set every cluster without a set label is put in.
pub const DEFAULT_SET: &str = "default";
/// The built-in set of every cluster.
pub const GLOBAL_SET: &str = "global";
/// `"false"` on a built-in set keeps the controller from rolling back edits of its selector.
pub const AUTO_UPDATE_ANNOTATION: &str = "cluster.open-cluster-management.io/autoupdate";

/// A round whose writes failed is retried this soon.
const RETRY: Duration = Duration::from_secs(2);
/// Writes of one round in flight at once.
const CONCURRENT_WRITES: usize = 16;
/// Everything is reconsidered at least this often, changes or not.
const RESYNC: Duration = Duration::from_secs(300);

/// The built-in `default` set: clusters labelled `…/clusterset=default`.
pub fn default_set() -> ManagedClusterSet {
    ManagedClusterSet::new(
        DEFAULT_SET,
        ManagedClusterSetSpec {
            cluster_selector: ManagedClusterSelector {
                selector_type: SelectorType::ExclusiveClusterSetLabel,
                label_selector: None,
            },
            ..ManagedClusterSetSpec::default()
        },
    )
}

/// The built-in `global` set: an empty label selector, so every cluster.
pub fn global_set() -> ManagedClusterSet {
    ManagedClusterSet::new(
        GLOBAL_SET,
        ManagedClusterSetSpec {
            cluster_selector: ManagedClusterSelector {
                selector_type: SelectorType::LabelSelector,
                label_selector: Some(LabelSelector::default()),
            },
            ..ManagedClusterSetSpec::default()
        },
    )
}

/// Which clusters `set` selects (OCM's `BuildClusterSelector`): those labelled with its name for
/// `ExclusiveClusterSetLabel`, those its label selector matches for `LabelSelector` (none when
/// it has no selector at all).
pub fn cluster_selector(set: &ManagedClusterSet) -> Result<Selector, LabelSelectorError> {
    match set.spec.cluster_selector.selector_type {
        SelectorType::ExclusiveClusterSetLabel => Ok(Selector::label_equals(
            CLUSTER_SET_LABEL,
            set.metadata.name.as_deref().unwrap_or_default(),
        )),
        SelectorType::LabelSelector => {
            Selector::new(set.spec.cluster_selector.label_selector.as_ref())
        }
    }
}

/// Whether `cluster` lacks a non-empty clusterset label and so belongs in `default`.
///
/// OCM stamps `cluster.open-cluster-management.io/clusterset=default` in its mutating admission
/// webhook, on every create or update of a ManagedCluster without a non-empty clusterset label;
/// so does ocm-hub's (`webhook::clusters::defaults`). This controller patches the label onto
/// clusters stored without it anyway — while the webhook was not registered (an older hub, a
/// hub run without it) — right after the write. Clusters being deleted are left alone.
pub fn needs_default_label(cluster: &ManagedCluster) -> bool {
    cluster.metadata.deletion_timestamp.is_none()
        && cluster
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(CLUSTER_SET_LABEL))
            .is_none_or(String::is_empty)
}

/// What a built-in set needs.
#[derive(Debug, Clone, PartialEq)]
pub enum BuiltinAction {
    /// It is missing: create it.
    Create(Box<ManagedClusterSet>),
    /// Its selector was edited: the stored object (with its resourceVersion) with the built-in
    /// selector put back, to be written whole as OCM updates it.
    RollBack(Box<ManagedClusterSet>),
}

/// What the built-in set `desired` needs, given the stored one: nothing while it is being
/// deleted (it is recreated once gone) or annotated `autoupdate: "false"`.
pub fn builtin_action(
    desired: &ManagedClusterSet,
    current: Option<&ManagedClusterSet>,
) -> Option<BuiltinAction> {
    let Some(current) = current else {
        return Some(BuiltinAction::Create(Box::new(desired.clone())));
    };
    if current.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let auto_update = current
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTO_UPDATE_ANNOTATION))
        .is_none_or(|value| value != "false");
    if !auto_update
        || same_selector(
            &current.spec.cluster_selector,
            &desired.spec.cluster_selector,
        )
    {
        return None;
    }
    let mut rolled_back = current.clone();
    rolled_back.spec.cluster_selector = desired.spec.cluster_selector.clone();
    Some(BuiltinAction::RollBack(Box::new(rolled_back)))
}

/// Selector equality as Go's `equality.Semantic` sees it: an empty list or map is the same as
/// none, but no label selector is not the same as an empty one.
fn same_selector(a: &ManagedClusterSelector, b: &ManagedClusterSelector) -> bool {
    fn normalized(selector: &LabelSelector) -> LabelSelector {
        LabelSelector {
            match_labels: selector.match_labels.clone().filter(|m| !m.is_empty()),
            match_expressions: selector
                .match_expressions
                .as_ref()
                .filter(|e| !e.is_empty())
                .map(|expressions| {
                    expressions
                        .iter()
                        .map(|e| LabelSelectorRequirement {
                            values: e.values.clone().filter(|v| !v.is_empty()),
                            ..e.clone()
                        })
                        .collect()
                }),
        }
    }
    a.selector_type == b.selector_type
        && match (&a.label_selector, &b.label_selector) {
            (None, None) => true,
            (Some(a), Some(b)) => normalized(a) == normalized(b),
            _ => false,
        }
}

/// The `ClusterSetEmpty` condition for `selected` clusters: status, reason, message (OCM's).
pub fn empty_condition(selected: usize) -> (ConditionStatus, &'static str, String) {
    if selected == 0 {
        (
            ConditionStatus::True,
            "NoClusterMatched",
            "No ManagedCluster selected".to_owned(),
        )
    } else {
        (
            ConditionStatus::False,
            "ClustersSelected",
            format!("{selected} ManagedClusters selected"),
        )
    }
}

/// The conditions `set` should have given `selected` clusters, if they differ from its own.
pub fn set_conditions(
    set: &ManagedClusterSet,
    selected: usize,
    now: Timestamp,
) -> Option<Vec<Condition>> {
    let mut conditions = set
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (status, reason, message) = empty_condition(selected);
    condition::set(
        &mut conditions,
        CONDITION_CLUSTER_SET_EMPTY,
        status,
        reason,
        &message,
        now,
    )
    .then_some(conditions)
}

/// The conditions `binding` should have, its set existing or not, if they differ from its own
/// (OCM's: `Bound` True/`ClusterSetBound` or False/`ClusterSetNotFound`, no message).
pub fn binding_conditions(
    binding: &ManagedClusterSetBinding,
    set_exists: bool,
    now: Timestamp,
) -> Option<Vec<Condition>> {
    let mut conditions = binding
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (status, reason) = if set_exists {
        (ConditionStatus::True, "ClusterSetBound")
    } else {
        (ConditionStatus::False, "ClusterSetNotFound")
    };
    condition::set(&mut conditions, CONDITION_BOUND, status, reason, "", now).then_some(conditions)
}

/// One write the controller makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Builtin(BuiltinAction),
    /// Add `…/clusterset=default` to the cluster, as it was at `resource_version`.
    LabelCluster {
        cluster: String,
        resource_version: Option<String>,
    },
    /// Write the set's conditions; `selected` is for the log.
    SetStatus {
        set: String,
        resource_version: Option<String>,
        conditions: Vec<Condition>,
        selected: usize,
    },
    BindingStatus {
        namespace: String,
        binding: String,
        resource_version: Option<String>,
        conditions: Vec<Condition>,
        bound: bool,
    },
}

/// What one round decided.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Sets whose selector cannot be evaluated (their status is left as it is, as OCM leaves
    /// it): name, resourceVersion and why.
    pub invalid: Vec<(String, Option<String>, LabelSelectorError)>,
}

/// Everything the controller should write, given every cluster, set and binding.
///
/// Built-in sets first (a set being rolled back gets its status in the round after, from the
/// restored selector), then the default clusterset label, then set and binding status. Only
/// writes that change something are planned; sets and bindings being deleted are left alone.
pub fn plan(
    clusters: &[Arc<ManagedCluster>],
    sets: &[Arc<ManagedClusterSet>],
    bindings: &[Arc<ManagedClusterSetBinding>],
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let by_name: HashMap<&str, &ManagedClusterSet> = sets
        .iter()
        .filter_map(|s| Some((s.metadata.name.as_deref()?, s.as_ref())))
        .collect();
    let mut rolling_back = HashSet::new();
    for desired in [default_set(), global_set()] {
        let name = desired.metadata.name.as_deref().unwrap_or_default();
        if let Some(action) = builtin_action(&desired, by_name.get(name).copied()) {
            if matches!(action, BuiltinAction::RollBack(_)) {
                rolling_back.insert(name.to_owned());
            }
            plan.actions.push(Action::Builtin(action));
        }
    }
    for cluster in clusters.iter().filter(|c| needs_default_label(c)) {
        plan.actions.push(Action::LabelCluster {
            cluster: cluster.metadata.name.clone().unwrap_or_default(),
            resource_version: cluster.metadata.resource_version.clone(),
        });
    }
    for set in sets {
        let name = set.metadata.name.clone().unwrap_or_default();
        if set.metadata.deletion_timestamp.is_some() || rolling_back.contains(&name) {
            continue;
        }
        let selector = match cluster_selector(set) {
            Ok(selector) => selector,
            Err(err) => {
                plan.invalid
                    .push((name, set.metadata.resource_version.clone(), err));
                continue;
            }
        };
        let selected = clusters
            .iter()
            .filter(|c| selector.matches(c.metadata.labels.as_ref()))
            .count();
        if let Some(conditions) = set_conditions(set, selected, now) {
            plan.actions.push(Action::SetStatus {
                set: name,
                resource_version: set.metadata.resource_version.clone(),
                conditions,
                selected,
            });
        }
    }
    for binding in bindings {
        if binding.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let bound = by_name.contains_key(binding.spec.cluster_set.as_str());
        if let Some(conditions) = binding_conditions(binding, bound, now) {
            plan.actions.push(Action::BindingStatus {
                namespace: binding.metadata.namespace.clone().unwrap_or_default(),
                binding: binding.metadata.name.clone().unwrap_or_default(),
                resource_version: binding.metadata.resource_version.clone(),
                conditions,
                bound,
            });
        }
    }
    plan
}

/// Runs the controller until `cancel`. `clusters` is the shared ManagedCluster cache, listed
/// already (the controller is one of those [`super::clusters::SharedClusters::run`] starts), and
/// `changed` is woken on each of its changes ([`super::clusters::SharedClusters::notify_changes`]).
pub async fn run(
    client: Client,
    clusters: Store<ManagedCluster>,
    changed: Arc<Notify>,
    cancel: CancellationToken,
) {
    let (sets, watching_sets) = reflect(Api::<ManagedClusterSet>::all(client.clone()), &changed);
    let (bindings, watching_bindings) = reflect(
        Api::<ManagedClusterSetBinding>::all(client.clone()),
        &changed,
    );
    let _watches = AbortOnDrop(vec![watching_sets, watching_bindings]);
    let ready = async {
        sets.wait_until_ready().await?;
        bindings.wait_until_ready().await
    };
    tokio::select! {
        () = cancel.cancelled() => return,
        result = ready => if result.is_err() { return },
    }
    tracing::info!("cluster set controller running");
    // A set with an invalid selector is reported once per version, not once per round.
    let mut reported: HashMap<String, Option<String>> = HashMap::new();
    let mut wait = RESYNC;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let round = plan(
            &clusters.state(),
            &sets.state(),
            &bindings.state(),
            Timestamp::now(),
        );
        for (set, version, err) in round.invalid {
            if reported.get(&set) != Some(&version) {
                tracing::warn!(clusterset = %set, %err, "cannot select the set's clusters; status left as it is");
                reported.insert(set, version);
            }
        }
        // Concurrently: at thousands of joining clusters, one label write at a time fell
        // minutes behind the joins.
        let settled = futures::stream::iter(round.actions)
            .map(|action| execute(&client, action))
            .buffer_unordered(CONCURRENT_WRITES)
            .fold(true, |settled, done| async move { settled && done })
            .await;
        wait = if settled { RESYNC } else { RETRY };
    }
}

/// A reflector for `api`'s objects that wakes `changed` on every event.
fn reflect<K>(api: Api<K>, changed: &Arc<Notify>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
{
    let (store, writer) = reflector::store();
    let changed = Arc::clone(changed);
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(crate::slim::drop_managed_fields)
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Ok(_) => changed.notify_one(),
                Err(err) => tracing::debug!(kind = %K::kind(&()), %err, "watch interrupted"),
            }
            async {}
        });
    (store, tokio::spawn(watch))
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Makes one write; false if it should be tried again soon.
async fn execute(client: &Client, action: Action) -> bool {
    let sets: Api<ManagedClusterSet> = Api::all(client.clone());
    let result = match &action {
        Action::Builtin(BuiltinAction::Create(set)) => sets
            .create(&PostParams::default(), set)
            .await
            .map(|_| tracing::info!(clusterset = %name_of(set), "built-in ManagedClusterSet created")),
        Action::Builtin(BuiltinAction::RollBack(set)) => sets
            .replace(&name_of(set), &PostParams::default(), set)
            .await
            .map(|_| {
                tracing::info!(
                    clusterset = %name_of(set),
                    "edit of a built-in ManagedClusterSet's selector rolled back (annotate it {AUTO_UPDATE_ANNOTATION}=\"false\" to keep edits)"
                )
            }),
        Action::LabelCluster {
            cluster,
            resource_version,
        } => {
            let patch = serde_json::json!({"metadata": {
                "resourceVersion": resource_version,
                "labels": BTreeMap::from([(CLUSTER_SET_LABEL, DEFAULT_SET)]),
            }});
            Api::<ManagedCluster>::all(client.clone())
                .patch(cluster, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(|_| tracing::info!(%cluster, clusterset = DEFAULT_SET, "cluster put in the default cluster set"))
        }
        Action::SetStatus {
            set,
            resource_version,
            conditions,
            selected,
        } => {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": resource_version},
                "status": {"conditions": conditions},
            });
            sets.patch_status(set, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(|_| tracing::info!(clusterset = %set, selected, "cluster set status updated"))
        }
        Action::BindingStatus {
            namespace,
            binding,
            resource_version,
            conditions,
            bound,
        } => {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": resource_version},
                "status": {"conditions": conditions},
            });
            Api::<ManagedClusterSetBinding>::namespaced(client.clone(), namespace)
                .patch_status(binding, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(|_| tracing::info!(%namespace, %binding, bound, "cluster set binding status updated"))
        }
    };
    match result {
        Ok(()) => true,
        // Gone: its deletion event starts the next round.
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => true,
        // A newer version (or, for a create, the object) exists; retry with what the watch
        // brings.
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => {
            tracing::debug!(?action, reason = %status.message, "stale; retrying");
            false
        }
        Err(err) => {
            tracing::warn!(?action, %err, "cluster set write failed; retrying");
            false
        }
    }
}

fn name_of(set: &ManagedClusterSet) -> String {
    set.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use ocm_api::cluster::v1::ManagedClusterSpec;
    use ocm_api::cluster::v1beta2::{ManagedClusterSetBindingSpec, ManagedClusterSetStatus};
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or_default()
    }

    fn cluster(name: &str, labels: &[(&str, &str)]) -> Arc<ManagedCluster> {
        let mut cluster = ManagedCluster::new(name, ManagedClusterSpec::default());
        cluster.metadata.resource_version = Some("7".into());
        if !labels.is_empty() {
            cluster.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
        }
        Arc::new(cluster)
    }

    fn in_set(name: &str, set: &str) -> Arc<ManagedCluster> {
        cluster(name, &[(CLUSTER_SET_LABEL, set)])
    }

    fn exclusive(name: &str) -> ManagedClusterSet {
        ManagedClusterSet::new(name, ManagedClusterSetSpec::default())
    }

    fn selecting(name: &str, match_labels: &[(&str, &str)]) -> ManagedClusterSet {
        let mut set = exclusive(name);
        set.spec.cluster_selector = ManagedClusterSelector {
            selector_type: SelectorType::LabelSelector,
            label_selector: Some(LabelSelector {
                match_labels: Some(
                    match_labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                match_expressions: None,
            }),
        };
        set
    }

    fn binding(name: &str, set: &str) -> Arc<ManagedClusterSetBinding> {
        let mut binding = ManagedClusterSetBinding::new(
            name,
            ManagedClusterSetBindingSpec {
                cluster_set: set.to_owned(),
            },
        );
        binding.metadata.namespace = Some("team".into());
        Arc::new(binding)
    }

    /// The world after the planned status writes landed.
    fn with_status(
        sets: &[Arc<ManagedClusterSet>],
        bindings: &[Arc<ManagedClusterSetBinding>],
        plan: &Plan,
    ) -> (
        Vec<Arc<ManagedClusterSet>>,
        Vec<Arc<ManagedClusterSetBinding>>,
    ) {
        let mut sets: Vec<ManagedClusterSet> = sets.iter().map(|s| (**s).clone()).collect();
        let mut bindings: Vec<ManagedClusterSetBinding> =
            bindings.iter().map(|b| (**b).clone()).collect();
        for action in &plan.actions {
            match action {
                Action::SetStatus {
                    set, conditions, ..
                } => {
                    if let Some(s) = sets
                        .iter_mut()
                        .find(|s| s.metadata.name.as_ref() == Some(set))
                    {
                        s.status = Some(ManagedClusterSetStatus {
                            conditions: conditions.clone(),
                        });
                    }
                }
                Action::BindingStatus {
                    binding,
                    conditions,
                    ..
                } => {
                    if let Some(b) = bindings
                        .iter_mut()
                        .find(|b| b.metadata.name.as_ref() == Some(binding))
                    {
                        b.status =
                            Some(ocm_api::cluster::v1beta2::ManagedClusterSetBindingStatus {
                                conditions: conditions.clone(),
                            });
                    }
                }
                _ => {}
            }
        }
        (
            sets.into_iter().map(Arc::new).collect(),
            bindings.into_iter().map(Arc::new).collect(),
        )
    }

    fn set_status_of<'a>(plan: &'a Plan, name: &str) -> Option<(&'a Condition, usize)> {
        plan.actions.iter().find_map(|a| match a {
            Action::SetStatus {
                set,
                conditions,
                selected,
                ..
            } if set == name => {
                condition::find(conditions, CONDITION_CLUSTER_SET_EMPTY).map(|c| (c, *selected))
            }
            _ => None,
        })
    }

    #[test]
    fn missing_built_in_sets_are_created_and_edits_rolled_back_unless_annotated() {
        let default = default_set();
        assert_eq!(
            builtin_action(&default, None),
            Some(BuiltinAction::Create(Box::new(default.clone())))
        );
        assert_eq!(builtin_action(&default, Some(&default)), None);

        let mut edited = global_set();
        edited.metadata.resource_version = Some("42".into());
        edited.spec.cluster_selector.label_selector = Some(LabelSelector {
            match_labels: Some([("team".to_owned(), "x".to_owned())].into()),
            match_expressions: None,
        });
        edited.spec.managed_namespaces = vec![ocm_api::cluster::v1beta2::ManagedNamespaceConfig {
            name: "kept".into(),
        }];
        let Some(BuiltinAction::RollBack(rolled_back)) =
            builtin_action(&global_set(), Some(&edited))
        else {
            panic!("an edited global set is rolled back");
        };
        assert_eq!(
            rolled_back.spec.cluster_selector,
            global_set().spec.cluster_selector
        );
        // Only the selector is put back; the rest of the object, its version included, stays.
        assert_eq!(rolled_back.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(
            rolled_back.spec.managed_namespaces,
            edited.spec.managed_namespaces
        );

        let mut annotated = edited.clone();
        annotated.metadata.annotations =
            Some([(AUTO_UPDATE_ANNOTATION.to_owned(), "false".to_owned())].into());
        assert_eq!(builtin_action(&global_set(), Some(&annotated)), None);
        annotated.metadata.annotations =
            Some([(AUTO_UPDATE_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert!(builtin_action(&global_set(), Some(&annotated)).is_some());

        let mut deleting = edited;
        deleting.metadata.deletion_timestamp = Some(Time(at(1)));
        assert_eq!(builtin_action(&global_set(), Some(&deleting)), None);
    }

    #[test]
    fn selectors_compare_as_go_compares_them() {
        // Empty lists and maps are no lists and maps…
        let mut global = global_set();
        global.spec.cluster_selector.label_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(Vec::new()),
        });
        assert_eq!(builtin_action(&global_set(), Some(&global)), None);
        // …but an empty selector is not no selector.
        let mut default = default_set();
        default.spec.cluster_selector.label_selector = Some(LabelSelector::default());
        assert!(matches!(
            builtin_action(&default_set(), Some(&default)),
            Some(BuiltinAction::RollBack(_))
        ));
        let mut retyped = default_set();
        retyped.spec.cluster_selector.selector_type = SelectorType::LabelSelector;
        assert!(builtin_action(&default_set(), Some(&retyped)).is_some());
    }

    #[test]
    fn clusters_without_a_non_empty_set_label_go_to_default() {
        assert!(needs_default_label(&cluster("a", &[])));
        assert!(needs_default_label(&cluster("a", &[("env", "prod")])));
        assert!(needs_default_label(&in_set("a", "")));
        assert!(!needs_default_label(&in_set("a", "dev")));
        let mut deleting = (*cluster("a", &[])).clone();
        deleting.metadata.deletion_timestamp = Some(Time(at(1)));
        assert!(!needs_default_label(&deleting));
    }

    #[test]
    fn the_empty_condition_counts_the_selected_clusters_as_ocm_words_it() {
        assert_eq!(
            empty_condition(0),
            (
                ConditionStatus::True,
                "NoClusterMatched",
                "No ManagedCluster selected".to_owned()
            )
        );
        assert_eq!(
            empty_condition(3),
            (
                ConditionStatus::False,
                "ClustersSelected",
                "3 ManagedClusters selected".to_owned()
            )
        );
        let mut set = exclusive("dev");
        let conditions = set_conditions(&set, 1, at(10)).expect("first status");
        set.status = Some(ManagedClusterSetStatus { conditions });
        assert_eq!(set_conditions(&set, 1, at(20)), None, "unchanged: no write");
        let conditions = set_conditions(&set, 0, at(30)).expect("emptied");
        let empty = condition::find(&conditions, CONDITION_CLUSTER_SET_EMPTY).unwrap();
        assert_eq!(empty.status, ConditionStatus::True);
        assert_eq!(empty.last_transition_time, Time(at(30)));
    }

    #[test]
    fn membership_by_set_label_or_by_label_selector() {
        let clusters = [
            in_set("a", "dev"),
            cluster("b", &[(CLUSTER_SET_LABEL, "prod"), ("env", "prod")]),
            cluster("c", &[(CLUSTER_SET_LABEL, "dev"), ("env", "prod")]),
        ];
        let count = |set: &ManagedClusterSet| {
            let selector = cluster_selector(set).unwrap();
            clusters
                .iter()
                .filter(|c| selector.matches(c.metadata.labels.as_ref()))
                .count()
        };
        assert_eq!(count(&exclusive("dev")), 2);
        assert_eq!(count(&exclusive("qa")), 0);
        assert_eq!(count(&selecting("prod-env", &[("env", "prod")])), 2);
        assert_eq!(count(&global_set()), 3);
        let mut no_selector = exclusive("none");
        no_selector.spec.cluster_selector.selector_type = SelectorType::LabelSelector;
        assert_eq!(count(&no_selector), 0);
    }

    #[test]
    fn bindings_are_bound_while_their_set_exists() {
        let mut b = (*binding("dev", "dev")).clone();
        let conditions = binding_conditions(&b, true, at(1)).expect("first status");
        let bound = condition::find(&conditions, CONDITION_BOUND).unwrap();
        assert_eq!(
            (bound.status, bound.reason.as_str()),
            (ConditionStatus::True, "ClusterSetBound")
        );
        b.status = Some(ocm_api::cluster::v1beta2::ManagedClusterSetBindingStatus { conditions });
        assert_eq!(binding_conditions(&b, true, at(2)), None);
        let conditions = binding_conditions(&b, false, at(3)).expect("set gone");
        let bound = condition::find(&conditions, CONDITION_BOUND).unwrap();
        assert_eq!(
            (bound.status, bound.reason.as_str()),
            (ConditionStatus::False, "ClusterSetNotFound")
        );
    }

    #[test]
    fn a_round_plans_every_needed_write_and_a_converged_world_needs_none() {
        let clusters = vec![cluster("new", &[]), in_set("a", "dev"), in_set("b", "dev")];
        let sets: Vec<Arc<ManagedClusterSet>> = vec![
            Arc::new(default_set()),
            Arc::new(exclusive("dev")),
            Arc::new(selecting("bad", &[])),
        ];
        let mut bad = (*sets[2]).clone();
        bad.spec.cluster_selector.label_selector = Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "Near".into(),
                values: None,
            }]),
        });
        let sets = vec![Arc::clone(&sets[0]), Arc::clone(&sets[1]), Arc::new(bad)];
        let bindings = vec![binding("dev", "dev"), binding("qa", "qa")];

        let first = plan(&clusters, &sets, &bindings, at(1));
        assert_eq!(
            first.actions[0],
            Action::Builtin(BuiltinAction::Create(Box::new(global_set()))),
            "global is missing"
        );
        assert!(first.actions.contains(&Action::LabelCluster {
            cluster: "new".into(),
            resource_version: Some("7".into())
        }));
        // Counted from the labels as they are: `new` is not in default yet.
        let (default, selected) = set_status_of(&first, DEFAULT_SET).unwrap();
        assert_eq!((default.status, selected), (ConditionStatus::True, 0));
        let (dev, selected) = set_status_of(&first, "dev").unwrap();
        assert_eq!(
            (dev.message.as_str(), selected),
            ("2 ManagedClusters selected", 2)
        );
        assert!(set_status_of(&first, "bad").is_none());
        assert_eq!(first.invalid.len(), 1);
        assert_eq!(first.invalid[0].0, "bad");
        let bound: Vec<(&str, bool)> = first
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::BindingStatus { binding, bound, .. } => Some((binding.as_str(), *bound)),
                _ => None,
            })
            .collect();
        assert_eq!(bound, [("dev", true), ("qa", false)]);

        // Once the writes landed (the label included), only default's count changes.
        let (sets, bindings) = with_status(&sets, &bindings, &first);
        let mut sets = sets;
        sets.push(Arc::new(global_set()));
        let clusters = vec![
            in_set("new", DEFAULT_SET),
            in_set("a", "dev"),
            in_set("b", "dev"),
        ];
        let second = plan(&clusters, &sets, &bindings, at(2));
        let statuses: Vec<&str> = second
            .actions
            .iter()
            .map(|a| match a {
                Action::SetStatus { set, .. } => set.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(statuses, [DEFAULT_SET, GLOBAL_SET]);
        let (sets, bindings) = with_status(&sets, &bindings, &second);
        let third = plan(&clusters, &sets, &bindings, at(3));
        assert_eq!(third.actions, [], "converged: nothing to write");
    }

    #[test]
    fn a_built_in_set_being_rolled_back_gets_its_status_after() {
        let mut edited = global_set();
        edited.spec.cluster_selector.label_selector = Some(LabelSelector {
            match_labels: Some([("team".to_owned(), "x".to_owned())].into()),
            match_expressions: None,
        });
        let sets = vec![Arc::new(default_set()), Arc::new(edited)];
        let round = plan(&[cluster("a", &[])], &sets, &[], at(1));
        assert!(
            round
                .actions
                .iter()
                .any(|a| matches!(a, Action::Builtin(BuiltinAction::RollBack(_))))
        );
        assert!(set_status_of(&round, GLOBAL_SET).is_none());
        assert!(set_status_of(&round, DEFAULT_SET).is_some());
    }
}
