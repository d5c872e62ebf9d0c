//! `certificates.k8s.io.v1.certificatesigningrequests`: an agent asks for its client
//! certificate. The hub creates the CSR under its own identity and records who really asked in
//! the `csr-user` annotation, which the signer trusts on CSRs the hub created.
//!
//! Because the hub creates it as itself, it relays only what an agent may ask for: a request to
//! the `open-cluster-management.io/grpc` signer whose subject is an agent of the cluster the
//! caller was authorized for, with client-auth usage ([`crate::csr::check_request`]). Any
//! other signer would be asked in the hub's name — Kubernetes' own approver signs a kubelet
//! client certificate for a requester with the hub's rights. And at most
//! [`MAX_PENDING_PER_CLUSTER`] requests of a cluster wait at once, as OCM's agents stop at.

use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use std::sync::Arc;

use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_transport::broker::Identity;
use ocm_transport::registration::RegistrationKind;
use tonic::Status;

use super::{ClusterIndex, KindOps, for_create, kube_status};
use crate::csr::{self, CSR_USER_ANNOTATION};

/// Requests of one cluster that may wait for approval at once (OCM's agents create no more).
pub(crate) const MAX_PENDING_PER_CLUSTER: usize = 10;

/// Whether a request still waits: neither approved nor denied nor failed, nothing issued.
fn pending(csr: &CertificateSigningRequest) -> bool {
    csr.status.as_ref().is_none_or(|status| {
        status.certificate.is_none()
            && status
                .conditions
                .iter()
                .flatten()
                .all(|c| !["Approved", "Denied", "Failed"].contains(&c.type_.as_str()))
    })
}

#[derive(Clone, Debug)]
pub struct CsrOps {
    api: Api<CertificateSigningRequest>,
    index: ClusterIndex<CertificateSigningRequest>,
}

impl CsrOps {
    pub fn new(client: Client, index: ClusterIndex<CertificateSigningRequest>) -> Self {
        Self {
            api: Api::all(client),
            index,
        }
    }
}

#[tonic::async_trait]
impl KindOps for CsrOps {
    type Object = CertificateSigningRequest;
    const KIND: RegistrationKind = RegistrationKind::CertificateSigningRequest;

    async fn list(&self, cluster: &str) -> Result<Vec<Arc<CertificateSigningRequest>>, Status> {
        self.index.list(cluster).await
    }

    async fn create(&self, who: &Identity, csr: CertificateSigningRequest) -> Result<(), Status> {
        let name = csr.metadata.name.clone().unwrap_or_default();
        let request = csr::check_request(&csr).map_err(|refusal| {
            tracing::warn!(user = %who.user, csr = %name, %refusal, "refused to relay a certificate request");
            Status::invalid_argument(format!("CertificateSigningRequest {name}: {refusal}"))
        })?;
        let waiting = self
            .index
            .list(&request.cluster)
            .await?
            .iter()
            .filter(|csr| pending(csr))
            .count();
        if waiting >= MAX_PENDING_PER_CLUSTER {
            tracing::warn!(cluster = %request.cluster, user = %who.user, waiting, "refused a certificate request: too many pending");
            return Err(Status::resource_exhausted(format!(
                "cluster {} already has {waiting} certificate requests waiting for approval",
                request.cluster
            )));
        }
        let mut csr = for_create(csr);
        csr.status = None;
        csr.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CSR_USER_ANNOTATION.to_owned(), who.user.clone());
        // The apiserver fills these from the hub's own identity.
        csr.spec.username = None;
        csr.spec.uid = None;
        csr.spec.groups = None;
        csr.spec.extra = None;
        self.api
            .create(&PostParams::default(), &csr)
            .await
            .map(|_| ())
            .map_err(kube_status)
    }
}
