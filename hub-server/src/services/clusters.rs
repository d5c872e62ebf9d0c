//! `cluster.open-cluster-management.io.v1.managedclusters`: an agent creates its ManagedCluster
//! when it joins and reports status; it may update the spec (OCM's hub accepts it, its agents
//! never send it).
//!
//! The hub writes these as itself, so it decides here what an agent may set, as OCM's
//! ManagedCluster webhook would for the agent's own identity:
//! - the name must be a cluster name ([`ocm_api::registration::validate_cluster_name`]) and
//!   not that of a namespace the hub did not make for this cluster — the name becomes the
//!   namespace its agents get lease, event and work rights in;
//! - joining never accepts; finalizers, owner references and taints are the hub's and the
//!   administrator's, not the agent's; joining a cluster set by its label needs
//!   `managedclustersets/join` for the caller;
//! - a spec update changes the agent's client configs (the API server URLs and CA it reports)
//!   and nothing else: labels, annotations, finalizers, taints, lease duration and acceptance
//!   stay as stored.

use std::sync::Arc;

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::cluster::v1beta2::CLUSTER_SET_LABEL;
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_api::registration::{CLUSTER_NAME_LABEL, validate_cluster_name};
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{Authorizer, Identity};
use ocm_transport::registration::RegistrationKind;
use tonic::Status;

use super::{ClusterIndex, KindOps, for_create, kube_status};

#[derive(Clone)]
pub struct ManagedClusterOps {
    api: Api<ManagedCluster>,
    namespaces: Api<Namespace>,
    index: ClusterIndex<ManagedCluster>,
    /// Decides `managedclustersets/join` for a joining agent's cluster set label.
    authorizer: Arc<dyn Authorizer>,
}

impl std::fmt::Debug for ManagedClusterOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedClusterOps").finish_non_exhaustive()
    }
}

impl ManagedClusterOps {
    pub fn new(
        client: Client,
        index: ClusterIndex<ManagedCluster>,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        Self {
            api: Api::all(client.clone()),
            namespaces: Api::all(client),
            index,
            authorizer,
        }
    }

    /// A namespace of the cluster's name that exists and is not labelled for the cluster is
    /// someone else's (a tenant's, the hub's own): the cluster may not be named after it.
    async fn check_namespace_free(&self, name: &str) -> Result<(), Status> {
        let existing = self.namespaces.get_opt(name).await.map_err(kube_status)?;
        if let Some(namespace) = existing {
            let labelled_for = namespace
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(CLUSTER_NAME_LABEL));
            if labelled_for.map(String::as_str) != Some(name) {
                return Err(Status::invalid_argument(format!(
                    "ManagedCluster {name:?}: namespace {name:?} exists and does not belong to a managed cluster"
                )));
            }
        }
        Ok(())
    }

    /// Joining a cluster set by its label needs `create managedclustersets/join` on that set,
    /// as OCM's webhook requires of whoever sets the label.
    async fn check_set_join(&self, who: &Identity, cluster: &ManagedCluster) -> Result<(), Status> {
        let Some(set) = cluster
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CLUSTER_SET_LABEL))
        else {
            return Ok(());
        };
        let request = AccessRequest {
            verb: "create",
            group: "cluster.open-cluster-management.io".to_owned(),
            resource: "managedclustersets".to_owned(),
            subresource: Some("join"),
            namespace: String::new(),
            name: Some(set.clone()),
        };
        match self.authorizer.authorize(who, &request).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Status::permission_denied(format!(
                "{} may not join cluster set {set:?}",
                who.user
            ))),
            Err(reason) => Err(Status::unavailable(format!(
                "cannot check whether {} may join cluster set {set:?}: {reason}",
                who.user
            ))),
        }
    }
}

#[tonic::async_trait]
impl KindOps for ManagedClusterOps {
    type Object = ManagedCluster;
    const KIND: RegistrationKind = RegistrationKind::ManagedCluster;

    async fn list(&self, cluster: &str) -> Result<Vec<Arc<ManagedCluster>>, Status> {
        self.index.list(cluster).await
    }

    async fn create(&self, who: &Identity, cluster: ManagedCluster) -> Result<(), Status> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        validate_cluster_name(&name).map_err(|e| {
            tracing::warn!(user = %who.user, %e, "refused a ManagedCluster name");
            Status::invalid_argument(format!("ManagedCluster: {e}"))
        })?;
        self.check_namespace_free(&name).await.inspect_err(|e| {
            tracing::warn!(cluster = %name, user = %who.user, error = %e.message(), "refused a ManagedCluster");
        })?;
        self.check_set_join(who, &cluster).await?;
        let mut cluster = for_create(cluster);
        // Joining asks; accepting is the hub administrator's half of the double opt-in.
        cluster.spec.hub_accepts_client = false;
        cluster.spec.taints.clear();
        cluster.metadata.finalizers = None;
        cluster.metadata.owner_references = None;
        cluster.metadata.generate_name = None;
        cluster.status = None;
        self.api
            .create(&PostParams::default(), &cluster)
            .await
            .map(|_| ())
            .map_err(kube_status)
    }

    async fn update(&self, cluster: ManagedCluster) -> Result<(), Status> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        // Only the client configs, guarded by the version the agent saw when it has one.
        let mut patch = serde_json::json!({
            "spec": {"managedClusterClientConfigs": cluster.spec.managed_cluster_client_configs},
        });
        if let Some(version) = &cluster.metadata.resource_version {
            patch["metadata"] = serde_json::json!({ "resourceVersion": version });
        }
        self.api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(kube_status)
    }

    async fn update_status(&self, cluster: ManagedCluster) -> Result<(), Status> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        self.api
            .replace_status(&name, &PostParams::default(), &cluster)
            .await
            .map(|_| ())
            .map_err(kube_status)
    }
}
