//! The hub's half of the double opt-in (as OCM's hub registration does): for every ManagedCluster,
//! grant its agents what [`super::rbac`] says for its acceptance state, record
//! `HubAcceptedManagedCluster`, and on denial or deletion remove what was granted, in OCM's
//! order: the work RoleBinding keeps its finalizer — and the work agent its access — until no
//! ManifestWork is left in the namespace. With auto-acceptance (OCM's ManagedClusterAutoApproval)
//! every cluster is accepted once, on first sight; an administrator can deny it afterwards.
//! Everything is applied with server-side apply, so reconciling twice changes nothing; a
//! restarted hub applies nothing for the clusters whose grants still stand ([`standing`]).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use ocm_api::cluster::v1::{CONDITION_HUB_ACCEPTED, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::core::ClusterResourceScope;
use ocm_api::kube::runtime::controller::{Action, Controller};
use ocm_api::kube::runtime::reflector::ObjectRef;
use ocm_api::kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::clusters::ClusterFeed;
use super::finalizer::{self, ignore_missing};
use super::ownership::{self, ClaimError};
use super::{cleanup, rbac, standing};
use crate::csr::CLUSTER_NAME_LABEL;
use crate::services::leases::CLUSTER_LEASE;

/// The field manager the hub applies its registration objects as.
pub const FIELD_MANAGER: &str = "ocm-hub";
/// The field manager owning the acceptance finalizer entry (see [`finalizer`]).
const FINALIZER_MANAGER: &str = "ocm-hub-acceptance";
/// Held on a ManagedCluster until what was granted for it is removed.
pub const CLEANUP_FINALIZER: &str = "cluster.open-cluster-management.io/api-resource-cleanup";
/// Set, with the time, on a cluster the hub accepted by itself.
pub const AUTO_ACCEPTED_ANNOTATION: &str = "open-cluster-management.io/automatically-accepted-on";
/// Every cluster's grants are applied again at least this often. Drift someone else makes is
/// corrected at once ([`super::drift`]); this only backs up a change a watch missed.
const RESYNC: Duration = Duration::from_secs(3600);
/// How soon acceptance is recorded again after the cluster changed under it.
const CONFLICT_RETRY: Duration = Duration::from_millis(500);
/// How long reading the grants standing at start may take before every cluster's grants are
/// applied instead. The reading is a few paged listings: about 30 s for a restarted hub of
/// 10,000 clusters on 2 cores, whose apiserver is busy with every agent reconnecting.
const STANDING_READ_LIMIT: Duration = Duration::from_secs(60);
/// How often a denied or deleted cluster is looked at while ManifestWorks remain (OCM: 5 s).
const WORKS_RECHECK: Duration = Duration::from_secs(5);
/// How often a refused cluster (a reserved name, a name taken by someone else's objects) is
/// looked at again, in case what was in its way is gone.
const REFUSED_RECHECK: Duration = Duration::from_secs(300);
/// The reason recorded on a cluster whose grants the hub refuses to write.
pub const REASON_REFUSED: &str = "HubRefusedClusterName";

/// How a cluster's grants changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantChange {
    /// Accepted: more is allowed than before.
    Granted,
    /// Denied or deleted: what was allowed is not any more, so open streams must end.
    Revoked,
}

/// Called with a cluster's name after its grants changed.
pub type GrantsChanged = Arc<dyn Fn(&str, GrantChange) + Send + Sync>;

/// How clusters are accepted.
#[derive(Clone, Default)]
pub struct AcceptanceConfig {
    /// Accept every cluster once, on first sight (OCM's ManagedClusterAutoApproval; the hub turns
    /// it on with auto-approved users, whose CSR approval is then the only gate).
    pub auto_accept: bool,
    /// Told when a cluster's grants changed, e.g. so cached access decisions are dropped.
    pub grants_changed: Option<GrantsChanged>,
}

impl std::fmt::Debug for AcceptanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptanceConfig")
            .field("auto_accept", &self.auto_accept)
            .field("grants_changed", &self.grants_changed.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("ManagedCluster {cluster}: {what}: {source}")]
pub struct AcceptanceError {
    cluster: String,
    what: &'static str,
    #[source]
    source: Box<ocm_api::kube::Error>,
}

struct Context {
    client: Client,
    config: AcceptanceConfig,
    /// The shared ClusterRoles are the same for every cluster: applied once, not per reconcile.
    shared_roles_applied: std::sync::atomic::AtomicBool,
    /// What each cluster's grants were last applied for, and when: a reconcile caused only by
    /// a status change (availability, a status report) applies nothing again. At 10,000
    /// clusters those would otherwise be hundreds of writes a second. Drift forgets a cluster's
    /// entry, so its next reconcile applies.
    ledger: std::sync::Mutex<Ledger>,
    /// True once the grants standing at start are in the ledger (or could not be read):
    /// reconciles wait for it, so a restarted hub does not re-apply what stands.
    started: tokio::sync::watch::Receiver<bool>,
}

#[derive(Debug, Default)]
struct Ledger {
    granted: std::collections::HashMap<String, Granted>,
    /// While the grants standing at start are being read: the clusters that drifted meanwhile,
    /// whose grants are applied whatever the reading found.
    drifted_while_reading: Option<std::collections::HashSet<String>>,
}

/// The state of one cluster's grants as last applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Granted {
    /// The ManagedCluster they were applied for; `None` for grants found standing at start,
    /// which are the same for any cluster of the name.
    uid: Option<String>,
    accepted: bool,
    at: std::time::Instant,
}

impl Context {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `cluster`'s grants were applied for this acceptance state within the resync
    /// period (so drift is still corrected every [`RESYNC`]).
    fn granted_recently(&self, cluster: &ManagedCluster) -> bool {
        self.ledger()
            .granted
            .get(cluster.metadata.name.as_deref().unwrap_or_default())
            .is_some_and(|g| {
                g.uid
                    .as_deref()
                    .is_none_or(|uid| Some(uid) == cluster.metadata.uid.as_deref())
                    && g.accepted == cluster.spec.hub_accepts_client
                    && g.at.elapsed() < RESYNC - Duration::from_secs(30)
            })
    }

    fn record_granted(&self, cluster: &ManagedCluster) {
        self.ledger().granted.insert(
            cluster.metadata.name.clone().unwrap_or_default(),
            Granted {
                uid: cluster.metadata.uid.clone(),
                accepted: cluster.spec.hub_accepts_client,
                at: std::time::Instant::now(),
            },
        );
    }

    fn forget_granted(&self, cluster: &str) {
        let mut ledger = self.ledger();
        ledger.granted.remove(cluster);
        if let Some(drifted) = &mut ledger.drifted_while_reading {
            drifted.insert(cluster.to_owned());
        }
    }

    /// Records what was found standing at start (nothing if it could not be read), except for
    /// the clusters that drifted since the reading began.
    fn record_standing(&self, standing: Option<standing::Standing>) {
        let mut ledger = self.ledger();
        let drifted = ledger.drifted_while_reading.take().unwrap_or_default();
        let Some(standing) = standing else {
            return;
        };
        let at = std::time::Instant::now();
        for cluster in standing.accepted_clusters {
            if !drifted.contains(&cluster) {
                ledger.granted.entry(cluster).or_insert(Granted {
                    uid: None,
                    accepted: true,
                    at,
                });
            }
        }
        if standing.shared_roles {
            self.shared_roles_applied
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Reads the grants standing at start into the ledger, then lets reconciles go on.
async fn read_standing(ctx: Arc<Context>, started: tokio::sync::watch::Sender<bool>) {
    let standing = match tokio::time::timeout(
        STANDING_READ_LIMIT,
        standing::read(&ctx.client, FIELD_MANAGER),
    )
    .await
    {
        Ok(Ok(standing)) => {
            tracing::info!(
                clusters = standing.accepted_clusters.len(),
                shared_roles = standing.shared_roles,
                "grants standing at start: not applied again"
            );
            Some(standing)
        }
        Ok(Err(err)) => {
            tracing::warn!(%err, "cannot read the grants standing at start; applying every cluster's");
            None
        }
        Err(_) => {
            tracing::warn!(
                limit = ?STANDING_READ_LIMIT,
                "reading the grants standing at start took too long; applying every cluster's"
            );
            None
        }
    };
    ctx.record_standing(standing);
    started.send_replace(true);
}

/// Runs the controller until `cancel`.
pub async fn run(
    client: Client,
    clusters: ClusterFeed,
    config: AcceptanceConfig,
    cancel: CancellationToken,
) {
    let (started_tx, started) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        shared_roles_applied: std::sync::atomic::AtomicBool::new(false),
        ledger: std::sync::Mutex::new(Ledger {
            granted: std::collections::HashMap::new(),
            drifted_while_reading: Some(std::collections::HashSet::new()),
        }),
        started,
    });
    let drifted = {
        let ctx = Arc::clone(&ctx);
        super::drift::clusters(&client, FIELD_MANAGER).map(move |cluster| {
            ctx.forget_granted(&cluster);
            ObjectRef::<ManagedCluster>::new(&cluster)
        })
    };
    let reading = {
        let ctx = Arc::clone(&ctx);
        let cancel = cancel.clone();
        async move {
            tokio::select! {
                () = read_standing(ctx, started_tx) => {}
                () = cancel.cancelled() => {}
            }
        }
    };
    let controller = Controller::for_shared_stream(clusters.trigger, clusters.store)
        .reconcile_on(drifted)
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "ManagedCluster reconcile");
            }
        });
    tokio::join!(reading, controller);
}

fn error_policy(cluster: Arc<ManagedCluster>, err: &AcceptanceError, _: Arc<Context>) -> Action {
    tracing::warn!(cluster = ?cluster.metadata.name, %err, "acceptance reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(
    cluster: Arc<ManagedCluster>,
    ctx: Arc<Context>,
) -> Result<Action, AcceptanceError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let err = |what: &'static str| {
        let cluster = name.clone();
        move |source| AcceptanceError {
            cluster,
            what,
            source: Box::new(source),
        }
    };
    // Ends with the reading, or with its cancellation (the sender dropped).
    let _ = ctx.started.clone().wait_for(|started| *started).await;
    let client = &ctx.client;
    if cluster.metadata.deletion_timestamp.is_some() {
        if !remove_grants(client, &name, true)
            .await
            .map_err(err("cleaning up"))?
        {
            return Ok(Action::requeue(WORKS_RECHECK));
        }
        finalizer::remove(client, &cluster, CLEANUP_FINALIZER)
            .await
            .map_err(err("removing the finalizer"))?;
        ctx.forget_granted(&name);
        if let Some(grants_changed) = &ctx.config.grants_changed {
            grants_changed(&name, GrantChange::Revoked);
        }
        tracing::info!(cluster = %name, "ManagedCluster cleaned up");
        return Ok(Action::await_change());
    }
    if let Err(refusal) = ocm_api::registration::validate_cluster_name(&name) {
        return refuse(client, &cluster, &refusal.to_string()).await;
    }
    let accepted = cluster.spec.hub_accepts_client;
    let claim = async |accepted: bool| match claim_names(client, &name, accepted).await {
        Ok(()) => Ok(None),
        Err(ClaimError::Foreign(foreign)) => refuse(client, &cluster, &foreign.to_string())
            .await
            .map(Some),
        Err(ClaimError::Kube(source)) => Err(AcceptanceError {
            cluster: name.clone(),
            what: "reading what its grants would replace",
            source: Box::new(source),
        }),
    };
    if ctx.config.auto_accept && !auto_accepted_before(&cluster) {
        if let Some(refused) = claim(true).await? {
            return Ok(refused);
        }
        auto_accept(client, &cluster)
            .await
            .map_err(err("accepting it automatically"))?;
        tracing::info!(cluster = %name, "cluster accepted automatically");
        // The patch brings the cluster back here, accepted.
        return Ok(Action::await_change());
    }
    let recorded_accepted = cluster
        .status
        .as_ref()
        .and_then(|s| condition::find(&s.conditions, CONDITION_HUB_ACCEPTED))
        .is_some_and(|c| c.status == ConditionStatus::True);
    if recorded_accepted == accepted
        && (!accepted || finalizer::holds(&cluster, CLEANUP_FINALIZER))
        && ctx.granted_recently(&cluster)
    {
        // Woken by a change of status or labels: the grants stand as applied.
        return Ok(Action::requeue(RESYNC));
    }
    if let Some(refused) = claim(accepted).await? {
        return Ok(refused);
    }
    apply(client, &rbac::cluster_role(&name, accepted))
        .await
        .map_err(err("applying its ClusterRole"))?;
    apply(client, &rbac::cluster_role_binding(&name))
        .await
        .map_err(err("applying its ClusterRoleBinding"))?;
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let was_accepted = condition::find(&conditions, CONDITION_HUB_ACCEPTED)
        .is_some_and(|c| c.status == ConditionStatus::True);
    let now = ocm_api::k8s_openapi::jiff::Timestamp::now();
    let mut requeue = RESYNC;
    let changed = if accepted {
        finalizer::add(client, &cluster, CLEANUP_FINALIZER, FINALIZER_MANAGER)
            .await
            .map_err(err("adding the finalizer"))?;
        apply(client, &rbac::cluster_namespace(&name))
            .await
            .map_err(err("applying its namespace"))?;
        if !ctx
            .shared_roles_applied
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            apply(client, &rbac::shared_registration_role())
                .await
                .map_err(err("applying the shared registration role"))?;
            apply(client, &rbac::shared_work_role())
                .await
                .map_err(err("applying the shared work role"))?;
            ctx.shared_roles_applied
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        apply_binding(client, &rbac::registration_role_binding(&name))
            .await
            .map_err(err("applying its registration RoleBinding"))?;
        apply_binding(client, &rbac::work_role_binding(&name))
            .await
            .map_err(err("applying its work RoleBinding"))?;
        create_lease(client, &cluster)
            .await
            .map_err(err("creating its lease"))?;
        condition::set(
            &mut conditions,
            CONDITION_HUB_ACCEPTED,
            ConditionStatus::True,
            "HubClusterAdminAccepted",
            "Accepted by hub cluster admin",
            now,
        )
    } else if was_accepted || revoking_work_access(client, &name).await {
        let released = remove_grants(client, &name, false)
            .await
            .map_err(err("revoking its namespace access"))?;
        if !released {
            requeue = WORKS_RECHECK;
        }
        condition::set(
            &mut conditions,
            CONDITION_HUB_ACCEPTED,
            ConditionStatus::False,
            "HubClusterAdminDenied",
            "Denied by hub cluster admin",
            now,
        )
    } else {
        false
    };
    if changed {
        // Before the condition is recorded (which agents act on): decisions cached from before
        // the grants changed must not outlive them.
        if let Some(grants_changed) = &ctx.config.grants_changed {
            let change = if accepted {
                GrantChange::Granted
            } else {
                GrantChange::Revoked
            };
            grants_changed(&name, change);
        }
        if !write_conditions(client, &cluster, &conditions)
            .await
            .map_err(err("recording acceptance"))?
        {
            tracing::debug!(cluster = %name, "acceptance not recorded: the cluster changed meanwhile");
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
        tracing::info!(cluster = %name, accepted, "acceptance recorded");
    }
    if requeue == RESYNC {
        ctx.record_granted(&cluster);
    }
    Ok(Action::requeue(requeue))
}

/// Checks that every object the cluster's grants would write is free or already the cluster's
/// ([`ownership`]): its ClusterRole and ClusterRoleBinding, and once accepted its namespace and
/// the RoleBindings there.
async fn claim_names(client: &Client, cluster: &str, accepted: bool) -> Result<(), ClaimError> {
    let role = rbac::cluster_role_name(cluster);
    ownership::claim(&Api::<ClusterRole>::all(client.clone()), &role, cluster).await?;
    ownership::claim(
        &Api::<ClusterRoleBinding>::all(client.clone()),
        &role,
        cluster,
    )
    .await?;
    if accepted {
        ownership::claim(&Api::<Namespace>::all(client.clone()), cluster, cluster).await?;
        let bindings = Api::<RoleBinding>::namespaced(client.clone(), cluster);
        for name in [
            rbac::registration_role_binding_name(cluster),
            rbac::work_role_binding_name(cluster),
        ] {
            ownership::claim(&bindings, &name, cluster).await?;
        }
    }
    Ok(())
}

/// Grants nothing to a cluster whose name the hub refuses, and says why on the cluster
/// (`HubAcceptedManagedCluster` False), once.
async fn refuse(
    client: &Client,
    cluster: &ManagedCluster,
    why: &str,
) -> Result<Action, AcceptanceError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let mut conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let message = format!("the hub grants this cluster nothing: {why}");
    let changed = condition::set(
        &mut conditions,
        CONDITION_HUB_ACCEPTED,
        ConditionStatus::False,
        REASON_REFUSED,
        &message,
        ocm_api::k8s_openapi::jiff::Timestamp::now(),
    );
    if changed {
        tracing::warn!(cluster = %ocm_api::registration::truncated(&name, 63), %why, "refused to grant a cluster anything");
        let written = write_conditions(client, cluster, &conditions)
            .await
            .map_err(|source| AcceptanceError {
                cluster: name.clone(),
                what: "recording the refusal",
                source: Box::new(source),
            })?;
        if !written {
            return Ok(Action::requeue(CONFLICT_RETRY));
        }
    }
    Ok(Action::requeue(REFUSED_RECHECK))
}

/// Writes `conditions` as `cluster`'s, guarded by the resourceVersion they were read at: the
/// list is written whole, and an agent's report (Available) written meanwhile must not be lost.
/// False on a conflict, which means a newer object, and with it another reconcile, is on its
/// way.
async fn write_conditions(
    client: &Client,
    cluster: &ManagedCluster,
    conditions: &[ocm_api::condition::Condition],
) -> Result<bool, ocm_api::kube::Error> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": cluster.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    match Api::<ManagedCluster>::all(client.clone())
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

fn auto_accepted_before(cluster: &ManagedCluster) -> bool {
    cluster
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(AUTO_ACCEPTED_ANNOTATION))
}

/// Accepts `cluster` and records when. Unguarded: the agent writes status all the while it
/// waits, so a resourceVersion-guarded patch mostly conflicts; the annotation makes it once only,
/// and a denial set later stands.
async fn auto_accept(
    client: &Client,
    cluster: &ManagedCluster,
) -> Result<(), ocm_api::kube::Error> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({
        "metadata": {
            "annotations": {AUTO_ACCEPTED_ANNOTATION: ocm_api::k8s_openapi::jiff::Timestamp::now().to_string()},
        },
        "spec": {"hubAcceptsClient": true},
    });
    ignore_missing(
        Api::<ManagedCluster>::all(client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ()),
    )
}

/// A denied cluster whose work RoleBinding is still held for its remaining ManifestWorks.
async fn revoking_work_access(client: &Client, cluster: &str) -> bool {
    Api::<RoleBinding>::namespaced(client.clone(), cluster)
        .get_opt(&rbac::work_role_binding_name(cluster))
        .await
        .ok()
        .flatten()
        .is_some_and(|b| b.metadata.deletion_timestamp.is_some())
}

/// Server-side apply of a cluster-scoped object.
async fn apply<K>(client: &Client, object: &K) -> Result<(), ocm_api::kube::Error>
where
    K: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map(|_| ())
}

/// Server-side apply of a RoleBinding in its namespace. A binding is immutable in what it
/// refers to, so one made by an older hub for another role (the shared roles were renamed so
/// that no cluster name can produce theirs) is replaced: released, deleted, applied anew.
async fn apply_binding(client: &Client, binding: &RoleBinding) -> Result<(), ocm_api::kube::Error> {
    let name = binding.metadata.name.clone().unwrap_or_default();
    let namespace = binding.metadata.namespace.clone().unwrap_or_default();
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
    if let Some(existing) = bindings.get_opt(&name).await?
        && existing.role_ref != binding.role_ref
    {
        tracing::info!(%namespace, %name, from = %existing.role_ref.name, to = %binding.role_ref.name, "replacing a RoleBinding that refers to another role");
        release(&bindings, &existing, rbac::WORK_CLEANUP_FINALIZER).await?;
        ownership::delete_own(&bindings, &name, &namespace).await?;
    }
    bindings
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(binding),
        )
        .await
        .map(|_| ())
}

/// Removes `finalizer` from `binding`, keeping every other controller's, guarded by the
/// resourceVersion the list was read at (a finalizer added meanwhile is not lost: the write
/// conflicts and the next reconcile reads again).
async fn release(
    bindings: &Api<RoleBinding>,
    binding: &RoleBinding,
    finalizer: &str,
) -> Result<(), ocm_api::kube::Error> {
    let held = binding.metadata.finalizers.iter().flatten();
    if !held.clone().any(|f| f == finalizer) {
        return Ok(());
    }
    let kept: Vec<&String> = held.filter(|f| *f != finalizer).collect();
    let patch = serde_json::json!({"metadata": {
        "finalizers": kept,
        "resourceVersion": binding.metadata.resource_version,
    }});
    ignore_missing(
        bindings
            .patch(
                binding.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map(|_| ()),
    )
}

/// The cluster lease the agent renews, created once (renewed from now, so a cluster whose
/// agent never renews becomes Unknown after the grace period).
async fn create_lease(
    client: &Client,
    cluster: &ManagedCluster,
) -> Result<(), ocm_api::kube::Error> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(CLUSTER_LEASE.to_owned()),
            namespace: Some(name.clone()),
            labels: Some([(CLUSTER_NAME_LABEL.to_owned(), name.clone())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(CLUSTER_LEASE.to_owned()),
            lease_duration_seconds: i32::try_from(cluster.spec.lease_duration().as_secs()).ok(),
            renew_time: Some(MicroTime(ocm_api::k8s_openapi::jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    match Api::<Lease>::namespaced(client.clone(), &name)
        .create(&PostParams::default(), &lease)
        .await
    {
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// Removes the namespace RoleBindings (a denied cluster) and, when `all`, the per-cluster
/// ClusterRole and ClusterRoleBinding too (a deleted cluster) — each only if the hub made it
/// for this cluster ([`ownership`]). The work RoleBinding is deleted but keeps its finalizer —
/// so the work agent can still finish removing what it applied — until no ManifestWork is left
/// in the namespace; returns whether that point was reached. The namespace stays, as in OCM.
async fn remove_grants(
    client: &Client,
    cluster: &str,
    all: bool,
) -> Result<bool, ocm_api::kube::Error> {
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), cluster);
    let work = rbac::work_role_binding_name(cluster);
    for name in [rbac::registration_role_binding_name(cluster), work.clone()] {
        ownership::delete_own(&bindings, &name, cluster).await?;
    }
    if all {
        let name = rbac::cluster_role_name(cluster);
        ownership::delete_own(
            &Api::<ClusterRoleBinding>::all(client.clone()),
            &name,
            cluster,
        )
        .await?;
        ownership::delete_own(&Api::<ClusterRole>::all(client.clone()), &name, cluster).await?;
    }
    let works = cleanup::MANIFEST_WORKS.list(client, cluster).await?;
    if !works.is_empty() {
        tracing::info!(
            cluster,
            remaining = works.len(),
            "waiting for its ManifestWorks to go before releasing the work RoleBinding"
        );
        return Ok(false);
    }
    if let Some(binding) = bindings.get_opt(&work).await?
        && ownership::labelled_for(&binding.metadata, cluster)
    {
        release(&bindings, &binding, rbac::WORK_CLEANUP_FINALIZER).await?;
    }
    Ok(true)
}
