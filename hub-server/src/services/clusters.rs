//! `cluster.open-cluster-management.io.v1.managedclusters`: an agent creates its ManagedCluster
//! when it joins and reports status; it may update the spec (OCM's hub accepts it, its agents
//! never send it).

use std::sync::Arc;

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_transport::broker::Identity;
use ocm_transport::registration::RegistrationKind;
use tonic::Status;

use super::{ClusterIndex, KindOps, for_create, kube_status};

#[derive(Clone, Debug)]
pub struct ManagedClusterOps {
    api: Api<ManagedCluster>,
    index: ClusterIndex<ManagedCluster>,
}

impl ManagedClusterOps {
    pub fn new(client: Client, index: ClusterIndex<ManagedCluster>) -> Self {
        Self {
            api: Api::all(client),
            index,
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

    async fn create(&self, _who: &Identity, cluster: ManagedCluster) -> Result<(), Status> {
        let mut cluster = for_create(cluster);
        // Joining asks; accepting is the hub administrator's half of the double opt-in.
        cluster.spec.hub_accepts_client = false;
        cluster.status = None;
        self.api
            .create(&PostParams::default(), &cluster)
            .await
            .map(|_| ())
            .map_err(kube_status)
    }

    async fn update(&self, cluster: ManagedCluster) -> Result<(), Status> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        // The agent may not accept itself: keep the hub's decision.
        let current = self.api.get(&name).await.map_err(kube_status)?;
        let mut cluster = cluster;
        cluster.spec.hub_accepts_client = current.spec.hub_accepts_client;
        self.api
            .replace(&name, &PostParams::default(), &cluster)
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
