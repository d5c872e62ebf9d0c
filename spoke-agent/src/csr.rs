//! The certificate request an agent makes (OCM's gRPC registration): an ECDSA P-256 key, subject
//! CN `system:open-cluster-management:<cluster>:<agent>` and O the cluster's group and
//! `managed-clusters`, sent as a CSR of signer `open-cluster-management.io/grpc` named
//! `<cluster>-<5 random characters>` and labelled with the cluster.

use std::collections::BTreeMap;

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_transport::registration::CLUSTER_NAME_LABEL;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};

pub use ocm_api::registration::{MANAGED_CLUSTERS_GROUP, SIGNER_NAME};

/// The agent's identity on the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentName {
    pub cluster: String,
    pub agent: String,
}

impl AgentName {
    pub fn common_name(&self) -> String {
        format!(
            "system:open-cluster-management:{}:{}",
            self.cluster, self.agent
        )
    }

    pub fn cluster_group(&self) -> String {
        format!("system:open-cluster-management:{}", self.cluster)
    }
}

/// A request ready to send, and the private key it was made with (PEM, PKCS#8).
#[derive(Clone)]
pub struct Request {
    pub csr: CertificateSigningRequest,
    pub key_pem: String,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("name", &self.csr.metadata.name)
            .finish_non_exhaustive()
    }
}

/// A new key and the CSR for it; `expiration_seconds` asks for a shorter certificate.
pub fn new_request(name: &AgentName, expiration_seconds: Option<i32>) -> Result<Request, CsrError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CsrError(format!("generating the key: {e}")))?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, name.cluster_group());
    // rcgen keeps one value per attribute type; a second organization goes in under its OID.
    subject.push(
        DnType::CustomDnType(vec![2, 5, 4, 10]),
        MANAGED_CLUSTERS_GROUP,
    );
    subject.push(DnType::CommonName, name.common_name());
    params.distinguished_name = subject;
    let pem = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|e| CsrError(format!("encoding the request: {e}")))?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", name.cluster, random_suffix()?)),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_owned(),
                name.cluster.clone(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: SIGNER_NAME.to_owned(),
            usages: Some(vec![
                "digital signature".to_owned(),
                "key encipherment".to_owned(),
                "client auth".to_owned(),
            ]),
            expiration_seconds,
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    Ok(Request {
        csr,
        key_pem: key.serialize_pem(),
    })
}

/// Five characters as Kubernetes' generateName picks them.
fn random_suffix() -> Result<String, CsrError> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).map_err(|e| CsrError(format!("randomness: {e}")))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate request: {0}")]
pub struct CsrError(String);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::prelude::FromDer;

    use super::*;

    #[test]
    fn the_request_names_the_agent_with_both_groups_for_its_cluster() {
        let name = AgentName {
            cluster: "cluster1".into(),
            agent: "a1b2c".into(),
        };
        let request = new_request(&name, Some(3600)).unwrap();
        let csr = &request.csr;
        let csr_name = csr.metadata.name.clone().unwrap();
        assert!(csr_name.starts_with("cluster1-") && csr_name.len() == "cluster1-".len() + 5);
        assert_eq!(
            csr.metadata.labels.as_ref().unwrap()[CLUSTER_NAME_LABEL],
            "cluster1"
        );
        assert_eq!(csr.spec.signer_name, SIGNER_NAME);
        assert_eq!(csr.spec.expiration_seconds, Some(3600));
        let der = x509_parser::pem::parse_x509_pem(&csr.spec.request.0)
            .unwrap()
            .1
            .contents;
        let (_, parsed) = X509CertificationRequest::from_der(&der).unwrap();
        let subject = &parsed.certification_request_info.subject;
        let cn: Vec<_> = subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let o: Vec<_> = subject
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["system:open-cluster-management:cluster1:a1b2c"]);
        assert_eq!(
            o,
            [
                "system:open-cluster-management:cluster1",
                MANAGED_CLUSTERS_GROUP
            ]
        );
        assert!(request.key_pem.contains("PRIVATE KEY"));
    }
}
