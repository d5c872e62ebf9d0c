//! `coordination.k8s.io.v1.leases`: the agent renews its cluster's lease in the cluster
//! namespace; the hub creates the lease, so an update of a missing one is `NotFound`, as OCM's
//! agents expect.

use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::kube::api::{ListParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_transport::registration::{CLUSTER_NAME_LABEL, RegistrationKind};
use ocm_transport::status_error;
use tonic::Status;

use super::{KindOps, kube_status};

#[derive(Clone)]
pub struct LeaseOps {
    client: Client,
}

impl std::fmt::Debug for LeaseOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseOps").finish_non_exhaustive()
    }
}

impl LeaseOps {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[tonic::async_trait]
impl KindOps for LeaseOps {
    type Object = Lease;
    const KIND: RegistrationKind = RegistrationKind::Lease;

    async fn list(&self, cluster: &str) -> Result<Vec<Lease>, Status> {
        let selector = format!("{CLUSTER_NAME_LABEL}={cluster}");
        Ok(Api::<Lease>::namespaced(self.client.clone(), cluster)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_status)?
            .items)
    }

    async fn update(&self, lease: Lease) -> Result<(), Status> {
        let namespace = lease.metadata.namespace.clone().unwrap_or_default();
        let name = lease.metadata.name.clone().unwrap_or_default();
        let api = Api::<Lease>::namespaced(self.client.clone(), &namespace);
        // A PUT would create a missing lease; the hub creates leases, so say NotFound, which
        // OCM's agents act on.
        if api.get_opt(&name).await.map_err(kube_status)?.is_none() {
            let missing = status_error::Status::failure(
                "NotFound",
                404,
                format!("leases.coordination.k8s.io {name:?} not found"),
                Some(status_error::StatusDetails {
                    name: name.clone(),
                    group: "coordination.k8s.io".to_owned(),
                    kind: "leases".to_owned(),
                }),
            );
            return Err(Status::failed_precondition(missing.to_grpc_message()));
        }
        api.replace(&name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(kube_status)
    }
}
