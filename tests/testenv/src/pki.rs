//! Certificates and keys of one local cluster: its own CA, the apiserver's serving certificate,
//! client certificates per component, and the service-account signing key.
//!
//! Every cluster gets a fresh CA, so a credential of one cluster is worthless at another: the
//! isolation the tests rely on holds for authentication too.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::error::TestEnvError;

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub(crate) struct CertAndKey {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Identity of a client certificate: CN is the user name, O the groups, as the apiserver reads
/// them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIdentity<'a> {
    pub(crate) user: &'a str,
    pub(crate) groups: &'a [&'a str],
}

/// The cluster's certificate authority. It signs every certificate of the cluster, and
/// kube-controller-manager signs CSRs with it.
pub(crate) struct ClusterCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
    validity: Duration,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new self-signed CA named after the cluster; certificates it issues are valid for
    /// `validity` (from an hour ago, to tolerate clock skew between processes).
    pub(crate) fn generate(cluster: &str, validity: Duration) -> Result<Self, TestEnvError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("CA key"))?;
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("ocm-testenv-{cluster}-ca"), &[])?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, validity)?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(pki_error("CA"))?;
        Ok(Self {
            issuer,
            key_pem,
            validity,
        })
    }

    pub(crate) fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub(crate) fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate for the given DNS names and IP addresses.
    pub(crate) fn issue_server(
        &self,
        common_name: &str,
        alt_names: &[&str],
    ) -> Result<CertAndKey, TestEnvError> {
        let sans: Vec<String> = alt_names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).map_err(pki_error("server SANs"))?;
        params.distinguished_name = name(common_name, &[])?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        self.issue(params)
    }

    /// A client certificate authenticating as `identity`.
    pub(crate) fn issue_client(
        &self,
        identity: ClientIdentity<'_>,
    ) -> Result<CertAndKey, TestEnvError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(identity.user, identity.groups)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Result<CertAndKey, TestEnvError> {
        set_validity(&mut params, self.validity)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(pki_error("certificate"))?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The key pair kube-apiserver signs service-account tokens with (ES256), and its public half
/// that it verifies them with.
#[derive(Clone)]
pub(crate) struct ServiceAccountKey {
    pub(crate) private_pem: String,
    pub(crate) public_pem: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    pub(crate) fn generate() -> Result<Self, TestEnvError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("SA key"))?;
        Ok(Self {
            private_pem: key.serialize_pem(),
            public_pem: key.public_key_pem(),
        })
    }
}

/// OID of the X.520 organizationName attribute (the `O` in a subject).
const ORGANIZATION_NAME_OID: [u64; 4] = [2, 5, 4, 10];

/// A subject with CN `common_name` and one O per organization.
///
/// rcgen keeps one value per attribute type, so a second `O` would silently replace the first.
/// The second is therefore written under its OID as a custom type, which rcgen keys apart; a
/// third cannot be expressed and is refused rather than dropped.
fn name(common_name: &str, organizations: &[&str]) -> Result<DistinguishedName, TestEnvError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    match organizations {
        [] => {}
        [first] => dn.push(DnType::OrganizationName, *first),
        [first, second] => {
            dn.push(DnType::OrganizationName, *first);
            dn.push(
                DnType::CustomDnType(ORGANIZATION_NAME_OID.to_vec()),
                *second,
            );
        }
        _ => {
            return Err(TestEnvError::Pki {
                what: "client certificate subject",
                detail: format!("at most two groups (O) are supported, got {organizations:?}"),
            });
        }
    }
    Ok(dn)
}

/// Explicit validity (rcgen's default runs from 1975 to 4096) and a random serial (rcgen's
/// default is a hash of the public key).
fn set_validity(params: &mut CertificateParams, validity: Duration) -> Result<(), TestEnvError> {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + validity;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| TestEnvError::Pki {
        what: "serial number",
        detail: e.to_string(),
    })?;
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

fn pki_error(what: &'static str) -> impl Fn(rcgen::Error) -> TestEnvError {
    move |e| TestEnvError::Pki {
        what,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pem: &str) -> Vec<u8> {
        let block = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(block)
            .unwrap()
    }

    #[test]
    fn client_certificate_carries_user_as_cn_and_groups_as_o() {
        let ca = ClusterCa::generate("t", Duration::days(1)).unwrap();
        let cert = ca
            .issue_client(ClientIdentity {
                user: "alice",
                groups: &["system:masters", "dev"],
            })
            .unwrap();
        let der = parse(&cert.cert_pem);
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = x509
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let orgs: Vec<_> = x509
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
        assert_eq!(orgs, ["system:masters", "dev"]);
        assert!(x509.issuer().to_string().contains("ocm-testenv-t-ca"));
    }

    #[test]
    fn more_groups_than_a_subject_can_carry_are_refused_not_dropped() {
        let ca = ClusterCa::generate("t", Duration::days(1)).unwrap();
        let err = ca
            .issue_client(ClientIdentity {
                user: "u",
                groups: &["a", "b", "c"],
            })
            .unwrap_err();
        assert!(err.to_string().contains("at most two groups"), "{err}");
    }

    #[test]
    fn certificates_have_random_serials_and_explicit_validity() {
        let ca = ClusterCa::generate("t", Duration::days(2)).unwrap();
        let id = ClientIdentity {
            user: "u",
            groups: &[],
        };
        let a = parse(&ca.issue_client(id).unwrap().cert_pem);
        let b = parse(&ca.issue_client(id).unwrap().cert_pem);
        let (_, a) = x509_parser::parse_x509_certificate(&a).unwrap();
        let (_, b) = x509_parser::parse_x509_certificate(&b).unwrap();
        assert_ne!(a.raw_serial(), b.raw_serial());
        let lifetime = a.validity().not_after.timestamp() - a.validity().not_before.timestamp();
        assert_eq!(lifetime, Duration::days(2).whole_seconds() + 3600);
    }
}
