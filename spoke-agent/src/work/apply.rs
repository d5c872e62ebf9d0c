//! Applying one manifest to the managed cluster with the work's update strategy (as OCM's
//! work agent applies each strategy):
//!
//! - **Update** (default): create if missing; otherwise write only when the manifest is not
//!   already contained in the live object (fields the apiserver or others added do not count),
//!   merging labels, annotations and owner references and keeping finalizers — so an edit on
//!   the spoke is put back, and an unchanged object is never rewritten.
//! - **CreateOnly**: create if missing; afterwards only owner references are kept right.
//! - **ServerSideApply**: a server-side apply with the work's field manager (`work-agent…`) and
//!   `force`; a conflict is reported, not retried. `ignoreFields` with `OnSpokePresent` leave the
//!   listed paths to the spoke once the object exists; a hash of what is applied
//!   (annotation `open-cluster-management.io/config-spec-hash`) skips applies that would change
//!   nothing the hub asked for.
//! - **ReadOnly**: nothing is written; the live object is read for status.
//!
//! Everything written carries an owner reference to the work's AppliedManifestWork, unless the
//! delete option orphans it, in which case that reference is removed.

use std::collections::HashMap;
use std::sync::Mutex;

use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use ocm_api::kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use ocm_api::kube::core::GroupVersionKind;
use ocm_api::kube::discovery::{ApiCapabilities, Scope};
use ocm_api::kube::{Api, Client};
use serde_json::{Map, Value};

/// Annotation holding the hash of what a server-side apply with ignored fields applied.
pub const CONFIG_SPEC_HASH_ANNOTATION: &str = "open-cluster-management.io/config-spec-hash";

/// How a manifest is applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Update,
    CreateOnly,
    ServerSideApply {
        field_manager: String,
        force: bool,
        /// Paths left to the spoke once the object exists (`OnSpokePresent`).
        ignore_when_present: Vec<String>,
        /// Paths left to the spoke until the hub's manifest changes (`OnSpokeChange`).
        ignore_until_changed: Vec<String>,
    },
    ReadOnly,
}

/// Who owns what is applied: the work's AppliedManifestWork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub uid: String,
}

impl Owner {
    fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "work.open-cluster-management.io/v1".to_owned(),
            kind: "AppliedManifestWork".to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            ..OwnerReference::default()
        }
    }
}

/// Where a manifest lives: its API resource and, if namespaced, its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

/// What applying did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    /// ReadOnly: nothing written.
    Read,
}

/// The result of applying one manifest: what was done and the live object after it (absent
/// for a ReadOnly manifest whose object does not exist).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub target: Target,
    pub action: Action,
    pub live: Option<DynamicObject>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// Not (yet) served: a CRD in the same work may not be established yet.
    #[error("the server does not serve {0}")]
    UnknownKind(String),
    #[error("server-side apply conflict: {0}")]
    Conflict(String),
    /// The work's executor may not apply it, or that could not be checked.
    #[error(transparent)]
    Executor(#[from] super::executor::ExecutorError),
    #[error("{verb} {what}: {source}")]
    Api {
        verb: &'static str,
        what: String,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
}

impl ApplyError {
    /// A create or update refused because the object changed (or appeared) since it was read.
    fn is_write_conflict(&self) -> bool {
        matches!(
            self,
            Self::Api { verb: "updating" | "creating", source, .. }
                if matches!(source.as_ref(), ocm_api::kube::Error::Api(status) if status.code == 409)
        )
    }

    /// When the work is to be tried again for this error, if not the agent's usual failure
    /// retry: an executor refusal waits for [`super::executor::NOT_ALLOWED_RETRY`], as in OCM.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Executor(error) => error.retry_after(),
            _ => None,
        }
    }

    /// The reason OCM's conditions carry for it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Conflict(_) => "ApplyConflict",
            _ => "AppliedManifestFailed",
        }
    }
}

/// Resolves kinds to API resources through discovery, remembering what it found. A kind not
/// served is looked up again next time (its CRD may be on its way).
#[derive(Default)]
pub struct Resolver {
    known: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn resolve(
        &self,
        client: &Client,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), ApplyError> {
        if let Some(found) = self.lock().get(gvk).cloned() {
            return Ok(found);
        }
        let found = ocm_api::kube::discovery::pinned_kind(client, gvk)
            .await
            .map_err(|_| ApplyError::UnknownKind(describe(gvk)))?;
        self.lock().insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// Forgets a kind (its CRD was deleted or changed).
    pub fn forget(&self, gvk: &GroupVersionKind) {
        self.lock().remove(gvk);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn describe(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{}/{}", gvk.version, gvk.kind)
    } else {
        format!("{}/{}, Kind={}", gvk.group, gvk.version, gvk.kind)
    }
}

/// The group, version and kind a manifest declares.
pub fn kind_of(manifest: &Value) -> Result<GroupVersionKind, ApplyError> {
    let api_version = manifest
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApplyError::Invalid("apiVersion is missing".to_owned()))?;
    let kind = manifest
        .get("kind")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApplyError::Invalid("kind is missing".to_owned()))?;
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    Ok(GroupVersionKind::gvk(group, version, kind))
}

/// Where `manifest` goes: resolved through discovery, its name checked, a namespaced object
/// without namespace put in `default` (as kubectl does).
pub async fn target_of(
    client: &Client,
    resolver: &Resolver,
    manifest: &Value,
) -> Result<Target, ApplyError> {
    let gvk = kind_of(manifest)?;
    let name = manifest
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApplyError::Invalid(format!("{} without metadata.name", gvk.kind)))?
        .to_owned();
    let (resource, capabilities) = resolver.resolve(client, &gvk).await?;
    let namespace = match capabilities.scope {
        Scope::Cluster => None,
        Scope::Namespaced => Some(
            manifest
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned(),
        ),
    };
    Ok(Target {
        resource,
        namespace,
        name,
    })
}

fn api(client: &Client, target: &Target) -> Api<DynamicObject> {
    match &target.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &target.resource),
        None => Api::all_with(client.clone(), &target.resource),
    }
}

fn what(target: &Target) -> String {
    match &target.namespace {
        Some(namespace) => format!("{} {namespace}/{}", target.resource.kind, target.name),
        None => format!("{} {}", target.resource.kind, target.name),
    }
}

fn api_error(
    verb: &'static str,
    target: &Target,
) -> impl FnOnce(ocm_api::kube::Error) -> ApplyError {
    let what = what(target);
    move |source| ApplyError::Api {
        verb,
        what,
        source: Box::new(source),
    }
}

/// Applies `manifest` with `strategy`; `owned` says whether the object is to carry the owner
/// reference to `owner` (false when the delete option orphans it). A write that lost a race
/// with another writer (a controller updating the object's status, say) is done again from a
/// fresh read, as OCM retries its apply on conflicts.
pub async fn apply(
    client: &Client,
    resolver: &Resolver,
    manifest: &Value,
    strategy: &Strategy,
    owner: &Owner,
    owned: bool,
) -> Result<Outcome, ApplyError> {
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        match apply_once(client, resolver, manifest, strategy, owner, owned).await {
            Err(error) if error.is_write_conflict() && attempt < ATTEMPTS => attempt += 1,
            outcome => return outcome,
        }
    }
}

async fn apply_once(
    client: &Client,
    resolver: &Resolver,
    manifest: &Value,
    strategy: &Strategy,
    owner: &Owner,
    owned: bool,
) -> Result<Outcome, ApplyError> {
    let target = target_of(client, resolver, manifest).await?;
    let api = api(client, &target);
    let mut required = manifest.clone();
    strip_server_fields(&mut required);
    if let (Some(namespace), Some(meta)) = (&target.namespace, required.get_mut("metadata")) {
        meta["namespace"] = Value::String(namespace.clone());
    }
    let live = api
        .get_opt(&target.name)
        .await
        .map_err(api_error("reading", &target))?;
    match strategy {
        Strategy::ReadOnly => Ok(Outcome {
            target,
            action: Action::Read,
            live,
        }),
        Strategy::ServerSideApply {
            field_manager,
            force,
            ignore_when_present,
            ignore_until_changed: _,
        } => {
            server_side_apply(
                &api,
                target,
                required,
                live,
                (field_manager, *force, ignore_when_present),
                owner,
                owned,
            )
            .await
        }
        Strategy::Update | Strategy::CreateOnly => {
            let Some(live) = live else {
                set_owner(&mut required, owner, owned);
                let created = create(&api, &target, &required).await?;
                return Ok(Outcome {
                    target,
                    action: Action::Created,
                    live: Some(created),
                });
            };
            let live_value = serde_json::to_value(&live).unwrap_or(Value::Null);
            let merged = merged_metadata(&required, &live_value, owner, owned);
            let content_same = *strategy == Strategy::CreateOnly
                || contained(&without_metadata(&required), &without_metadata(&live_value));
            let metadata_same = live_value.get("metadata").is_some_and(|meta| {
                contained(&merged, meta) && owner_refs(meta) == owner_refs(&merged)
            });
            if content_same && metadata_same {
                return Ok(Outcome {
                    target,
                    action: Action::Unchanged,
                    live: Some(live),
                });
            }
            let mut desired = if *strategy == Strategy::CreateOnly {
                live_value.clone()
            } else {
                let mut desired = required.clone();
                // Status is the spoke's; keep what the live object has.
                if let (Some(status), Some(object)) =
                    (live_value.get("status"), desired.as_object_mut())
                {
                    object.insert("status".to_owned(), status.clone());
                }
                desired
            };
            desired["metadata"] = merged;
            let desired: DynamicObject =
                serde_json::from_value(desired).map_err(|e| ApplyError::Invalid(e.to_string()))?;
            let updated = api
                .replace(&target.name, &PostParams::default(), &desired)
                .await
                .map_err(api_error("updating", &target))?;
            Ok(Outcome {
                target,
                action: Action::Updated,
                live: Some(updated),
            })
        }
    }
}

async fn create(
    api: &Api<DynamicObject>,
    target: &Target,
    required: &Value,
) -> Result<DynamicObject, ApplyError> {
    let object: DynamicObject =
        serde_json::from_value(required.clone()).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    api.create(&PostParams::default(), &object)
        .await
        .map_err(api_error("creating", target))
}

async fn server_side_apply(
    api: &Api<DynamicObject>,
    target: Target,
    mut required: Value,
    live: Option<DynamicObject>,
    (field_manager, force, ignore_when_present): (&str, bool, &[String]),
    owner: &Owner,
    owned: bool,
) -> Result<Outcome, ApplyError> {
    set_owner(&mut required, owner, owned);
    if !ignore_when_present.is_empty() {
        let mut stripped = required.clone();
        for path in ignore_when_present {
            remove_path(&mut stripped, path);
        }
        let hash = content_hash(&stripped);
        let live_hash = live.as_ref().and_then(|l| {
            l.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONFIG_SPEC_HASH_ANNOTATION))
                .cloned()
        });
        if live_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Outcome {
                target,
                action: Action::Unchanged,
                live,
            });
        }
        // Once the object exists, the ignored paths are the spoke's.
        if live.is_some() {
            required = stripped;
        }
        required["metadata"]["annotations"][CONFIG_SPEC_HASH_ANNOTATION] = Value::String(hash);
    }
    let params = PatchParams {
        field_manager: Some(field_manager.to_owned()),
        force,
        ..PatchParams::default()
    };
    let existed = live.is_some();
    match api
        .patch(&target.name, &params, &Patch::Apply(&required))
        .await
    {
        Ok(applied) => {
            let action = match &live {
                Some(before)
                    if before.metadata.resource_version == applied.metadata.resource_version =>
                {
                    Action::Unchanged
                }
                _ if existed => Action::Updated,
                _ => Action::Created,
            };
            Ok(Outcome {
                target,
                action,
                live: Some(applied),
            })
        }
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => {
            Err(ApplyError::Conflict(status.message))
        }
        Err(source) => Err(api_error("applying", &target)(source)),
    }
}

/// Fields a manifest must not carry to the spoke (another object's identity and server state).
fn strip_server_fields(manifest: &mut Value) {
    if let Some(meta) = manifest.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
    }
}

/// Adds the owner reference (owned) or removes it (orphaned) in a manifest's metadata.
fn set_owner(manifest: &mut Value, owner: &Owner, owned: bool) {
    let Some(meta) = manifest.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let mut refs: Vec<Value> = meta
        .get("ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner.uid.as_str()));
    if owned {
        refs.push(serde_json::to_value(owner.reference()).unwrap_or(Value::Null));
    }
    if refs.is_empty() {
        meta.remove("ownerReferences");
    } else {
        meta.insert("ownerReferences".to_owned(), Value::Array(refs));
    }
}

/// The live object's metadata with the manifest's labels and annotations laid over it and the
/// owner reference set as `owned` says; finalizers and everything else stay the live object's.
fn merged_metadata(required: &Value, live: &Value, owner: &Owner, owned: bool) -> Value {
    let mut meta = live
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    for field in ["labels", "annotations"] {
        if let Some(wanted) = required
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
        {
            let entry = meta
                .as_object_mut()
                .map(|m| m.entry(field).or_insert_with(|| Value::Object(Map::new())));
            if let Some(Value::Object(existing)) = entry {
                for (key, value) in wanted {
                    existing.insert(key.clone(), value.clone());
                }
            }
        }
    }
    // The manifest's own owner references join the live ones.
    if let Some(wanted) = required
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        let mut refs: Vec<Value> = meta
            .get("ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for reference in wanted {
            if !refs.iter().any(|r| r.get("uid") == reference.get("uid")) {
                refs.push(reference.clone());
            }
        }
        meta["ownerReferences"] = Value::Array(refs);
    }
    let mut wrapper = serde_json::json!({ "metadata": meta });
    set_owner(&mut wrapper, owner, owned);
    wrapper["metadata"].take()
}

fn owner_refs(meta: &Value) -> Vec<String> {
    let mut uids: Vec<String> = meta
        .get("ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_owned))
        .collect();
    uids.sort();
    uids
}

fn without_metadata(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    object
}

/// Whether everything `required` says is already so in `live`: maps by key (extra keys in
/// `live` are fine — defaults, other writers), lists element by element with equal lengths,
/// scalars equal; a `null` in `required` asks for nothing.
pub fn contained(required: &Value, live: &Value) -> bool {
    match (required, live) {
        (Value::Null, _) => true,
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, value)| match have.get(key) {
                Some(present) => contained(value, present),
                None => value.is_null() || is_empty_collection(value),
            })
        }
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| contained(w, h))
        }
        (Value::Number(want), Value::Number(have)) => {
            want == have || want.as_f64().is_some_and(|w| have.as_f64() == Some(w))
        }
        (want, have) => want == have,
    }
}

/// The apiserver drops empty maps and lists it defaults; asking for one is asking for nothing.
fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

/// Removes the field at a dotted path (`.spec.replicas`, `.spec.template.spec.containers[0].image`).
fn remove_path(object: &mut Value, path: &str) {
    let mut steps: Vec<Step> = Vec::new();
    for part in path
        .trim()
        .trim_start_matches('$')
        .trim_start_matches('.')
        .split('.')
    {
        let (field, indexes) = match part.find('[') {
            Some(at) => (&part[..at], &part[at..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            steps.push(Step::Field(field.to_owned()));
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            match index.trim_end_matches(']').parse::<usize>() {
                Ok(i) => steps.push(Step::Index(i)),
                // Filters and wildcards are not field paths: leave the object as it is.
                Err(_) => return,
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return;
    };
    let mut at = object;
    for step in parents {
        let next = match step {
            Step::Field(f) => at.get_mut(f.as_str()),
            Step::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(next) => at = next,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(map) = at.as_object_mut() {
                map.remove(f);
            }
        }
        Step::Index(i) => {
            if let Some(list) = at.as_array_mut()
                && *i < list.len()
            {
                list.remove(*i);
            }
        }
    }
}

enum Step {
    Field(String),
    Index(usize),
}

/// A stable hash of an object (keys sorted by serde_json's map), hex SHA-256.
fn content_hash(object: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, object.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            name: "abc-web".into(),
            uid: "amw-uid".into(),
        }
    }

    #[test]
    fn a_manifest_is_contained_in_a_live_object_with_defaults_and_extras() {
        let required = serde_json::json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let live = serde_json::json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"spec": {"containers": [{"name": "web", "image": "nginx", "imagePullPolicy": "Always"}], "restartPolicy": "Always"}}}});
        assert!(contained(&required, &live));
        let edited = serde_json::json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        assert!(!contained(&required, &edited), "an edit on the spoke");
        let extra = serde_json::json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "sidecar"}]}}}});
        assert!(!contained(&required, &extra), "lists must match in length");
        assert!(contained(
            &serde_json::json!({"data": {}}),
            &serde_json::json!({})
        ));
        assert!(contained(
            &serde_json::json!({"a": 1}),
            &serde_json::json!({"a": 1.0})
        ));
    }

    #[test]
    fn metadata_merges_labels_keeps_finalizers_and_sets_the_owner() {
        let required = serde_json::json!({"metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "1"}}});
        let live = serde_json::json!({"metadata": {"name": "web", "labels": {"team": "x", "app": "old"}, "finalizers": ["keep"], "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "other"}]}});
        let merged = merged_metadata(&required, &live, &owner(), true);
        assert_eq!(
            merged["labels"],
            serde_json::json!({"team": "x", "app": "web"})
        );
        assert_eq!(merged["annotations"], serde_json::json!({"a": "1"}));
        assert_eq!(merged["finalizers"], serde_json::json!(["keep"]));
        assert_eq!(owner_refs(&merged), ["amw-uid", "other"]);
        let orphaned = merged_metadata(&required, &merged_wrapper(&merged), &owner(), false);
        assert_eq!(
            owner_refs(&orphaned),
            ["other"],
            "orphaning removes only ours"
        );
    }

    fn merged_wrapper(meta: &Value) -> Value {
        serde_json::json!({ "metadata": meta })
    }

    #[test]
    fn server_fields_are_stripped_and_ignored_paths_removed() {
        let mut manifest = serde_json::json!({"metadata": {"name": "a", "uid": "x", "resourceVersion": "5", "managedFields": []}, "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "a"}, {"image": "b"}]}}}});
        strip_server_fields(&mut manifest);
        assert_eq!(manifest["metadata"], serde_json::json!({"name": "a"}));
        remove_path(&mut manifest, ".spec.replicas");
        remove_path(&mut manifest, ".spec.template.spec.containers[1].image");
        remove_path(&mut manifest, ".spec.nothing.here");
        remove_path(&mut manifest, r#".spec.x[?(@.a=="b")]"#);
        assert_eq!(
            manifest["spec"],
            serde_json::json!({"template": {"spec": {"containers": [{"image": "a"}, {}]}}})
        );
        assert_eq!(content_hash(&manifest), content_hash(&manifest.clone()));
        assert_ne!(
            content_hash(&manifest),
            content_hash(&serde_json::json!({}))
        );
    }

    #[test]
    fn kinds_come_from_api_version_and_kind() {
        let deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(
            kind_of(&deployment)
                .map(|g| (g.group, g.version, g.kind))
                .ok(),
            Some(("apps".into(), "v1".into(), "Deployment".into()))
        );
        let config_map = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert_eq!(
            kind_of(&config_map).map(|g| g.group).ok(),
            Some(String::new())
        );
        assert!(matches!(
            kind_of(&serde_json::json!({"kind": "X"})),
            Err(ApplyError::Invalid(_))
        ));
        let mut with_owner = serde_json::json!({"metadata": {"name": "a"}});
        set_owner(&mut with_owner, &owner(), true);
        set_owner(&mut with_owner, &owner(), true);
        assert_eq!(owner_refs(&with_owner["metadata"]), ["amw-uid"], "once");
        set_owner(&mut with_owner, &owner(), false);
        assert!(with_owner["metadata"].get("ownerReferences").is_none());
    }
}
