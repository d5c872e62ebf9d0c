//! The hub's finalizers on ManagedClusters. Adding one is a server-side apply of just that
//! entry under a field manager of its own: `metadata.finalizers` is a set, so the apply needs
//! no resourceVersion and never conflicts with the agent's status writes or another
//! controller's finalizer — at ten thousand clusters a guarded patch conflicted thousands of
//! times. Removing one is guarded (it happens once, while the cluster is being deleted).

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::{Api, Client, Resource as _};

/// Adds `finalizer` to `cluster` unless it already holds it, owned by `manager`.
pub async fn add(
    client: &Client,
    cluster: &ManagedCluster,
    finalizer: &str,
    manager: &str,
) -> Result<(), ocm_api::kube::Error> {
    if holds(cluster, finalizer) {
        return Ok(());
    }
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let apply = serde_json::json!({
        "apiVersion": ManagedCluster::api_version(&()),
        "kind": ManagedCluster::kind(&()),
        "metadata": {"name": name, "finalizers": [finalizer]},
    });
    ignore_missing(
        Api::<ManagedCluster>::all(client.clone())
            .patch(&name, &PatchParams::apply(manager), &Patch::Apply(apply))
            .await
            .map(|_| ()),
    )
}

/// Removes `finalizer` from `cluster`, guarded by the resourceVersion the list was read at.
pub async fn remove(
    client: &Client,
    cluster: &ManagedCluster,
    finalizer: &str,
) -> Result<(), ocm_api::kube::Error> {
    if !holds(cluster, finalizer) {
        return Ok(());
    }
    let finalizers: Vec<&String> = cluster
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": cluster.metadata.resource_version,
    }});
    ignore_missing(
        Api::<ManagedCluster>::all(client.clone())
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ()),
    )
}

pub fn holds(cluster: &ManagedCluster, finalizer: &str) -> bool {
    cluster
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == finalizer)
}

pub(crate) fn ignore_missing(
    result: Result<(), ocm_api::kube::Error>,
) -> Result<(), ocm_api::kube::Error> {
    match result {
        Err(ocm_api::kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}
