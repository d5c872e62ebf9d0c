//! The hub's certificate authority and the serving certificates it issues (the broker's, and
//! through [`ensure_serving`] the admission webhook's). On first start they are created and kept
//! in Secrets in the hub's namespace; later starts (and other replicas) reuse them. A serving
//! certificate is reissued when it no longer covers the configured host names, was issued by
//! another CA, or has less than a fifth of its lifetime left. The CA signs the agents' client
//! certificates (the CSR signer).

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::core::v1::{Namespace, Secret};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_transport::tls::PemIdentity;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::crds::FIELD_MANAGER;

/// Where the hub keeps its PKI and what the serving certificate covers.
#[derive(Debug, Clone)]
pub struct PkiConfig {
    /// The hub's namespace (OCM: `open-cluster-management-hub`).
    pub namespace: String,
    pub ca_secret: String,
    pub serving_secret: String,
    /// DNS names and IP addresses agents use to reach the broker.
    pub hosts: Vec<String>,
    pub ca_validity: Duration,
    pub serving_validity: Duration,
}

impl PkiConfig {
    /// OCM's names, with the given broker host names.
    pub fn new(hosts: Vec<String>) -> Self {
        Self {
            namespace: "open-cluster-management-hub".to_owned(),
            ca_secret: "ocm-hub-ca".to_owned(),
            serving_secret: "ocm-hub-grpc-serving".to_owned(),
            hosts,
            ca_validity: Duration::days(5 * 365),
            serving_validity: Duration::days(365),
        }
    }
}

/// The hub's CA and the broker's serving identity.
#[derive(Clone)]
pub struct HubPki {
    pub ca_pem: String,
    ca_key_pem: String,
    pub serving: PemIdentity,
}

impl std::fmt::Debug for HubPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPki")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl HubPki {
    /// The CA as an issuer, to sign with.
    pub fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&self.ca_key_pem).map_err(pki_error("CA key"))?;
        Issuer::from_ca_cert_pem(&self.ca_pem, key).map_err(pki_error("CA certificate"))
    }
}

/// Loads the hub's PKI from its Secrets, creating what is missing and reissuing a serving
/// certificate that no longer fits.
pub async fn ensure(client: &Client, config: &PkiConfig) -> Result<HubPki, PkiError> {
    ensure_namespace(client, &config.namespace).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let (ca_pem, ca_key_pem) = match read_tls_secret(&secrets, &config.ca_secret).await? {
        Some(ca) => ca,
        None => {
            let (cert, key) = new_ca(config.ca_validity)?;
            // Another replica may have won the race; then its CA is the one.
            match create_tls_secret(&secrets, &config.ca_secret, &cert, &key).await? {
                Created::Yes => {
                    tracing::info!(secret = %config.ca_secret, "hub CA created");
                    (cert, key)
                }
                Created::AlreadyExisted => read_tls_secret(&secrets, &config.ca_secret)
                    .await?
                    .ok_or_else(|| PkiError::Kube {
                        what: "reading the CA Secret after a concurrent create",
                        detail: "it vanished".to_owned(),
                    })?,
            }
        }
    };
    let mut pki = HubPki {
        ca_pem,
        ca_key_pem,
        serving: PemIdentity {
            cert_chain: String::new(),
            key: String::new(),
        },
    };
    pki.serving = ensure_serving(
        client,
        &config.namespace,
        &pki,
        &ServingCertificate {
            secret: config.serving_secret.clone(),
            common_name: "ocm-hub-grpc".to_owned(),
            hosts: config.hosts.clone(),
            validity: config.serving_validity,
        },
    )
    .await?;
    Ok(pki)
}

/// A serving certificate the hub CA issues, kept in a `kubernetes.io/tls` Secret of the hub
/// namespace: the broker's, the admission webhook's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServingCertificate {
    pub secret: String,
    pub common_name: String,
    /// DNS names and IP addresses it must cover.
    pub hosts: Vec<String>,
    pub validity: Duration,
}

/// The serving certificate `wanted` describes: the stored one while it fits (issued by this CA,
/// covering every host, a fifth of its life left), otherwise a new one, stored.
pub async fn ensure_serving(
    client: &Client,
    namespace: &str,
    pki: &HubPki,
    wanted: &ServingCertificate,
) -> Result<PemIdentity, PkiError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let current = read_tls_secret(&secrets, &wanted.secret).await?;
    let reusable = current
        .as_ref()
        .is_some_and(|(cert, _)| serving_fits(cert, &pki.ca_pem, &wanted.hosts));
    match current {
        Some((cert, key)) if reusable => Ok(PemIdentity {
            cert_chain: cert,
            key,
        }),
        _ => {
            let serving = issue_serving(pki, &wanted.common_name, &wanted.hosts, wanted.validity)?;
            apply_tls_secret(&secrets, &wanted.secret, &serving.cert_chain, &serving.key).await?;
            tracing::info!(
                secret = %wanted.secret, hosts = ?wanted.hosts,
                "serving certificate issued"
            );
            Ok(serving)
        }
    }
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<(), PkiError> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&namespace),
        )
        .await
        .map(|_| ())
        .map_err(kube_error("applying the hub namespace"))
}

/// `tls.crt` and `tls.key` of a Secret, if it exists.
async fn read_tls_secret(
    secrets: &Api<Secret>,
    name: &str,
) -> Result<Option<(String, String)>, PkiError> {
    let Some(secret) = secrets
        .get_opt(name)
        .await
        .map_err(kube_error("reading a PKI Secret"))?
    else {
        return Ok(None);
    };
    let data = secret.data.unwrap_or_default();
    let field = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    match (field("tls.crt"), field("tls.key")) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        _ => Err(PkiError::BrokenSecret {
            secret: name.to_owned(),
        }),
    }
}

enum Created {
    Yes,
    AlreadyExisted,
}

fn tls_secret(name: &str, cert: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
                ("tls.key".to_owned(), ByteString(key.as_bytes().to_vec())),
            ]
            .into(),
        ),
        ..Secret::default()
    }
}

async fn create_tls_secret(
    secrets: &Api<Secret>,
    name: &str,
    cert: &str,
    key: &str,
) -> Result<Created, PkiError> {
    match secrets
        .create(&PostParams::default(), &tls_secret(name, cert, key))
        .await
    {
        Ok(_) => Ok(Created::Yes),
        Err(ocm_api::kube::Error::Api(status)) if status.code == 409 => Ok(Created::AlreadyExisted),
        Err(err) => Err(kube_error("creating a PKI Secret")(err)),
    }
}

async fn apply_tls_secret(
    secrets: &Api<Secret>,
    name: &str,
    cert: &str,
    key: &str,
) -> Result<(), PkiError> {
    secrets
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&tls_secret(name, cert, key)),
        )
        .await
        .map(|_| ())
        .map_err(kube_error("writing the serving certificate Secret"))
}

fn new_ca(validity: Duration) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("CA key"))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    let issued_at = OffsetDateTime::now_utc().unix_timestamp();
    name.push(DnType::CommonName, format!("ocm-hub-ca@{issued_at}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, validity)?;
    let cert = params.self_signed(&key).map_err(pki_error("CA"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issue_serving(
    pki: &HubPki,
    common_name: &str,
    hosts: &[String],
    validity: Duration,
) -> Result<PemIdentity, PkiError> {
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(pki_error("host names"))?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Names the issuing CA's key, so a restart can tell whether this CA issued it.
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, validity)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(pki_error("serving key"))?;
    let cert = params
        .signed_by(&key, &pki.issuer()?)
        .map_err(pki_error("serving certificate"))?;
    Ok(PemIdentity {
        cert_chain: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Explicit validity and a random serial. Backdated for clock skew between machines as
/// Kubernetes' signer does (5 minutes), but never by more than a tenth of the lifetime, so a
/// short-lived certificate's holder still sees most of its life ahead when it renews at 80 %.
pub(crate) fn set_validity(
    params: &mut CertificateParams,
    validity: Duration,
) -> Result<(), PkiError> {
    let now = OffsetDateTime::now_utc();
    let backdate: Duration = validity / 10;
    params.not_before = now - backdate.min(Duration::minutes(5));
    params.not_after = now + validity;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(|e| PkiError::Certificate {
        what: "serial number",
        detail: e.to_string(),
    })?;
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// Whether a stored serving certificate can be kept: issued by this CA (its authority key ID is
/// the CA's subject key ID), covering every host, with at least a fifth of its life left.
fn serving_fits(cert_pem: &str, ca_pem: &str, hosts: &[String]) -> bool {
    let (Some(cert), Some(ca)) = (pem_der(cert_pem), pem_der(ca_pem)) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(&cert),
        x509_parser::parse_x509_certificate(&ca),
    ) else {
        return false;
    };
    let ca_key_id = ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(id.0.to_vec())
            }
            _ => None,
        });
    let authority_key_id = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        });
    if ca_key_id.is_none() || ca_key_id != authority_key_id {
        return false;
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if now >= not_after || (not_after - now) * 5 < (not_after - not_before) {
        return false;
    }
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    hosts.iter().all(|host| names.contains(host))
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(parsed.contents)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    #[error("{what}: {detail}")]
    Certificate { what: &'static str, detail: String },
    #[error("{what}: {detail}")]
    Kube { what: &'static str, detail: String },
    #[error(
        "Secret {secret} lacks tls.crt or tls.key; fix or delete it, and the hub creates a new one"
    )]
    BrokenSecret { secret: String },
}

fn pki_error(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |e| PkiError::Certificate {
        what,
        detail: e.to_string(),
    }
}

fn kube_error(what: &'static str) -> impl Fn(ocm_api::kube::Error) -> PkiError {
    move |e| PkiError::Kube {
        what,
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pki() -> HubPki {
        let (ca_pem, ca_key_pem) = new_ca(Duration::days(30)).unwrap();
        HubPki {
            ca_pem,
            ca_key_pem,
            serving: PemIdentity {
                cert_chain: String::new(),
                key: String::new(),
            },
        }
    }

    #[test]
    fn a_serving_certificate_fits_its_ca_hosts_and_remaining_life() {
        let hub = pki();
        let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let serving = issue_serving(&hub, "test", &hosts, Duration::days(10)).unwrap();
        assert!(serving_fits(&serving.cert_chain, &hub.ca_pem, &hosts));
        assert!(serving_fits(&serving.cert_chain, &hub.ca_pem, &hosts[..1]));
        let more = vec!["localhost".to_owned(), "hub.example".to_owned()];
        assert!(
            !serving_fits(&serving.cert_chain, &hub.ca_pem, &more),
            "a host it does not cover"
        );
        let other = pki();
        assert!(
            !serving_fits(&serving.cert_chain, &other.ca_pem, &hosts),
            "another CA's"
        );
        // Valid for an hour from 5 minutes ago: most of its life is left.
        let short = issue_serving(&hub, "test", &hosts, Duration::hours(1)).unwrap();
        assert!(serving_fits(&short.cert_chain, &hub.ca_pem, &hosts));
        // Ending now: too little.
        let ending = issue_serving(&hub, "test", &hosts, Duration::ZERO).unwrap();
        assert!(
            !serving_fits(&ending.cert_chain, &hub.ca_pem, &hosts),
            "nearly expired"
        );
        assert!(!serving_fits("garbage", &hub.ca_pem, &hosts));
    }
}
