//! One ManifestWork on the managed cluster (OCM's work agent's apply and delete):
//! its AppliedManifestWork `<hubHash>-<work>` (with its finalizer) owns what is applied; every
//! manifest is applied — namespaces first, then CRDs, then the rest in the work's order, a kind
//! whose CRD came in the same work waited for until it is served — one failure never stopping
//! the others; what the work no longer lists is pruned; and when the work goes, what it owns
//! goes, before the AppliedManifestWork does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ocm_api::k8s_openapi::jiff::Timestamp;
use ocm_api::kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions,
};
use ocm_api::kube::core::GroupVersionKind;
use ocm_api::kube::{Api, Client};
use ocm_api::work::v1::{
    APPLIED_MANIFEST_WORK_FINALIZER, AppliedManifestResourceMeta, AppliedManifestWork,
    AppliedManifestWorkSpec, AppliedManifestWorkStatus, ManifestResourceMeta, ManifestWork,
    ManifestWorkStatus, ServerSideApplyConfig, UpdateStrategyType, applied_manifest_work_name,
};
use serde_json::Value;

use super::apply::{self, Action, ApplyError, Owner, Resolver, Strategy};
use super::status::{self, Applied, Live, ManifestOutcome};

/// How long a kind whose CRD is in the same work is waited for.
const CRD_WAIT: Duration = Duration::from_secs(20);

/// When a work with a failed manifest is tried again, unless every failure says otherwise.
pub const FAILURE_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("work {work}: {what}: {source}")]
    Kube {
        work: String,
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
}

fn kube_error(work: &str, what: &'static str) -> impl FnOnce(ocm_api::kube::Error) -> WorkError {
    let work = work.to_owned();
    move |source| WorkError::Kube {
        work,
        what,
        source: Box::new(source),
    }
}

/// What applying a work gave: its status for the hub, and when to try it again if anything
/// failed.
#[derive(Debug, Clone)]
pub struct WorkOutcome {
    pub status: ManifestWorkStatus,
    /// When the work is to be applied again, if something failed: [`FAILURE_RETRY`], or
    /// [`super::executor::NOT_ALLOWED_RETRY`] (60 s) when every failure was the executor's
    /// refusal, as OCM requeues such a work.
    pub retry_after: Option<Duration>,
    /// Objects created or updated (zero when everything was already so).
    pub writes: usize,
}

impl WorkOutcome {
    /// Whether a manifest failed to apply.
    pub fn failed(&self) -> bool {
        self.retry_after.is_some()
    }
}

/// Applies works for one hub on this cluster.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    resolver: Arc<Resolver>,
    hub_hash: String,
    agent_id: String,
    max_raw: usize,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier")
            .field("hub_hash", &self.hub_hash)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

impl Applier {
    pub fn new(client: Client, hub_hash: String, agent_id: String, max_raw: usize) -> Self {
        Self {
            client,
            resolver: Arc::new(Resolver::new()),
            hub_hash,
            agent_id,
            max_raw,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    pub fn applied_name(&self, work: &str) -> String {
        applied_manifest_work_name(&self.hub_hash, work)
    }

    fn applied_api(&self) -> Api<AppliedManifestWork> {
        Api::all(self.client.clone())
    }

    /// The work's AppliedManifestWork, created (with its finalizer) if missing.
    pub async fn ensure_applied_work(
        &self,
        work_name: &str,
    ) -> Result<AppliedManifestWork, WorkError> {
        let name = self.applied_name(work_name);
        let api = self.applied_api();
        if let Some(found) = api
            .get_opt(&name)
            .await
            .map_err(kube_error(work_name, "reading its AppliedManifestWork"))?
        {
            return Ok(found);
        }
        let mut applied = AppliedManifestWork::new(
            &name,
            AppliedManifestWorkSpec {
                hub_hash: self.hub_hash.clone(),
                agent_id: self.agent_id.clone(),
                manifest_work_name: work_name.to_owned(),
            },
        );
        applied.metadata.finalizers = Some(vec![APPLIED_MANIFEST_WORK_FINALIZER.to_owned()]);
        match api.create(&PostParams::default(), &applied).await {
            Ok(created) => Ok(created),
            Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => api
                .get(&name)
                .await
                .map_err(kube_error(work_name, "reading its AppliedManifestWork")),
            Err(source) => Err(kube_error(work_name, "creating its AppliedManifestWork")(
                source,
            )),
        }
    }

    /// Applies every manifest of `work` and prunes what it no longer lists; the status to report.
    pub async fn apply(&self, work: &ManifestWork) -> Result<WorkOutcome, WorkError> {
        let work_name = work.metadata.name.clone().unwrap_or_default();
        let applied_work = self.ensure_applied_work(&work_name).await?;
        let owner = Owner {
            name: applied_work.metadata.name.clone().unwrap_or_default(),
            uid: applied_work.metadata.uid.clone().unwrap_or_default(),
        };
        let manifests: Vec<&Value> = work.spec.workload.manifests.iter().map(|m| &m.0).collect();
        let recorded = applied_work
            .status
            .as_ref()
            .map(|s| s.applied_resources.as_slice())
            .unwrap_or_default();
        let now = Timestamp::now();
        let mut outcomes: Vec<Option<ManifestOutcome>> = vec![None; manifests.len()];
        let mut applied_resources = Vec::new();
        let mut writes = 0;
        let mut retry_after: Option<Duration> = None;
        for index in apply_order(&manifests) {
            let manifest = manifests[index];
            let mut meta = resource_meta(index, manifest);
            let result = self
                .apply_one(work, manifest, &mut meta, &manifests, &owner)
                .await;
            let outcome = match result {
                Ok(outcome) => {
                    if matches!(outcome.action, Action::Created | Action::Updated) {
                        writes += 1;
                        tracing::info!(work = %work_name, resource = %describe(&meta), action = ?outcome.action, "applied");
                    }
                    if let Some(live) = &outcome.live
                        && let Some(uid) = live.metadata.uid.clone()
                        && outcome.action != Action::Read
                    {
                        applied_resources.push(AppliedManifestResourceMeta {
                            group: meta.group.clone(),
                            version: meta.version.clone(),
                            resource: meta.resource.clone(),
                            namespace: meta.namespace.clone(),
                            name: meta.name.clone(),
                            uid,
                        });
                    }
                    let live = match outcome.live {
                        Some(live) => {
                            Live::Found(serde_json::to_value(&live).unwrap_or(Value::Null))
                        }
                        None => Live::NotFound,
                    };
                    ManifestOutcome {
                        meta,
                        applied: Applied::Done,
                        live,
                    }
                }
                Err(error) => {
                    tracing::warn!(work = %work_name, resource = %describe(&meta), %error, "manifest not applied");
                    let retry = error.retry_after().unwrap_or(FAILURE_RETRY);
                    retry_after = Some(retry_after.map_or(retry, |r| r.min(retry)));
                    // Whether it is available is a question of its own (an update refused is
                    // not an object gone).
                    let live = self.read_live(manifest).await;
                    applied_resources.extend(still_applied(&meta, &live, recorded));
                    ManifestOutcome {
                        meta,
                        applied: Applied::Failed {
                            reason: error.reason().to_owned(),
                            message: error.to_string(),
                        },
                        live,
                    }
                }
            };
            outcomes[index] = Some(outcome);
        }
        let status = status::work_status(
            work,
            outcomes.into_iter().flatten().collect(),
            self.max_raw,
            now,
        );
        let failed = status.resource_status.manifests.iter().any(|m| {
            ocm_api::condition::find(&m.conditions, ocm_api::work::v1::CONDITION_APPLIED)
                .is_some_and(|c| c.status != ocm_api::condition::ConditionStatus::True)
        });
        if failed && retry_after.is_none() {
            retry_after = Some(FAILURE_RETRY);
        }
        self.prune(&work_name, &applied_work, &applied_resources)
            .await?;
        Ok(WorkOutcome {
            status,
            retry_after,
            writes,
        })
    }

    async fn apply_one(
        &self,
        work: &ManifestWork,
        manifest: &Value,
        meta: &mut ManifestResourceMeta,
        all: &[&Value],
        owner: &Owner,
    ) -> Result<apply::Outcome, ApplyError> {
        let gvk = apply::kind_of(manifest)?;
        if let Err(ApplyError::UnknownKind(kind)) = self.resolver.resolve(&self.client, &gvk).await
        {
            if !defined_in(&gvk, all) {
                return Err(ApplyError::UnknownKind(kind));
            }
            self.wait_until_served(&gvk).await?;
        }
        let target = apply::target_of(&self.client, &self.resolver, manifest).await?;
        meta.resource.clone_from(&target.resource.plural);
        meta.namespace = target.namespace.clone().unwrap_or_default();
        let strategy = strategy_for(work, meta);
        let owned = work
            .spec
            .owns(&meta.group, &meta.resource, &meta.namespace, &meta.name);
        if let Some(account) = work
            .spec
            .executor
            .as_ref()
            .and_then(|e| e.subject.as_ref())
            .and_then(|s| s.service_account.as_ref())
            && strategy != Strategy::ReadOnly
        {
            super::executor::check(&self.client, account, meta, manifest, owned).await?;
        }
        apply::apply(
            &self.client,
            &self.resolver,
            manifest,
            &strategy,
            owner,
            owned,
        )
        .await
    }

    /// The live object of a manifest, if it can be found.
    async fn read_live(&self, manifest: &Value) -> Live {
        let Ok(target) = apply::target_of(&self.client, &self.resolver, manifest).await else {
            return Live::NotFound;
        };
        let api: Api<DynamicObject> = match &target.namespace {
            Some(namespace) => {
                Api::namespaced_with(self.client.clone(), namespace, &target.resource)
            }
            None => Api::all_with(self.client.clone(), &target.resource),
        };
        match api.get_opt(&target.name).await {
            Ok(Some(live)) => Live::Found(serde_json::to_value(&live).unwrap_or(Value::Null)),
            Ok(None) => Live::NotFound,
            Err(error) => Live::Unreadable(error.to_string()),
        }
    }

    async fn wait_until_served(&self, gvk: &GroupVersionKind) -> Result<(), ApplyError> {
        let deadline = tokio::time::Instant::now() + CRD_WAIT;
        loop {
            match self.resolver.resolve(&self.client, gvk).await {
                Ok(_) => return Ok(()),
                Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Deletes what the AppliedManifestWork recorded and `current` no longer has, then records
    /// `current`.
    async fn prune(
        &self,
        work_name: &str,
        applied_work: &AppliedManifestWork,
        current: &[AppliedManifestResourceMeta],
    ) -> Result<(), WorkError> {
        let before = applied_work
            .status
            .as_ref()
            .map(|s| s.applied_resources.clone())
            .unwrap_or_default();
        let owner_uid = applied_work.metadata.uid.clone().unwrap_or_default();
        let key = |r: &AppliedManifestResourceMeta| {
            (
                r.group.clone(),
                r.resource.clone(),
                r.namespace.clone(),
                r.name.clone(),
            )
        };
        let keep: BTreeSet<_> = current.iter().map(key).collect();
        let mut still = Vec::new();
        for gone in before.iter().filter(|r| !keep.contains(&key(r))) {
            match self.delete_owned(gone, &owner_uid).await {
                Ok(true) => {
                    tracing::info!(work = %work_name, resource = %gone.name, kind = %gone.resource, "pruned: no longer in the work")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(work = %work_name, resource = %gone.name, %error, "prune failed; retried later");
                    still.push(gone.clone());
                }
            }
        }
        let mut recorded = current.to_vec();
        recorded.extend(still);
        if recorded != before {
            self.record(work_name, applied_work, recorded).await?;
        }
        Ok(())
    }

    async fn record(
        &self,
        work_name: &str,
        applied_work: &AppliedManifestWork,
        resources: Vec<AppliedManifestResourceMeta>,
    ) -> Result<(), WorkError> {
        let name = applied_work.metadata.name.clone().unwrap_or_default();
        let status = AppliedManifestWorkStatus {
            applied_resources: resources,
            eviction_start_time: applied_work
                .status
                .as_ref()
                .and_then(|s| s.eviction_start_time.clone()),
        };
        self.applied_api()
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .map_err(kube_error(work_name, "recording what it applied"))?;
        Ok(())
    }

    /// Deletes `resource` if this AppliedManifestWork owns it (only our owner reference goes
    /// when another work owns it too). Whether a delete was sent.
    async fn delete_owned(
        &self,
        resource: &AppliedManifestResourceMeta,
        owner_uid: &str,
    ) -> Result<bool, ocm_api::kube::Error> {
        let Some(api) = self.api_for(resource).await else {
            return Ok(false);
        };
        let Some(live) = api.get_opt(&resource.name).await? else {
            return Ok(false);
        };
        let refs = live.metadata.owner_references.clone().unwrap_or_default();
        if !refs.iter().any(|r| r.uid == owner_uid) {
            return Ok(false);
        }
        let others: Vec<_> = refs
            .iter()
            .filter(|r| r.uid != owner_uid)
            .cloned()
            .collect();
        if others.iter().any(|r| r.kind == "AppliedManifestWork") {
            api.patch(
                &resource.name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": others}})),
            )
            .await?;
            return Ok(false);
        }
        if live.metadata.deletion_timestamp.is_some() {
            return Ok(true);
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api.delete(&resource.name, &params).await {
            Ok(_) => Ok(true),
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    async fn api_for(&self, resource: &AppliedManifestResourceMeta) -> Option<Api<DynamicObject>> {
        // The recorded resource (plural) comes from discovery; the kind is found the same way.
        let discovery = ocm_api::kube::discovery::oneshot::pinned_group(
            &self.client,
            &ocm_api::kube::core::GroupVersion::gv(&resource.group, &resource.version),
        )
        .await
        .ok()?;
        let (api_resource, capabilities): (ApiResource, _) = discovery
            .versioned_resources(&resource.version)
            .into_iter()
            .find(|(r, _)| r.plural == resource.resource)?;
        Some(match capabilities.scope {
            ocm_api::kube::discovery::Scope::Namespaced => {
                Api::namespaced_with(self.client.clone(), &resource.namespace, &api_resource)
            }
            ocm_api::kube::discovery::Scope::Cluster => {
                Api::all_with(self.client.clone(), &api_resource)
            }
        })
    }

    /// Deletes what the work owns and, once it is all gone, its AppliedManifestWork. Whether
    /// everything is gone (call again until it is).
    pub async fn delete(&self, work_name: &str) -> Result<bool, WorkError> {
        self.delete_applied(&self.applied_name(work_name), work_name)
            .await
    }

    /// [`Self::delete`] for the AppliedManifestWork `name` (also one of another hub).
    pub async fn delete_applied(&self, name: &str, work_name: &str) -> Result<bool, WorkError> {
        let api = self.applied_api();
        let name = name.to_owned();
        let Some(applied_work) = api
            .get_opt(&name)
            .await
            .map_err(kube_error(work_name, "reading its AppliedManifestWork"))?
        else {
            return Ok(true);
        };
        let owner_uid = applied_work.metadata.uid.clone().unwrap_or_default();
        let resources = applied_work
            .status
            .as_ref()
            .map(|s| s.applied_resources.clone())
            .unwrap_or_default();
        let mut remaining = 0;
        for resource in &resources {
            match self.delete_owned(resource, &owner_uid).await {
                Ok(true) => remaining += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(work = %work_name, resource = %resource.name, %error, "delete failed; retried");
                    remaining += 1;
                }
            }
        }
        if remaining > 0 {
            tracing::debug!(work = %work_name, remaining, "waiting for the work's resources to go");
            return Ok(false);
        }
        // Everything it owned is gone: release and delete the record.
        let finalizers: Vec<String> = applied_work
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != APPLIED_MANIFEST_WORK_FINALIZER)
            .cloned()
            .collect();
        let released = api
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"finalizers": finalizers}})),
            )
            .await;
        match released {
            Ok(_) => {}
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(kube_error(work_name, "releasing its AppliedManifestWork")(
                    source,
                ));
            }
        }
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(kube_error(work_name, "deleting its AppliedManifestWork")(
                    source,
                ));
            }
        }
        tracing::info!(work = %work_name, "work's resources deleted");
        Ok(true)
    }
}

fn strategy_for(work: &ManifestWork, meta: &ManifestResourceMeta) -> Strategy {
    let strategy = work.spec.update_strategy_for(meta);
    match strategy.r#type {
        UpdateStrategyType::Update => Strategy::Update,
        UpdateStrategyType::CreateOnly => Strategy::CreateOnly,
        UpdateStrategyType::ReadOnly => Strategy::ReadOnly,
        UpdateStrategyType::ServerSideApply => {
            let config: ServerSideApplyConfig = strategy.server_side_apply.unwrap_or_default();
            let (mut when_present, mut until_changed) = (Vec::new(), Vec::new());
            for ignore in &config.ignore_fields {
                let into = match ignore.condition {
                    ocm_api::work::v1::IgnoreFieldsCondition::OnSpokePresent => &mut when_present,
                    ocm_api::work::v1::IgnoreFieldsCondition::OnSpokeChange => &mut until_changed,
                };
                into.extend(ignore.json_paths.iter().cloned());
            }
            Strategy::ServerSideApply {
                field_manager: config.field_manager,
                force: config.force,
                ignore_when_present: when_present,
                ignore_until_changed: until_changed,
            }
        }
    }
}

/// Namespaces first, CRDs next, then the rest in the work's order.
pub fn apply_order(manifests: &[&Value]) -> Vec<usize> {
    let rank = |m: &Value| match (
        m.get("apiVersion").and_then(Value::as_str),
        m.get("kind").and_then(Value::as_str),
    ) {
        (Some("v1"), Some("Namespace")) => 0,
        (Some(v), Some("CustomResourceDefinition")) if v.starts_with("apiextensions.k8s.io/") => 1,
        _ => 2,
    };
    let mut order: Vec<usize> = (0..manifests.len()).collect();
    order.sort_by_key(|&i| rank(manifests[i]));
    order
}

/// Whether one of `manifests` is the CRD that serves `gvk`.
fn defined_in(gvk: &GroupVersionKind, manifests: &[&Value]) -> bool {
    manifests.iter().any(|m| {
        m.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            && m.pointer("/spec/group").and_then(Value::as_str) == Some(gvk.group.as_str())
            && m.pointer("/spec/names/kind").and_then(Value::as_str) == Some(gvk.kind.as_str())
    })
}

/// What the status says about a manifest before (or without) discovery.
pub fn resource_meta(index: usize, manifest: &Value) -> ManifestResourceMeta {
    let text = |pointer: &str| {
        manifest
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let api_version = text("/apiVersion");
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), api_version),
    };
    ManifestResourceMeta {
        ordinal: i32::try_from(index).unwrap_or(i32::MAX),
        group,
        version,
        kind: text("/kind"),
        resource: String::new(),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
    }
}

/// What a manifest that failed this time still has applied: its earlier record while its
/// object is there (or cannot be read), so a refused or failed update never prunes what the
/// work applied before — OCM tracks every object of the status that exists.
fn still_applied(
    meta: &ManifestResourceMeta,
    live: &Live,
    recorded: &[AppliedManifestResourceMeta],
) -> Option<AppliedManifestResourceMeta> {
    if matches!(live, Live::NotFound) {
        return None;
    }
    recorded
        .iter()
        .find(|r| {
            r.group == meta.group
                && r.resource == meta.resource
                && r.namespace == meta.namespace
                && r.name == meta.name
        })
        .cloned()
}

fn describe(meta: &ManifestResourceMeta) -> String {
    if meta.namespace.is_empty() {
        format!("{} {}", meta.kind, meta.name)
    } else {
        format!("{} {}/{}", meta.kind, meta.namespace, meta.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_and_crds_go_first_and_the_rest_keeps_its_order() {
        let manifests = [
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            serde_json::json!({"apiVersion": "example.com/v1", "kind": "Widget"}),
            serde_json::json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "spec": {"group": "example.com", "names": {"kind": "Widget"}}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace"}),
        ];
        let refs: Vec<&Value> = manifests.iter().collect();
        assert_eq!(apply_order(&refs), [4, 2, 0, 1, 3]);
        assert!(defined_in(
            &GroupVersionKind::gvk("example.com", "v1", "Widget"),
            &refs
        ));
        assert!(!defined_in(
            &GroupVersionKind::gvk("example.com", "v1", "Gadget"),
            &refs
        ));
        let meta = resource_meta(1, &manifests[1]);
        assert_eq!(
            (meta.group.as_str(), meta.version.as_str(), meta.ordinal),
            ("example.com", "v1", 1)
        );
    }

    #[test]
    fn a_failed_manifest_keeps_its_earlier_record_while_its_object_is_there() {
        let meta = ManifestResourceMeta {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            kind: "Role".into(),
            resource: "roles".into(),
            namespace: "web".into(),
            name: "reader".into(),
            ordinal: 0,
        };
        let record = |name: &str| AppliedManifestResourceMeta {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            resource: "roles".into(),
            namespace: "web".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        };
        let recorded = [record("other"), record("reader")];
        let found = Live::Found(serde_json::json!({"metadata": {"uid": "uid-reader"}}));
        assert_eq!(
            still_applied(&meta, &found, &recorded),
            Some(record("reader"))
        );
        assert_eq!(
            still_applied(&meta, &Live::Unreadable("timeout".into()), &recorded),
            Some(record("reader")),
            "an object that cannot be read is not taken for gone"
        );
        assert_eq!(still_applied(&meta, &Live::NotFound, &recorded), None);
        assert_eq!(
            still_applied(&meta, &found, &[record("other")]),
            None,
            "never applied before: nothing to keep"
        );
    }
}
