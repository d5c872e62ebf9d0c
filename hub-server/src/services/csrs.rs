//! `certificates.k8s.io.v1.certificatesigningrequests`: an agent asks for its client
//! certificate. The hub creates the CSR under its own identity and records who really asked in
//! the `csr-user` annotation, which the signer trusts on CSRs the hub created.

use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use std::sync::Arc;

use ocm_api::kube::api::PostParams;
use ocm_api::kube::{Api, Client};
use ocm_transport::broker::Identity;
use ocm_transport::registration::RegistrationKind;
use tonic::Status;

use super::{ClusterIndex, KindOps, for_create, kube_status};
use crate::csr::CSR_USER_ANNOTATION;

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
