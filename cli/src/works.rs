//! `ocmctl create work`, `get works` and `delete work`: ManifestWorks on the hub as clusteradm
//! handles them. One ManifestWork per cluster, named as asked, in the cluster's namespace.
//!
//! `create` checks everything before it writes anything — the work (OCM's webhook rules, every
//! problem at once), then every cluster (a managed cluster of this hub, with its namespace, and
//! no work of that name unless `--overwrite`) — so a refusal leaves the hub as it was. With
//! `--overwrite` only the workload of an existing work is replaced, as clusteradm does.
//! `get works` is a table with the work's Applied and Available conditions and the status
//! feedback values the agent reported. `delete` deletes, and [`wait_until_deleted`] waits for
//! the agent's finalizer to go; `--force` removes the finalizers instead (as clusteradm's).

use std::time::Duration;

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::condition;
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    CONDITION_APPLIED, CONDITION_AVAILABLE, FieldValue, Manifest, ManifestCondition, ManifestWork,
    ManifestWorkSpec, ManifestsTemplate, ValueType,
};
use ocm_api::work::validation::{self, FieldError, FieldErrorType, Limits};

use crate::clusters::age;
use crate::names::FIELD_MANAGER;
use crate::progress::{Observer, format_elapsed};

/// How long a feedback value may be in the table; longer ones are cut (`-o yaml` has them all).
pub const MAX_TABLE_VALUE: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("pass the clusters with --cluster <name> or --clusters <a,b>")]
    NoClusters,
    #[error("--clusters has an empty name: separate cluster names by single commas")]
    EmptyClusterName,
    #[error(
        "work {name:?} is not valid, so nothing was sent to the hub:\n  {}\nfix the manifests (numbered from 1 in the order -f reads them) and run the command again",
        .problems.join("\n  ")
    )]
    Invalid { name: String, problems: Vec<String> },
    #[error("{}", refused(.problems))]
    Refused { problems: Vec<ClusterProblem> },
    #[error("{0}")]
    Cluster(ClusterProblem),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error(
        "work {name:?} in cluster {cluster:?} changed while ocmctl was updating it: run the command again"
    )]
    Conflict { name: String, cluster: String },
    #[error(
        "work {name:?} is still being deleted after {waited} in {}: the cluster's agent removes its finalizer once it has removed what the work applied — check that the agent runs (`ocmctl get clusters` shows the cluster Available), wait longer (--timeout), or pass --force to stop waiting for the agent and leave what the work applied on the cluster",
        pending_text(.pending)
    )]
    StillDeleting {
        name: String,
        waited: String,
        pending: Vec<Pending>,
    },
}

/// Why one cluster cannot take (or show) a work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterProblem {
    #[error("cluster {0:?} is not a managed cluster of this hub: `ocmctl get clusters` lists them")]
    NotManaged(String),
    #[error(
        "cluster {0:?} has no namespace on the hub yet (the hub makes it when it accepts the cluster): run `ocmctl accept --clusters {0}`"
    )]
    NoNamespace(String),
    #[error(
        "the namespace of cluster {0:?} is being deleted (the cluster is leaving this hub): choose another cluster"
    )]
    NamespaceDeleting(String),
    #[error(
        "work {name:?} already exists in cluster {cluster:?}: pass --overwrite to replace its manifests, or choose another name"
    )]
    Exists { name: String, cluster: String },
    #[error(
        "work {name:?} in cluster {cluster:?} is being deleted: wait for it (`ocmctl delete work {name} --cluster {cluster} --wait`), then create it again"
    )]
    Deleting { name: String, cluster: String },
}

fn refused(problems: &[ClusterProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    match lines.as_slice() {
        [one] => format!("{one} (nothing was changed on the hub)"),
        _ => format!("nothing was changed on the hub:\n  {}", lines.join("\n  ")),
    }
}

fn kube(what: impl Into<String>) -> impl FnOnce(ocm_api::kube::Error) -> WorkError {
    let what = what.into();
    move |source| WorkError::Kube {
        what,
        source: Box::new(source),
    }
}

/// The clusters of `--cluster` and `--clusters` (clusteradm takes both), in order, each once.
pub fn target_clusters(
    cluster: Option<&str>,
    clusters: &[String],
) -> Result<Vec<String>, WorkError> {
    let mut targets: Vec<String> = Vec::new();
    for name in cluster
        .into_iter()
        .chain(clusters.iter().map(String::as_str))
    {
        let name = name.trim();
        if name.is_empty() {
            return Err(WorkError::EmptyClusterName);
        }
        if !targets.iter().any(|t| t == name) {
            targets.push(name.to_owned());
        }
    }
    if targets.is_empty() {
        return Err(WorkError::NoClusters);
    }
    Ok(targets)
}

/// The ManifestWork `name` for `cluster`: the manifests as its workload, nothing else set.
pub fn work(name: &str, cluster: &str, manifests: &[Manifest]) -> ManifestWork {
    let mut work = ManifestWork::new(
        name,
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: manifests.to_vec(),
            },
            ..ManifestWorkSpec::default()
        },
    );
    work.metadata.namespace = Some(cluster.to_owned());
    work
}

/// Every problem of the work `name` with `manifests`, as OCM's webhook would find them (and an
/// invalid object name), each line saying which manifest it is about.
pub fn problems(name: &str, manifests: &[Manifest]) -> Vec<String> {
    let mut errors = Vec::new();
    if !is_dns_subdomain(name) {
        errors.push(FieldError {
            field: "metadata.name".to_owned(),
            kind: FieldErrorType::Invalid,
            detail: format!(
                "{name:?} is not a valid name: use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
            ),
        });
    }
    if let Err(invalid) = validation::validate(&work(name, "", manifests), &Limits::default()) {
        errors.extend(invalid);
    }
    errors
        .iter()
        .map(|error| match manifest_index(&error.field) {
            Some(index) => format!(
                "{error} (manifest {} of {}{})",
                index + 1,
                manifests.len(),
                manifests.get(index).map(describe).unwrap_or_default()
            ),
            None => error.to_string(),
        })
        .collect()
}

/// `i` of a field path `spec.workload.manifests[i]…`.
fn manifest_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("spec.workload.manifests[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// `: ConfigMap "web"`, `: a ConfigMap`, or nothing: how a user finds the manifest in the file.
fn describe(manifest: &Manifest) -> String {
    match (manifest.kind(), manifest.name()) {
        (Some(kind), Some(name)) if !kind.is_empty() && !name.is_empty() => {
            format!(": {kind} {name:?}")
        }
        (Some(kind), _) if !kind.is_empty() => format!(": a {kind}"),
        _ => String::new(),
    }
}

/// A DNS-1123 subdomain, as Kubernetes object names are.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

/// What `create` did in one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// `--overwrite` replaced the manifests of the existing work.
    Updated,
    /// `--overwrite`, but the work already had these manifests.
    Unchanged,
}

impl Created {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

fn works_in(client: &Client, cluster: &str) -> Api<ManifestWork> {
    Api::namespaced(client.clone(), cluster)
}

/// What keeps `cluster` from taking a work: not a managed cluster, or no usable namespace.
async fn cluster_problem(
    client: &Client,
    cluster: &str,
) -> Result<Option<ClusterProblem>, WorkError> {
    let managed = Api::<ManagedCluster>::all(client.clone())
        .get_opt(cluster)
        .await
        .map_err(kube(format!("reading ManagedCluster {cluster}")))?;
    if managed.is_none() {
        return Ok(Some(ClusterProblem::NotManaged(cluster.to_owned())));
    }
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(cluster)
        .await
        .map_err(kube(format!("reading namespace {cluster}")))?;
    Ok(match namespace {
        None => Some(ClusterProblem::NoNamespace(cluster.to_owned())),
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => {
            Some(ClusterProblem::NamespaceDeleting(cluster.to_owned()))
        }
        Some(_) => None,
    })
}

/// Creates the work `name` with `manifests` in each of `clusters` (or, with `overwrite`,
/// replaces the manifests of the one there). Checks the work and every cluster first; any
/// problem refuses the whole command before anything is written.
pub async fn create(
    client: &Client,
    name: &str,
    manifests: &[Manifest],
    clusters: &[String],
    overwrite: bool,
) -> Result<Vec<(String, Created)>, WorkError> {
    let problems = problems(name, manifests);
    if !problems.is_empty() {
        return Err(WorkError::Invalid {
            name: name.to_owned(),
            problems,
        });
    }
    let mut refused = Vec::new();
    let mut current = Vec::new();
    for cluster in clusters {
        if let Some(problem) = cluster_problem(client, cluster).await? {
            refused.push(problem);
            continue;
        }
        let existing = works_in(client, cluster)
            .get_opt(name)
            .await
            .map_err(kube(format!("reading work {name} in cluster {cluster}")))?;
        match &existing {
            Some(work) if work.metadata.deletion_timestamp.is_some() => {
                refused.push(ClusterProblem::Deleting {
                    name: name.to_owned(),
                    cluster: cluster.clone(),
                });
            }
            Some(_) if !overwrite => refused.push(ClusterProblem::Exists {
                name: name.to_owned(),
                cluster: cluster.clone(),
            }),
            _ => {}
        }
        current.push((cluster, existing));
    }
    if !refused.is_empty() {
        return Err(WorkError::Refused { problems: refused });
    }
    let mut done = Vec::new();
    for (cluster, existing) in current {
        let api = works_in(client, cluster);
        let outcome = match existing {
            None => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PostParams::default()
                };
                api.create(&params, &work(name, cluster, manifests))
                    .await
                    .map_err(|e| match e {
                        ocm_api::kube::Error::Api(s) if s.code == 409 => {
                            WorkError::Cluster(ClusterProblem::Exists {
                                name: name.to_owned(),
                                cluster: cluster.clone(),
                            })
                        }
                        e => kube(format!("creating work {name} in cluster {cluster}"))(e),
                    })?;
                Created::Created
            }
            Some(existing) => {
                // Only the workload is replaced, guarded by the resourceVersion read above.
                let patch = serde_json::json!({
                    "metadata": {"resourceVersion": existing.metadata.resource_version},
                    "spec": {"workload": {"manifests": manifests}},
                });
                let params = PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                };
                let updated = api
                    .patch(name, &params, &Patch::Merge(&patch))
                    .await
                    .map_err(|e| match e {
                        ocm_api::kube::Error::Api(s) if s.code == 409 => WorkError::Conflict {
                            name: name.to_owned(),
                            cluster: cluster.clone(),
                        },
                        e => kube(format!("updating work {name} in cluster {cluster}"))(e),
                    })?;
                if updated.metadata.generation == existing.metadata.generation {
                    Created::Unchanged
                } else {
                    Created::Updated
                }
            }
        };
        done.push((cluster.clone(), outcome));
    }
    Ok(done)
}

/// The works named `name` (all when `None`) in `clusters` (every cluster namespace when empty),
/// by cluster and name. A cluster that is not a managed cluster of this hub is an error.
pub async fn list(
    client: &Client,
    name: Option<&str>,
    clusters: &[String],
) -> Result<Vec<ManifestWork>, WorkError> {
    let params = match name {
        Some(name) => ListParams::default().fields(&format!("metadata.name={name}")),
        None => ListParams::default(),
    };
    const HINT: &str = "listing ManifestWorks (is this an ocm-rs hub? run `ocmctl init` on it)";
    let mut works = Vec::new();
    if clusters.is_empty() {
        works = Api::<ManifestWork>::all(client.clone())
            .list(&params)
            .await
            .map_err(kube(HINT))?
            .items;
    }
    for cluster in clusters {
        let managed = Api::<ManagedCluster>::all(client.clone())
            .get_opt(cluster)
            .await
            .map_err(kube(format!("reading ManagedCluster {cluster}")))?;
        if managed.is_none() {
            return Err(WorkError::Cluster(ClusterProblem::NotManaged(
                cluster.clone(),
            )));
        }
        works.extend(
            works_in(client, cluster)
                .list(&params)
                .await
                .map_err(kube(HINT))?
                .items,
        );
    }
    works.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    Ok(works)
}

/// `get works` as a table: NAME, CLUSTER, MANIFESTS (how many; clusteradm's "Number Of
/// Manifests"), APPLIED and AVAILABLE (the work's condition statuses), AGE, and FEEDBACK (the
/// status feedback values, see [`feedback`]).
pub fn table(works: &[ManifestWork], now: jiff::Timestamp) -> String {
    let mut rows = vec![
        [
            "NAME",
            "CLUSTER",
            "MANIFESTS",
            "APPLIED",
            "AVAILABLE",
            "AGE",
            "FEEDBACK",
        ]
        .map(str::to_owned),
    ];
    for work in works {
        let conditions = work
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let status = |type_: &str| {
            condition::find(conditions, type_)
                .map(|c| c.status.as_str().to_owned())
                .unwrap_or_default()
        };
        rows.push([
            work.metadata.name.clone().unwrap_or_default(),
            work.metadata.namespace.clone().unwrap_or_default(),
            work.spec.workload.manifests.len().to_string(),
            status(CONDITION_APPLIED),
            status(CONDITION_AVAILABLE),
            work.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(now.duration_since(t.0)))
                .unwrap_or_default(),
            feedback(work),
        ]);
    }
    crate::table::render(&rows)
}

/// The status feedback values of a work: `AvailableReplicas=2,ReadyReplicas=2` when one
/// resource reports values; `Deployment/web: Replicas=2; Job/init: Succeeded=1` when several
/// do. Strings with spaces or separators are quoted; values longer than [`MAX_TABLE_VALUE`]
/// are cut.
pub fn feedback(work: &ManifestWork) -> String {
    let Some(status) = &work.status else {
        return String::new();
    };
    let mut reporting: Vec<&ManifestCondition> = status
        .resource_status
        .manifests
        .iter()
        .filter(|m| !m.status_feedback.values.is_empty())
        .collect();
    reporting.sort_by_key(|m| m.resource_meta.ordinal);
    let values = |m: &ManifestCondition| {
        m.status_feedback
            .values
            .iter()
            .map(|v| format!("{}={}", v.name, value(&v.field_value)))
            .collect::<Vec<_>>()
            .join(",")
    };
    match reporting.as_slice() {
        [one] => values(one),
        many => many
            .iter()
            .map(|m| {
                let meta = &m.resource_meta;
                let what = match (meta.kind.as_str(), meta.name.as_str()) {
                    ("", _) | (_, "") => format!("manifests[{}]", meta.ordinal),
                    (kind, name) => format!("{kind}/{name}"),
                };
                format!("{what}: {}", values(m))
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// One feedback value as the table shows it.
fn value(value: &FieldValue) -> String {
    let text = match value.r#type {
        ValueType::Integer => value.integer.map(|i| i.to_string()),
        ValueType::Boolean => value.boolean.map(|b| b.to_string()),
        ValueType::JsonRaw => value.json_raw.clone(),
        ValueType::String => value.string.as_ref().map(|s| {
            let plain = !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, ',' | ';' | '=' | '"'));
            if plain { s.clone() } else { format!("{s:?}") }
        }),
    }
    .unwrap_or_default();
    if text.chars().count() > MAX_TABLE_VALUE {
        let cut: String = text.chars().take(MAX_TABLE_VALUE - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// A work that is being deleted and not gone yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub cluster: String,
    /// Which object it was (a work of the same name created meanwhile is another one).
    pub uid: Option<String>,
    /// What holds it (usually the agent's `manifest-work-cleanup`).
    pub finalizers: Vec<String>,
}

fn pending_text(pending: &[Pending]) -> String {
    pending
        .iter()
        .map(|p| match p.finalizers.as_slice() {
            [] => p.cluster.clone(),
            [one] => format!("{} (finalizer {one})", p.cluster),
            many => format!("{} (finalizers {})", p.cluster, many.join(", ")),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `delete` did in one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// There was no such work (already deleted).
    NotFound,
    /// The work is gone.
    Deleted,
    /// Deleting: finalizers hold it until the cluster's agent has removed what it applied.
    Deleting(Pending),
}

/// Deletes the work `name` in each of `clusters`; with `force`, also removes its finalizers
/// (the agent then no longer holds the deletion; what the work applied may stay on the
/// cluster). A missing work is fine, unless its cluster is unknown too (a typo): that refuses
/// the command before anything is deleted.
pub async fn delete(
    client: &Client,
    name: &str,
    clusters: &[String],
    force: bool,
) -> Result<Vec<(String, Deletion)>, WorkError> {
    let mut refused = Vec::new();
    let mut found = Vec::new();
    for cluster in clusters {
        let existing = works_in(client, cluster)
            .get_opt(name)
            .await
            .map_err(kube(format!("reading work {name} in cluster {cluster}")))?;
        if existing.is_none()
            && Api::<ManagedCluster>::all(client.clone())
                .get_opt(cluster)
                .await
                .map_err(kube(format!("reading ManagedCluster {cluster}")))?
                .is_none()
        {
            refused.push(ClusterProblem::NotManaged(cluster.clone()));
        }
        found.push((cluster, existing.is_some()));
    }
    if !refused.is_empty() {
        return Err(WorkError::Refused { problems: refused });
    }
    let mut done = Vec::new();
    for (cluster, exists) in found {
        let outcome = match exists {
            false => Deletion::NotFound,
            true => delete_one(client, name, cluster, force).await?,
        };
        done.push((cluster.clone(), outcome));
    }
    Ok(done)
}

async fn delete_one(
    client: &Client,
    name: &str,
    cluster: &str,
    force: bool,
) -> Result<Deletion, WorkError> {
    let api = works_in(client, cluster);
    let what = || format!("deleting work {name} in cluster {cluster}");
    let remaining = match api.delete(name, &DeleteParams::default()).await {
        Ok(either) => either.left(),
        Err(ocm_api::kube::Error::Api(s)) if s.code == 404 => return Ok(Deletion::NotFound),
        Err(e) => return Err(kube(what())(e)),
    };
    let Some(mut remaining) = remaining else {
        return Ok(Deletion::Deleted);
    };
    if force && remaining.metadata.finalizers.is_some() {
        let patch = serde_json::json!({"metadata": {"finalizers": null}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(patched) => remaining = patched,
            Err(ocm_api::kube::Error::Api(s)) if s.code == 404 => return Ok(Deletion::Deleted),
            Err(e) => {
                return Err(kube(format!(
                    "removing the finalizers of work {name} in cluster {cluster}"
                ))(e));
            }
        }
        if api.get_opt(name).await.map_err(kube(what()))?.is_none() {
            return Ok(Deletion::Deleted);
        }
    }
    Ok(Deletion::Deleting(Pending {
        cluster: cluster.to_owned(),
        uid: remaining.metadata.uid,
        finalizers: remaining.metadata.finalizers.unwrap_or_default(),
    }))
}

/// Waits up to `timeout` until every pending work `name` is gone, telling `observer`.
pub async fn wait_until_deleted(
    client: &Client,
    name: &str,
    pending: &[Pending],
    timeout: Duration,
    observer: &mut dyn Observer,
) -> Result<(), WorkError> {
    let started = tokio::time::Instant::now();
    let all: Vec<&str> = pending.iter().map(|p| p.cluster.as_str()).collect();
    loop {
        let mut still = Vec::new();
        for waiting in pending {
            let current = works_in(client, &waiting.cluster)
                .get_opt(name)
                .await
                .map_err(kube(format!(
                    "reading work {name} in cluster {}",
                    waiting.cluster
                )))?;
            if let Some(work) = current
                && (waiting.uid.is_none() || work.metadata.uid == waiting.uid)
            {
                still.push(Pending {
                    finalizers: work.metadata.finalizers.unwrap_or_default(),
                    ..waiting.clone()
                });
            }
        }
        if still.is_empty() {
            observer.done(
                &format!("work {name} deleted from {}", all.join(", ")),
                started.elapsed(),
            );
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(WorkError::StillDeleting {
                name: name.to_owned(),
                waited: format_elapsed(started.elapsed()),
                pending: still,
            });
        }
        let clusters: Vec<&str> = still.iter().map(|p| p.cluster.as_str()).collect();
        observer.waiting(
            &format!(
                "waiting for work {name} to be deleted from {}",
                clusters.join(", ")
            ),
            started.elapsed(),
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use ocm_api::condition::ConditionStatus;
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use ocm_api::work::v1::{
        FeedbackValue, ManifestResourceMeta, ManifestResourceStatus, ManifestWorkStatus,
        StatusFeedbackResult,
    };
    use serde_json::json;

    use super::*;

    fn at(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).unwrap_or_default()
    }

    fn manifest(kind: &str, name: &str) -> Manifest {
        Manifest::new(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}))
    }

    fn reporting(
        ordinal: i32,
        kind: &str,
        name: &str,
        values: Vec<FeedbackValue>,
    ) -> ManifestCondition {
        ManifestCondition {
            resource_meta: ManifestResourceMeta {
                ordinal,
                kind: kind.to_owned(),
                name: name.to_owned(),
                ..ManifestResourceMeta::default()
            },
            status_feedback: StatusFeedbackResult { values },
            conditions: Vec::new(),
        }
    }

    fn fed(name: &str, field_value: FieldValue) -> FeedbackValue {
        FeedbackValue {
            name: name.to_owned(),
            field_value,
        }
    }

    fn with_status(
        mut work: ManifestWork,
        applied: Option<ConditionStatus>,
        available: Option<ConditionStatus>,
        manifests: Vec<ManifestCondition>,
    ) -> ManifestWork {
        let mut conditions = Vec::new();
        for (type_, status) in [
            (CONDITION_APPLIED, applied),
            (CONDITION_AVAILABLE, available),
        ] {
            if let Some(status) = status {
                condition::set(&mut conditions, type_, status, "Reason", "m", at(0));
            }
        }
        work.status = Some(ManifestWorkStatus {
            conditions,
            resource_status: ManifestResourceStatus { manifests },
        });
        work
    }

    #[test]
    fn the_table_shows_conditions_feedback_and_ages() {
        let deploy = Manifest::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"}}));
        let mut web = work(
            "web",
            "cluster1",
            &[deploy.clone(), manifest("ConfigMap", "c")],
        );
        web.metadata.creation_timestamp = Some(Time(at(0)));
        let web = with_status(
            web,
            Some(ConditionStatus::True),
            Some(ConditionStatus::True),
            vec![
                reporting(1, "ConfigMap", "c", Vec::new()),
                reporting(
                    0,
                    "Deployment",
                    "web",
                    vec![
                        fed("ReadyReplicas", FieldValue::integer(2)),
                        fed("Replicas", FieldValue::integer(2)),
                        fed("AvailableReplicas", FieldValue::integer(2)),
                    ],
                ),
            ],
        );
        let mut failing = work("web", "cluster-two", &[deploy]);
        failing.metadata.creation_timestamp = Some(Time(at(3000)));
        let failing = with_status(failing, Some(ConditionStatus::False), None, Vec::new());
        let mut fresh = work("zz", "cluster1", &[manifest("ConfigMap", "z")]);
        fresh.metadata.creation_timestamp = Some(Time(at(3595)));
        assert_eq!(
            table(&[web, failing, fresh], at(3600)),
            "NAME   CLUSTER       MANIFESTS   APPLIED   AVAILABLE   AGE   FEEDBACK\n\
             web    cluster1      2           True      True        60m   ReadyReplicas=2,Replicas=2,AvailableReplicas=2\n\
             web    cluster-two   1           False                 10m\n\
             zz     cluster1      1                                 5s\n"
        );
    }

    #[test]
    fn feedback_names_the_resource_when_several_report() {
        let work = with_status(
            work("w", "c", &[manifest("ConfigMap", "a")]),
            None,
            None,
            vec![
                reporting(
                    1,
                    "Job",
                    "init",
                    vec![
                        fed("Succeeded", FieldValue::integer(1)),
                        fed("Done", FieldValue::boolean(true)),
                    ],
                ),
                reporting(
                    0,
                    "Deployment",
                    "web",
                    vec![
                        fed("Phase", FieldValue::string("Running")),
                        fed("Message", FieldValue::string("all good, mostly")),
                        fed("Empty", FieldValue::string("")),
                    ],
                ),
                reporting(
                    2,
                    "",
                    "",
                    vec![fed(
                        "Raw",
                        FieldValue::json_raw(format!("[{}]", "1,".repeat(40))),
                    )],
                ),
            ],
        );
        assert_eq!(
            feedback(&work),
            "Deployment/web: Phase=Running,Message=\"all good, mostly\",Empty=\"\"; \
             Job/init: Succeeded=1,Done=true; \
             manifests[2]: Raw=[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,…"
        );
        assert_eq!(feedback(&self::work("w", "c", &[])), "");
    }

    #[test]
    fn every_problem_is_reported_with_the_manifest_it_is_about() {
        let manifests = [
            manifest("ConfigMap", "ok"),
            Manifest::new(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})),
            Manifest::new(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "generateName": "s-"}})),
            manifest("ConfigMap", "ok"),
            Manifest::new(json!("just a string")),
        ];
        let found = problems("Bad_Name", &manifests);
        assert_eq!(
            found,
            [
                "metadata.name: Invalid value: \"Bad_Name\" is not a valid name: use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
                "spec.workload.manifests[1].metadata.name: Required value: name must be set in manifest (manifest 2 of 5: a ConfigMap)",
                "spec.workload.manifests[2].metadata.generateName: Forbidden: generateName must not be set in manifest (manifest 3 of 5: Secret \"s\")",
                "spec.workload.manifests[3]: Duplicate value: ConfigMap ok is already spec.workload.manifests[0] (manifest 4 of 5: ConfigMap \"ok\")",
                "spec.workload.manifests[4]: Invalid value: a manifest must be a Kubernetes object (a JSON object) (manifest 5 of 5)",
            ]
        );
        assert!(problems_ok("web.v2", &manifests[..1]));
        let none = problems("web", &[]);
        assert_eq!(none.len(), 1);
        assert!(none[0].starts_with("spec.workload.manifests: Required value"));
    }

    fn problems_ok(name: &str, manifests: &[Manifest]) -> bool {
        problems(name, manifests).is_empty()
    }

    #[test]
    fn clusters_come_from_both_flags_once_each() {
        let list = ["b".to_owned(), " a".to_owned(), "b".to_owned()];
        assert_eq!(target_clusters(Some("a"), &list).unwrap(), ["a", "b"]);
        assert!(matches!(
            target_clusters(None, &["a".to_owned(), String::new()]),
            Err(WorkError::EmptyClusterName)
        ));
        assert!(matches!(
            target_clusters(None, &[]),
            Err(WorkError::NoClusters)
        ));
    }

    #[test]
    fn refusals_and_waits_say_what_to_do() {
        let one = WorkError::Refused {
            problems: vec![ClusterProblem::NotManaged("nope".into())],
        }
        .to_string();
        assert_eq!(
            one,
            "cluster \"nope\" is not a managed cluster of this hub: `ocmctl get clusters` lists them (nothing was changed on the hub)"
        );
        let two = WorkError::Refused {
            problems: vec![
                ClusterProblem::NoNamespace("c3".into()),
                ClusterProblem::Exists {
                    name: "web".into(),
                    cluster: "c1".into(),
                },
            ],
        }
        .to_string();
        assert!(
            two.starts_with("nothing was changed on the hub:\n  cluster \"c3\" has no namespace"),
            "{two}"
        );
        assert!(two.contains("`ocmctl accept --clusters c3`"), "{two}");
        assert!(
            two.ends_with("pass --overwrite to replace its manifests, or choose another name"),
            "{two}"
        );
        let stuck = WorkError::StillDeleting {
            name: "web".into(),
            waited: "1.0s".into(),
            pending: vec![Pending {
                cluster: "c1".into(),
                uid: None,
                finalizers: vec!["cluster.open-cluster-management.io/manifest-work-cleanup".into()],
            }],
        }
        .to_string();
        assert!(
            stuck.starts_with("work \"web\" is still being deleted after 1.0s in c1 (finalizer cluster.open-cluster-management.io/manifest-work-cleanup): "),
            "{stuck}"
        );
        assert!(stuck.contains("--force"), "{stuck}");
    }
}
