//! The hub's PKI on a real apiserver: created on first start, reused on the next, the serving
//! certificate reissued (under the same CA) when the host names change, a broken Secret reported
//! by name — and what it issues completes a mutual TLS handshake with the broker's TLS.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::sync::Arc;

use ocm_api::k8s_openapi::api::core::v1::Secret;
use ocm_api::kube::Api;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_hub_server::pki::{PkiConfig, PkiError, ensure};
use ocm_testenv::Cluster;
use ocm_transport::tls::{self, PemIdentity, ReloadableIdentity};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};

/// A client certificate for `user` issued by the hub's CA, as the CSR signer will issue them.
fn client_certificate(pki: &ocm_hub_server::pki::HubPki, user: &str) -> PemIdentity {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, user);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &pki.issuer().unwrap()).unwrap();
    PemIdentity {
        cert_chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// A mutual TLS handshake between the broker's TLS (serving `pki.serving`, trusting the CA for
/// clients) and a client trusting the CA; returns the user the server read from the client.
async fn handshake(pki: &ocm_hub_server::pki::HubPki, client: &PemIdentity) -> String {
    let server =
        tls::server_config(ReloadableIdentity::new(&pki.serving).unwrap(), &pki.ca_pem).unwrap();
    let client =
        tls::client_config(&pki.ca_pem, Some(ReloadableIdentity::new(client).unwrap())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let stream = tokio_rustls::TlsAcceptor::from(Arc::new(server))
            .accept(tcp)
            .await
            .unwrap();
        let leaf = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
        tls::cert_identity(&leaf).unwrap().user
    });
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let _stream = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap();
    accept.await.unwrap()
}

#[tokio::test]
async fn hub_pki_is_created_once_reused_and_reissued_when_hosts_change() {
    let cluster = Cluster::start("pki").await.unwrap();
    let client = cluster.client().unwrap();
    let config = PkiConfig::new(vec!["localhost".into(), "127.0.0.1".into()]);

    let first = ensure(&client, &config).await.unwrap();
    let again = ensure(&client, &config).await.unwrap();
    assert_eq!(again.ca_pem, first.ca_pem, "the CA is reused");
    assert_eq!(
        again.serving.cert_chain, first.serving.cert_chain,
        "so is the serving certificate"
    );

    let agent = client_certificate(&first, "system:open-cluster-management:cluster1:agent");
    assert_eq!(
        handshake(&first, &agent).await,
        "system:open-cluster-management:cluster1:agent"
    );

    let mut moved = config.clone();
    moved.hosts.push("hub.example.com".into());
    let reissued = ensure(&client, &moved).await.unwrap();
    assert_eq!(reissued.ca_pem, first.ca_pem, "same CA");
    assert_ne!(
        reissued.serving.cert_chain, first.serving.cert_chain,
        "new serving certificate"
    );
    // Agents keep trusting the hub: the CA did not change.
    assert_eq!(
        handshake(&reissued, &agent).await,
        "system:open-cluster-management:cluster1:agent"
    );

    // A Secret someone broke is reported by name, not silently replaced.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    secrets
        .patch(
            &config.ca_secret,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"tls.key": ""}})),
        )
        .await
        .unwrap();
    let err = ensure(&client, &config).await.unwrap_err();
    assert_eq!(
        err,
        PkiError::BrokenSecret {
            secret: "ocm-hub-ca".into()
        }
    );
    assert!(
        err.to_string()
            .contains("ocm-hub-ca lacks tls.crt or tls.key")
    );
    cluster.stop();
}
