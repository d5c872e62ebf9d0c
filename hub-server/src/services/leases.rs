//! `coordination.k8s.io.v1.leases`: the agent renews its cluster's lease in the cluster
//! namespace; the hub creates the lease, so an update of a missing one is `NotFound`, as OCM's
//! agents expect.

use std::sync::Arc;
use std::time::Duration;

use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_transport::registration::RegistrationKind;
use ocm_transport::status_error;
use tonic::Status;

use super::{ClusterIndex, KindOps, kube_status};
use crate::registration::liveness::{LeaseWrite, Liveness};

/// The lease each cluster's agent renews (OCM's name).
pub use ocm_api::registration::CLUSTER_LEASE;

#[derive(Clone)]
pub struct LeaseOps {
    client: Client,
    index: ClusterIndex<Lease>,
    liveness: Arc<Liveness>,
    write_interval: Duration,
}

impl std::fmt::Debug for LeaseOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseOps").finish_non_exhaustive()
    }
}

impl LeaseOps {
    /// Renewals of the cluster lease go to `liveness`; the Lease object is written at most
    /// every `write_interval` (other leases in the namespace are written through).
    pub fn new(
        client: Client,
        index: ClusterIndex<Lease>,
        liveness: Arc<Liveness>,
        write_interval: Duration,
    ) -> Self {
        Self {
            client,
            index,
            liveness,
            write_interval,
        }
    }
}

#[tonic::async_trait]
impl KindOps for LeaseOps {
    type Object = Lease;
    const KIND: RegistrationKind = RegistrationKind::Lease;

    async fn list(&self, cluster: &str) -> Result<Vec<Arc<Lease>>, Status> {
        self.index.list(cluster).await
    }

    async fn update(&self, lease: Lease) -> Result<(), Status> {
        let namespace = lease.metadata.namespace.clone().unwrap_or_default();
        let name = lease.metadata.name.clone().unwrap_or_default();
        let api = Api::<Lease>::namespaced(self.client.clone(), &namespace);
        if name == CLUSTER_LEASE {
            // A renewal counts from when the hub received it, whatever time the agent wrote:
            // one dated in the future (a clock jump, a hostile agent) would otherwise keep a
            // dead cluster Available until then, and be stored for a restarted hub to believe.
            let now = jiff::Timestamp::now();
            self.liveness.renewed(&namespace, now);
            let write = self
                .liveness
                .lease_write(&namespace, now, self.write_interval);
            if write == LeaseWrite::NotDue {
                return Ok(());
            }
            // Only the renewal matters, and a patch never conflicts with the hub's own writes.
            let patch = serde_json::json!({"spec": {"renewTime": MicroTime(now)}});
            if write == LeaseWrite::Refresh {
                // A refresh of a Lease the hub has written (or read at start): the renewal is
                // answered from memory at once and the object follows in the background. The
                // agent sends its next renewal only after this answer, so awaiting a busy
                // apiserver here (after a restart, behind acceptance's writes) spaced its
                // renewals out until live clusters were taken for lost.
                tokio::spawn(async move {
                    if let Err(err) = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                    {
                        tracing::warn!(cluster = %namespace, %err, "Lease refresh failed; the next renewal after the write interval tries again");
                    }
                });
                return Ok(());
            }
            // The first write is awaited: a missing lease comes back as the apiserver's
            // NotFound, which agents act on.
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(kube_status)?;
            self.liveness.wrote(&namespace, now);
            return Ok(());
        }
        // A PUT would create a missing lease; the hub creates leases, so say NotFound.
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
