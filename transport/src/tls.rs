//! Mutual TLS for the hub's broker and its clients: TLS 1.3 only (what OCM's Go clients speak),
//! ALPN `h2`, certificates swappable at run time, and the caller's identity read from its
//! client certificate (CN = user, O = groups), as OCM's hub authenticates it.
//!
//! Certificates are values here (PEM text); reading them from files is the binaries' job.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};

/// ALPN protocol of gRPC over TLS.
pub const ALPN_H2: &[u8] = b"h2";

/// A certificate chain and its private key, in PEM.
#[derive(Clone)]
pub struct PemIdentity {
    pub cert_chain: String,
    pub key: String,
}

impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemIdentity")
            .field("cert_chain", &self.cert_chain)
            .finish_non_exhaustive()
    }
}

/// A certificate and key that can be replaced while connections use it: new handshakes see the
/// new one at once; established connections keep theirs.
#[derive(Debug)]
pub struct ReloadableIdentity {
    current: ArcSwap<CertifiedKey>,
    provider: Arc<CryptoProvider>,
}

impl ReloadableIdentity {
    pub fn new(identity: &PemIdentity) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(identity, &provider)?;
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(key),
            provider,
        }))
    }

    /// Replaces the certificate; an invalid one is refused and the old one stays.
    pub fn reload(&self, identity: &PemIdentity) -> Result<(), TlsError> {
        let key = certified_key(identity, &self.provider)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for ReloadableIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl ResolvesClientCert for ReloadableIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn certified_key(
    identity: &PemIdentity,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = parse_certs(&identity.cert_chain, "certificate chain")?;
    let key =
        PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).map_err(|e| TlsError::Pem {
            what: "private key",
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    Ok(certified)
}

fn parse_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            detail: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem, "CA bundle")? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
    }
    Ok(roots)
}

/// The broker's TLS: TLS 1.3, ALPN h2, serving `identity`. A client certificate is verified
/// against `client_ca` when presented, but not required, so bootstrap clients can authenticate
/// with a bearer token instead (as OCM's `VerifyClientCertIfGiven`).
pub fn server_config(
    identity: Arc<ReloadableIdentity>,
    client_ca: &str,
) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(client_ca)?),
        Arc::clone(&provider),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// A client's TLS: TLS 1.3, ALPN h2, trusting `server_ca`, presenting `identity` if given, no
/// session resumption (so a rotated certificate is presented on the very next connection).
pub fn client_config(
    server_ca: &str,
    identity: Option<Arc<ReloadableIdentity>>,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots(server_ca)?);
    let mut config = match identity {
        Some(identity) => builder.with_client_cert_resolver(identity),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    // A resumed TLS 1.3 session keeps the client identity it was first opened with, so after a
    // certificate rotation the broker would still see the old certificate. Reconnects are rare;
    // always do the full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// A client's TLS for an MQTT broker: as [`client_config`], without ALPN (MQTT over TLS
/// negotiates none).
pub fn mqtt_client_config(
    server_ca: &str,
    identity: Option<Arc<ReloadableIdentity>>,
) -> Result<ClientConfig, TlsError> {
    let mut config = client_config(server_ca, identity)?;
    config.alpn_protocols.clear();
    Ok(config)
}

/// Who a verified client certificate says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Subject common name.
    pub user: String,
    /// Subject organizations, in order.
    pub groups: Vec<String>,
    /// The end of the certificate's validity.
    pub not_after: Option<std::time::SystemTime>,
}

/// Reads user (CN) and groups (O) from a verified leaf certificate.
pub fn cert_identity(leaf: &CertificateDer<'_>) -> Result<CertIdentity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let subject = cert.subject();
    let text =
        |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| attr.as_str().map(str::to_owned);
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| text(cn).ok())
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| {
            TlsError::Certificate("client certificate has no subject common name".to_owned())
        })?;
    let groups = subject
        .iter_organization()
        .map(|o| text(o).map_err(|e| TlsError::Certificate(e.to_string())))
        .collect::<Result<_, _>>()?;
    let not_after = u64::try_from(cert.validity().not_after.timestamp())
        .ok()
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    Ok(CertIdentity {
        user,
        groups,
        not_after,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("invalid PEM {what}: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("TLS configuration: {0}")]
    Rustls(String),
    #[error("client certificate: {0}")]
    Certificate(String),
}

#[cfg(test)]
mod tests;
