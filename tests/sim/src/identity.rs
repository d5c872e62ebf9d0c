//! Client identities issued straight from the hub's CA — the shortcut a benchmark takes when it
//! needs more spokes than the CSR flow can admit in its time budget. The certificate is what the
//! hub's signer would issue for the agent's request (same subject: CN
//! `system:open-cluster-management:<cluster>:<agent>`, O the cluster's group and
//! `managed-clusters`; client auth; ECDSA P-256), so the broker authenticates and authorizes the
//! spoke exactly as one that joined through bootstrap.

use ocm_api::k8s_openapi::api::core::v1::Secret;
use ocm_api::kube::{Api, Client};
use ocm_spoke_agent::csr::{AgentName, MANAGED_CLUSTERS_GROUP};
use ocm_transport::tls::PemIdentity;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer as CaIssuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::SimError;
use crate::hub::{HUB_CA_SECRET, HUB_NAMESPACE};

/// The hub's CA, able to sign agents' client certificates.
pub struct Issuer {
    ca: CaIssuer<'static, KeyPair>,
    validity: Duration,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// From the CA certificate and key (PEM).
    pub fn new(ca_pem: &str, key_pem: &str, validity: Duration) -> Result<Self, SimError> {
        let key = KeyPair::from_pem(key_pem)
            .map_err(|e| SimError::Certificate(format!("the CA key: {e}")))?;
        let ca = CaIssuer::from_ca_cert_pem(ca_pem, key)
            .map_err(|e| SimError::Certificate(format!("the CA certificate: {e}")))?;
        Ok(Self { ca, validity })
    }

    /// From the Secret `ocm-hub` keeps its CA in (`open-cluster-management-hub/ocm-hub-ca`).
    pub async fn from_hub(client: &Client, validity: Duration) -> Result<Self, SimError> {
        let secret = Api::<Secret>::namespaced(client.clone(), HUB_NAMESPACE)
            .get(HUB_CA_SECRET)
            .await
            .map_err(SimError::kube("reading the hub CA Secret"))?;
        let data = secret.data.unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .ok_or_else(|| {
                    SimError::Certificate(format!("{HUB_NAMESPACE}/{HUB_CA_SECRET} has no {key}"))
                })
        };
        Self::new(&text("tls.crt")?, &text("tls.key")?, validity)
    }

    /// A new key and the client certificate the hub would issue for `name`.
    pub fn issue(&self, name: &AgentName) -> Result<PemIdentity, SimError> {
        let failed = |what: &str| {
            let what = what.to_owned();
            move |e: rcgen::Error| SimError::Certificate(format!("{what}: {e}"))
        };
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed("the key"))?;
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
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + self.validity;
        let mut serial = [0u8; 16];
        getrandom::fill(&mut serial)
            .map_err(|e| SimError::Certificate(format!("the serial number: {e}")))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params
            .signed_by(&key, &self.ca)
            .map_err(failed("signing"))?;
        Ok(PemIdentity {
            cert_chain: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}
