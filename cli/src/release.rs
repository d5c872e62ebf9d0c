//! What `ocmctl unjoin` does with the work the agent applied on the managed cluster: its
//! AppliedManifestWorks. Unjoining while they exist would leave their resources, owned by
//! records whose agent is gone, so it refuses and names them — unless `--force`, which
//! releases each as its work's delete option says, as the agent would have when the work was
//! deleted: the resources the work owns are deleted (with their UID as a precondition, so an
//! object made since under the name survives), the ones it orphans lose the record's owner
//! reference and stay, and the record goes. The delete options come from the agent's work
//! cache on the cluster; for a record whose work the cache does not hold, every resource is
//! orphaned — the safe side when the work's wishes are unknown.

use std::collections::HashMap;

use ocm_api::k8s_openapi::api::core::v1::Secret;
use ocm_api::kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use ocm_api::kube::{Api, Client, ResourceExt as _};
use ocm_api::work::v1::{AppliedManifestResourceMeta, AppliedManifestWork, ManifestWork};
use ocm_spoke_agent::work::cache::{CACHE_LABEL, HUB_HASH_ANNOTATION, WORK_KEY};

use crate::names::AGENT_NAMESPACE;

/// What releasing one record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// The AppliedManifestWork's name.
    pub record: String,
    /// `resource/namespace/name` deleted.
    pub deleted: Vec<String>,
    /// `resource/namespace/name` left on the cluster.
    pub orphaned: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ReleaseError {
    what: String,
    #[source]
    source: Box<ocm_api::kube::Error>,
}

fn error(what: impl Into<String>) -> impl FnOnce(ocm_api::kube::Error) -> ReleaseError {
    let what = what.into();
    move |source| ReleaseError {
        what,
        source: Box::new(source),
    }
}

/// The AppliedManifestWorks on the cluster (none where their CRD is not installed).
pub async fn applied_works(spoke: &Client) -> Result<Vec<AppliedManifestWork>, ReleaseError> {
    match Api::<AppliedManifestWork>::all(spoke.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => Ok(list.items),
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(err) => Err(error("listing AppliedManifestWorks")(err)),
    }
}

/// The works the agent's cache holds, by AppliedManifestWork name (`<hub hash>-<work>`).
async fn cached_works(spoke: &Client) -> HashMap<String, ManifestWork> {
    let secrets: Api<Secret> = Api::namespaced(spoke.clone(), AGENT_NAMESPACE);
    let Ok(list) = secrets
        .list(&ListParams::default().labels(&format!("{CACHE_LABEL}=true")))
        .await
    else {
        return HashMap::new();
    };
    list.items
        .into_iter()
        .filter_map(|secret| {
            let hub_hash = secret.annotations().get(HUB_HASH_ANNOTATION)?.clone();
            let data = secret.data?.remove(WORK_KEY)?;
            let work: ManifestWork = serde_json::from_slice(&data.0).ok()?;
            let name = ocm_api::work::v1::applied_manifest_work_name(
                &hub_hash,
                work.metadata.name.as_deref()?,
            );
            Some((name, work))
        })
        .collect()
}

/// Releases every record in `records` as its work's delete option says.
pub async fn release(
    spoke: &Client,
    records: &[AppliedManifestWork],
) -> Result<Vec<Released>, ReleaseError> {
    let works = cached_works(spoke).await;
    let mut released = Vec::new();
    for record in records {
        let name = record.name_any();
        let work = works.get(&name);
        let mut outcome = Released {
            record: name.clone(),
            deleted: Vec::new(),
            orphaned: Vec::new(),
        };
        let resources = record
            .status
            .as_ref()
            .map(|s| s.applied_resources.clone())
            .unwrap_or_default();
        for resource in &resources {
            let id = format!(
                "{}/{}/{}",
                resource.resource, resource.namespace, resource.name
            );
            let owned = work.is_some_and(|w| {
                w.spec.owns(
                    &resource.group,
                    &resource.resource,
                    &resource.namespace,
                    &resource.name,
                )
            });
            let record_uid = record.uid().unwrap_or_default();
            match release_one(spoke, resource, &record_uid, owned).await? {
                Fate::Deleted => outcome.deleted.push(id),
                Fate::Orphaned => outcome.orphaned.push(id),
                Fate::Gone => {}
            }
        }
        let records: Api<AppliedManifestWork> = Api::all(spoke.clone());
        let unfinalized = serde_json::json!({"metadata": {
            "finalizers": null,
            "resourceVersion": record.resource_version(),
        }});
        match records
            .patch(&name, &PatchParams::default(), &Patch::Merge(unfinalized))
            .await
        {
            Ok(_) => {}
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(error(format!("releasing AppliedManifestWork {name}"))(err)),
        }
        match records.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => return Err(error(format!("deleting AppliedManifestWork {name}"))(err)),
        }
        released.push(outcome);
    }
    Ok(released)
}

fn api(spoke: &Client, resource: &AppliedManifestResourceMeta) -> Api<DynamicObject> {
    let api_version = if resource.group.is_empty() {
        resource.version.clone()
    } else {
        format!("{}/{}", resource.group, resource.version)
    };
    let api_resource = ApiResource {
        group: resource.group.clone(),
        version: resource.version.clone(),
        api_version,
        kind: String::new(),
        plural: resource.resource.clone(),
    };
    if resource.namespace.is_empty() {
        Api::all_with(spoke.clone(), &api_resource)
    } else {
        Api::namespaced_with(spoke.clone(), &resource.namespace, &api_resource)
    }
}

enum Fate {
    Deleted,
    Orphaned,
    Gone,
}

/// Deletes the object the record applied when the work owns it and no other record does (with
/// its UID as a precondition); otherwise removes the record's owner reference, so that the
/// garbage collector leaves the object when the record goes.
async fn release_one(
    spoke: &Client,
    resource: &AppliedManifestResourceMeta,
    record_uid: &str,
    owned: bool,
) -> Result<Fate, ReleaseError> {
    let objects = api(spoke, resource);
    let what = |verb: &str| {
        format!(
            "{verb} {} {}/{}",
            resource.resource, resource.namespace, resource.name
        )
    };
    let Some(object) = objects
        .get_opt(&resource.name)
        .await
        .map_err(error(what("reading")))?
    else {
        return Ok(Fate::Gone);
    };
    if !resource.uid.is_empty() && object.uid().as_deref() != Some(resource.uid.as_str()) {
        // Another object now has the name: not the record's to touch.
        return Ok(Fate::Gone);
    }
    let owners = object.owner_references();
    let shared = owners.iter().any(|o| o.uid != record_uid);
    if owned && !shared {
        let params = DeleteParams {
            preconditions: object.uid().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        return match objects.delete(&resource.name, &params).await {
            Ok(_) => Ok(Fate::Deleted),
            Err(ocm_api::kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
                Ok(Fate::Gone)
            }
            Err(err) => Err(error(what("deleting"))(err)),
        };
    }
    if owners.iter().any(|o| o.uid == record_uid) {
        let kept: Vec<_> = owners.iter().filter(|o| o.uid != record_uid).collect();
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": kept,
            "resourceVersion": object.resource_version(),
        }});
        objects
            .patch(
                &resource.name,
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map_err(error(what("orphaning")))?;
    }
    Ok(Fate::Orphaned)
}
