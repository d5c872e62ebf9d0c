//! Real TLS handshakes on 127.0.0.1 between the server and client configurations.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    fn server(&self, cn: &str) -> PemIdentity {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate with two organizations (rcgen keeps one value per attribute type,
    /// so the second goes under the organizationName OID as a custom type).
    fn client(&self, cn: &str, groups: [&str; 2]) -> PemIdentity {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, groups[0]);
        params
            .distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 10]), groups[1]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> PemIdentity {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        PemIdentity {
            cert_chain: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// What the server saw of one connection.
#[derive(Debug)]
struct Accepted {
    identity: Option<CertIdentity>,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
}

/// Serves one connection per call on a fresh port; returns the port and the outcomes.
async fn serve(
    config: ServerConfig,
) -> (u16, tokio::sync::mpsc::Receiver<Result<Accepted, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let outcome = match acceptor.accept(tcp).await {
                Ok(mut tls) => {
                    let (_, connection) = tls.get_ref();
                    let identity = connection
                        .peer_certificates()
                        .map(|certs| cert_identity(&certs[0]).unwrap());
                    let accepted = Accepted {
                        identity,
                        alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
                        version: connection.protocol_version(),
                    };
                    let _ = tls.write_all(b"ok").await;
                    let _ = tls.shutdown().await;
                    Ok(accepted)
                }
                Err(err) => Err(err.to_string()),
            };
            let _ = tx.send(outcome).await;
        }
    });
    (port, rx)
}

/// Connects and reads the server's greeting; returns the server certificate's CN.
async fn connect(port: u16, config: ClientConfig) -> Result<String, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let server_cn = {
        let (_, connection) = tls.get_ref();
        let leaf = &connection.peer_certificates().unwrap()[0];
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut greeting = Vec::new();
    tls.read_to_end(&mut greeting)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(greeting, b"ok");
    Ok(server_cn)
}

#[tokio::test]
async fn mutual_tls_13_with_h2_reads_user_and_groups_from_the_client_certificate() {
    let ca = Ca::new("hub-ca");
    let server = ReloadableIdentity::new(&ca.server("hub")).unwrap();
    let (port, mut accepted) = serve(server_config(server, &ca.pem()).unwrap()).await;
    let agent = ca.client(
        "system:open-cluster-management:cluster1:agent",
        [
            "system:open-cluster-management:cluster1",
            "system:open-cluster-management:managed-clusters",
        ],
    );
    let client = client_config(&ca.pem(), Some(ReloadableIdentity::new(&agent).unwrap())).unwrap();
    assert_eq!(connect(port, client).await.unwrap(), "hub");
    let seen = accepted.recv().await.unwrap().unwrap();
    let identity = seen.identity.unwrap();
    assert!(
        identity
            .not_after
            .is_some_and(|t| t > std::time::SystemTime::now())
    );
    assert_eq!(
        identity,
        CertIdentity {
            user: "system:open-cluster-management:cluster1:agent".into(),
            groups: vec![
                "system:open-cluster-management:cluster1".into(),
                "system:open-cluster-management:managed-clusters".into()
            ],
            not_after: identity.not_after,
        }
    );
    assert_eq!(seen.alpn.as_deref(), Some(ALPN_H2));
    assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn a_client_without_certificate_connects_for_token_authentication() {
    let ca = Ca::new("hub-ca");
    let server = ReloadableIdentity::new(&ca.server("hub")).unwrap();
    let (port, mut accepted) = serve(server_config(server, &ca.pem()).unwrap()).await;
    connect(port, client_config(&ca.pem(), None).unwrap())
        .await
        .unwrap();
    assert_eq!(accepted.recv().await.unwrap().unwrap().identity, None);
}

#[tokio::test]
async fn certificates_of_another_ca_are_refused_both_ways() {
    let ca = Ca::new("hub-ca");
    let rogue = Ca::new("rogue-ca");
    let server = ReloadableIdentity::new(&ca.server("hub")).unwrap();
    let (port, mut accepted) = serve(server_config(server, &ca.pem()).unwrap()).await;

    // The client trusts another CA: it refuses the hub.
    let err = connect(port, client_config(&rogue.pem(), None).unwrap())
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    assert!(accepted.recv().await.unwrap().is_err());

    // The client presents a certificate the hub's client CA did not sign: the hub refuses it.
    let intruder = ReloadableIdentity::new(&rogue.client("intruder", ["a", "b"])).unwrap();
    let _ = connect(port, client_config(&ca.pem(), Some(intruder)).unwrap()).await;
    let refused = accepted.recv().await.unwrap().unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
}

#[tokio::test]
async fn a_reloaded_server_certificate_is_served_to_new_connections() {
    let ca = Ca::new("hub-ca");
    let server = ReloadableIdentity::new(&ca.server("hub-v1")).unwrap();
    let (port, _accepted) = serve(server_config(Arc::clone(&server), &ca.pem()).unwrap()).await;
    let client = || client_config(&ca.pem(), None).unwrap();
    assert_eq!(connect(port, client()).await.unwrap(), "hub-v1");
    server.reload(&ca.server("hub-v2")).unwrap();
    assert_eq!(connect(port, client()).await.unwrap(), "hub-v2");

    // A broken replacement is refused and the current certificate stays.
    let broken = PemIdentity {
        cert_chain: "not pem".into(),
        key: ca.server("x").key,
    };
    assert!(matches!(server.reload(&broken), Err(TlsError::Pem { .. })));
    assert_eq!(connect(port, client()).await.unwrap(), "hub-v2");
}

#[test]
fn a_certificate_without_common_name_has_no_identity() {
    let ca = Ca::new("hub-ca");
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new(); // rcgen's default has a CN
    let anonymous = ca.issue(params);
    let der = CertificateDer::from_pem_slice(anonymous.cert_chain.as_bytes()).unwrap();
    assert!(matches!(cert_identity(&der), Err(TlsError::Certificate(_))));
}
