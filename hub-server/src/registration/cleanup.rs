//! What a deleted ManagedCluster leaves in its namespace, removed in OCM's order
//! (OCM's registration GC controller, feature gate ResourceCleanup): every
//! live cluster holds the `resource-cleanup` finalizer; once it is deleted, its
//! ManagedClusterAddOns go first, then its ManifestWorks, each kind in buckets of
//! `open-cluster-management.io/cleanup-priority` (0–100, smaller first; missing or invalid = 0),
//! moving on only when the bucket is gone. Objects the agent still holds with a finalizer stay
//! until it lets go. The `Deleting` condition says what remains; when nothing does, the
//! finalizer goes.
//!
//! Kinds whose CRD is not installed count as empty, so the hub works before add-ons or work
//! delivery are served.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, Patch, PatchParams,
};
use ocm_api::kube::runtime::controller::{Action, Controller};
use ocm_api::kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::clusters::ClusterFeed;
use super::finalizer;

/// Held on every live ManagedCluster until its namespace's API objects are gone.
/// The field manager owning the cleanup finalizer entry (see [`finalizer`]).
const FINALIZER_MANAGER: &str = "ocm-hub-cleanup";
pub const RESOURCE_CLEANUP_FINALIZER: &str = "cluster.open-cluster-management.io/resource-cleanup";
/// Orders deletion within a kind: smaller first.
pub const CLEANUP_PRIORITY_ANNOTATION: &str = "open-cluster-management.io/cleanup-priority";
/// The condition reporting cleanup progress.
pub const CONDITION_DELETING: &str = "Deleting";
/// How often a deleting cluster is looked at again while objects remain (OCM: 5 s).
const RECHECK: Duration = Duration::from_secs(5);

/// A kind of object kept in cluster namespaces, in the order OCM removes them.
#[derive(Debug, Clone, Copy)]
pub struct CleanedKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

/// OCM's default `--gc-resource-list`.
pub const CLEANED_KINDS: [CleanedKind; 2] = [
    CleanedKind {
        group: "addon.open-cluster-management.io",
        version: "v1alpha1",
        kind: "ManagedClusterAddOn",
        plural: "managedclusteraddons",
    },
    MANIFEST_WORKS,
];

/// ManifestWorks, which the acceptance controller also waits for.
pub const MANIFEST_WORKS: CleanedKind = CleanedKind {
    group: "work.open-cluster-management.io",
    version: "v1",
    kind: "ManifestWork",
    plural: "manifestworks",
};

impl CleanedKind {
    fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.to_owned(),
            version: self.version.to_owned(),
            api_version: format!("{}/{}", self.group, self.version),
            kind: self.kind.to_owned(),
            plural: self.plural.to_owned(),
        }
    }

    /// The objects of this kind in `namespace` (none if the kind is not served).
    pub async fn list(
        &self,
        client: &Client,
        namespace: &str,
    ) -> Result<Vec<PartialObjectMeta<DynamicObject>>, ocm_api::kube::Error> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &self.api_resource());
        match api.list_metadata(&ListParams::default()).await {
            Ok(list) => Ok(list.items),
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }
}

/// One object as cleanup sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    pub name: String,
    pub priority: u8,
    pub deleting: bool,
    pub finalizers: bool,
}

impl Remaining {
    fn of(object: &PartialObjectMeta<DynamicObject>) -> Self {
        let meta = &object.metadata;
        Self {
            name: meta.name.clone().unwrap_or_default(),
            priority: priority(
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(CLEANUP_PRIORITY_ANNOTATION))
                    .map(String::as_str),
            ),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.as_ref().is_some_and(|f| !f.is_empty()),
        }
    }
}

/// The cleanup priority an annotation value gives: 0–100; missing or invalid is 0.
pub fn priority(annotation: Option<&str>) -> u8 {
    annotation
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|p| *p <= 100)
        .unwrap_or(0)
}

/// What to delete now: the not-yet-deleting objects of the lowest priority bucket.
pub fn to_delete(remaining: &[Remaining]) -> Vec<&str> {
    let Some(lowest) = remaining.iter().map(|r| r.priority).min() else {
        return Vec::new();
    };
    remaining
        .iter()
        .filter(|r| r.priority == lowest && !r.deleting)
        .map(|r| r.name.as_str())
        .collect()
}

/// The `Deleting` condition's reason and message for what remains of `kind`.
pub fn progress(kind: &str, remaining: &[Remaining]) -> (&'static str, String) {
    let held = remaining.iter().filter(|r| r.finalizers).count();
    (
        "ResourceRemaining",
        format!(
            "The resource {kind} is remaining, the remaining resources are {}, the remaining resources with finalizers are {held}",
            remaining.len()
        ),
    )
}

#[derive(Debug, thiserror::Error)]
#[error("ManagedCluster {cluster}: {what}: {source}")]
pub struct CleanupError {
    cluster: String,
    what: String,
    #[source]
    source: Box<ocm_api::kube::Error>,
}

struct Context {
    client: Client,
}

/// Runs the controller until `cancel`.
pub async fn run(client: Client, clusters: ClusterFeed, cancel: CancellationToken) {
    Controller::for_shared_stream(clusters.trigger, clusters.store)
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "ManagedCluster cleanup reconcile");
            }
        })
        .await;
}

fn error_policy(cluster: Arc<ManagedCluster>, err: &CleanupError, _: Arc<Context>) -> Action {
    tracing::warn!(cluster = ?cluster.metadata.name, %err, "cleanup reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(
    cluster: Arc<ManagedCluster>,
    ctx: Arc<Context>,
) -> Result<Action, CleanupError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let err = |what: String| {
        let cluster = name.clone();
        move |source| CleanupError {
            cluster,
            what,
            source: Box::new(source),
        }
    };
    let client = &ctx.client;
    if cluster.metadata.deletion_timestamp.is_none() {
        finalizer::add(
            client,
            &cluster,
            RESOURCE_CLEANUP_FINALIZER,
            FINALIZER_MANAGER,
        )
        .await
        .map_err(err("adding the cleanup finalizer".to_owned()))?;
        return Ok(Action::await_change());
    }
    if !finalizer::holds(&cluster, RESOURCE_CLEANUP_FINALIZER) {
        return Ok(Action::await_change());
    }
    for kind in CLEANED_KINDS {
        let objects = kind
            .list(client, &name)
            .await
            .map_err(err(format!("listing its {}", kind.plural)))?;
        if objects.is_empty() {
            continue;
        }
        let remaining: Vec<Remaining> = objects.iter().map(Remaining::of).collect();
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &name, &kind.api_resource());
        for object in to_delete(&remaining) {
            match api.delete(object, &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(cluster = %name, kind = kind.kind, object, "deleted with its cluster")
                }
                Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(err(format!("deleting {} {object}", kind.kind))(source));
                }
            }
        }
        let (reason, message) = progress(kind.plural, &remaining);
        set_deleting(client, &cluster, ConditionStatus::False, reason, &message)
            .await
            .map_err(err("recording cleanup progress".to_owned()))?;
        return Ok(Action::requeue(RECHECK));
    }
    set_deleting(
        client,
        &cluster,
        ConditionStatus::True,
        "NoResource",
        "All resources are removed",
    )
    .await
    .map_err(err("recording cleanup done".to_owned()))?;
    finalizer::remove(client, &cluster, RESOURCE_CLEANUP_FINALIZER)
        .await
        .map_err(err("removing the cleanup finalizer".to_owned()))?;
    tracing::info!(cluster = %name, "cluster namespace cleaned up");
    Ok(Action::await_change())
}

/// Records the `Deleting` condition when it changes.
async fn set_deleting(
    client: &Client,
    cluster: &ManagedCluster,
    status: ConditionStatus,
    reason: &str,
    message: &str,
) -> Result<(), ocm_api::kube::Error> {
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = ocm_api::k8s_openapi::jiff::Timestamp::now();
    if !condition::set(
        &mut conditions,
        CONDITION_DELETING,
        status,
        reason,
        message,
        now,
    ) {
        return Ok(());
    }
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": cluster.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    match Api::<ManagedCluster>::all(client.clone())
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        // A newer object is on its way, and with it another reconcile.
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, priority: u8, deleting: bool) -> Remaining {
        Remaining {
            name: name.to_owned(),
            priority,
            deleting,
            finalizers: deleting,
        }
    }

    #[test]
    fn priorities_are_zero_to_a_hundred_and_anything_else_is_zero() {
        assert_eq!(priority(None), 0);
        assert_eq!(priority(Some("40")), 40);
        assert_eq!(priority(Some(" 100 ")), 100);
        assert_eq!(priority(Some("101")), 0);
        assert_eq!(priority(Some("-1")), 0);
        assert_eq!(priority(Some("high")), 0);
    }

    #[test]
    fn the_lowest_bucket_goes_first_and_deleting_objects_are_not_deleted_again() {
        let remaining = [
            object("late", 50, false),
            object("first", 0, false),
            object("held", 0, true),
            object("later", 100, false),
        ];
        assert_eq!(to_delete(&remaining), ["first"]);
        let waiting = [object("held", 0, true), object("late", 50, false)];
        assert!(
            to_delete(&waiting).is_empty(),
            "the next bucket waits for the held one"
        );
        assert_eq!(to_delete(&[object("late", 50, false)]), ["late"]);
        assert!(to_delete(&[]).is_empty());
    }

    #[test]
    fn progress_counts_what_remains_and_what_is_held() {
        let (reason, message) = progress(
            "manifestworks",
            &[object("a", 0, true), object("b", 0, false)],
        );
        assert_eq!(reason, "ResourceRemaining");
        assert_eq!(
            message,
            "The resource manifestworks is remaining, the remaining resources are 2, the remaining resources with finalizers are 1"
        );
    }
}
