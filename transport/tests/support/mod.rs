//! A throwaway certificate authority for the transport's integration tests.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use ocm_transport::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION};
use ocm_transport::tls::PemIdentity;

pub(crate) struct TestCa(CertifiedIssuer<'static, KeyPair>);

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    pub(crate) fn pem(&self) -> String {
        self.0.pem()
    }

    /// A serving certificate for `localhost` and 127.0.0.1.
    pub(crate) fn server(&self, cn: &str) -> PemIdentity {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, cn, None)
    }

    /// A client certificate with CN `cn` and, optionally, one organization (group).
    pub(crate) fn client(&self, cn: &str, org: Option<&str>) -> PemIdentity {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, cn, org)
    }

    fn issue(&self, mut params: CertificateParams, cn: &str, org: Option<&str>) -> PemIdentity {
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        PemIdentity {
            cert_chain: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A manifestbundles event as the tests exchange it: `resourceid` uid-1, `resourceversion` 2, an
/// empty bundle, and an ID naming type, source and cluster.
#[allow(dead_code)] // not every test crate sends events of this shape
pub(crate) fn event(
    event_type: &str,
    source: &str,
    cluster: &str,
    original_source: &str,
) -> CloudEvent {
    let mut event = CloudEvent {
        id: format!("{source}-{cluster}-{event_type}"),
        source: source.into(),
        spec_version: SPEC_VERSION.into(),
        event_type: event_type.into(),
        time: Some("2025-12-16T06:00:17.771003Z".parse().unwrap()),
        data_content_type: Some(JSON.into()),
        data: Some(br#"{"manifests":[]}"#.to_vec()),
        ..CloudEvent::default()
    };
    for (name, value) in [
        ("clustername", cluster),
        ("originalsource", original_source),
        ("resourceid", "uid-1"),
    ] {
        event
            .extensions
            .insert(name.into(), ExtensionValue::String(value.into()));
    }
    event
        .extensions
        .insert("resourceversion".into(), ExtensionValue::Integer(2));
    event
}
