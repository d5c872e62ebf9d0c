//! The pure half of the hub's CSR signer for `open-cluster-management.io/grpc` (OCM's
//! gRPC registration driver): is a CSR a well-formed agent request for the cluster it is
//! labelled with, may it be approved without a person (a renewal by the certificate's own
//! identity, or a bootstrap by a listed user), and the certificate the hub CA issues for it.
//!
//! The issued certificate carries the request's subject attribute by attribute, so both
//! organizations (the cluster's group and `managed-clusters`) survive: rcgen's own CSR parser
//! keeps one value per attribute type, so the subject is read with x509-parser instead.

use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
};
use time::Duration;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use ocm_api::registration::truncated;
pub use ocm_api::registration::{
    CLUSTER_GROUP_PREFIX, CLUSTER_NAME_LABEL, CSR_USER_ANNOTATION, MANAGED_CLUSTERS_GROUP,
    SIGNER_NAME,
};

const OID_COMMON_NAME: &str = "2.5.4.3";
const OID_ORGANIZATION: &str = "2.5.4.10";

/// The agent a well-formed request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRequest {
    pub cluster: String,
    pub agent: String,
    /// The subject's common name, `system:open-cluster-management:<cluster>:<agent>`.
    pub common_name: String,
}

/// Checks that `csr` is an agent's request for a client certificate of the cluster it is
/// labelled with, as OCM's approver does.
pub fn check_request(csr: &CertificateSigningRequest) -> Result<AgentRequest, CsrRefusal> {
    if csr.spec.signer_name != SIGNER_NAME {
        return Err(CsrRefusal::Signer(truncated(&csr.spec.signer_name, 100)));
    }
    let cluster = csr
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CLUSTER_NAME_LABEL))
        .filter(|c| !c.is_empty())
        .ok_or(CsrRefusal::NoClusterLabel)?
        .clone();
    ocm_api::registration::validate_cluster_name(&cluster).map_err(CsrRefusal::ClusterName)?;
    let usages = csr.spec.usages.clone().unwrap_or_default();
    if !usages.iter().any(|u| u == "client auth")
        || usages.iter().any(|u| {
            !["client auth", "digital signature", "key encipherment"].contains(&u.as_str())
        })
    {
        return Err(CsrRefusal::Usages(usages));
    }
    let subject = request_subject(&csr.spec.request.0)?;
    let cluster_group = format!("{CLUSTER_GROUP_PREFIX}{cluster}");
    let mut organizations = subject.organizations.clone();
    organizations.sort();
    let mut expected = vec![cluster_group.clone(), MANAGED_CLUSTERS_GROUP.to_owned()];
    expected.sort();
    if organizations != expected {
        return Err(CsrRefusal::Organizations {
            cluster,
            found: subject
                .organizations
                .iter()
                .take(4)
                .map(|o| truncated(o, 100))
                .collect(),
        });
    }
    let agent = subject
        .common_name
        .strip_prefix(&format!("{cluster_group}:"))
        .filter(|agent| !agent.is_empty() && !agent.contains(':'))
        .ok_or_else(|| CsrRefusal::CommonName {
            cluster: cluster.clone(),
            found: truncated(&subject.common_name, 200),
        })?
        .to_owned();
    Ok(AgentRequest {
        cluster,
        agent,
        common_name: subject.common_name,
    })
}

/// Why a CSR is approved without a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoApproval {
    /// The agent renews its own certificate: it authenticated as the CN it asks for, and RBAC
    /// lets it `renew` (granted only while its cluster is accepted).
    Renewal,
    /// A bootstrap by a user listed for auto-approval.
    ListedUser,
}

/// Whether `request` (asked for by `requester`) is approved automatically; `None` leaves it to a
/// person (`ocmctl accept`).
///
/// A listed user's request is approved only for a cluster that has not joined yet: once a
/// cluster's agent holds a certificate, a bootstrap credential (shared by every joining agent)
/// asking for that cluster's identity needs a person, or it could take over any joined cluster.
pub fn auto_approval(
    request: &AgentRequest,
    requester: &str,
    may_renew: bool,
    auto_approved_users: &[String],
    cluster_joined: bool,
) -> Option<AutoApproval> {
    if requester == request.common_name && may_renew {
        Some(AutoApproval::Renewal)
    } else if !cluster_joined && auto_approved_users.iter().any(|u| u == requester) {
        Some(AutoApproval::ListedUser)
    } else {
        None
    }
}

/// The client certificate the hub CA issues for an approved, well-formed request: the request's
/// subject and key, client-auth usage, valid (backdated a little for clock skew) until `validity`
/// from now, shortened to `expirationSeconds` when the request asks for less.
pub fn issue(
    csr: &CertificateSigningRequest,
    issuer: &Issuer<'_, KeyPair>,
    validity: std::time::Duration,
) -> Result<String, CsrRefusal> {
    let der = pem_der(&csr.spec.request.0)?;
    let requested = CertificateSigningRequestParams::from_der(&der.as_slice().into())
        .map_err(|e| CsrRefusal::Malformed(format!("signature or encoding: {e}")))?;
    let subject = request_subject(&csr.spec.request.0)?;
    // rcgen holds one value per attribute type and the second organization under a custom type
    // (see `Subject::distinguished_name`): a third would replace the second, and the certificate
    // would name groups the request did not ask for together.
    if subject.organizations.len() > 2 {
        return Err(CsrRefusal::Malformed(format!(
            "{} subject organizations; at most two can be issued",
            subject.organizations.len()
        )));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let mut lifetime = validity;
    if let Some(seconds) = csr.spec.expiration_seconds.filter(|s| *s > 0) {
        lifetime = lifetime.min(std::time::Duration::from_secs(
            seconds.unsigned_abs().into(),
        ));
    }
    let lifetime = Duration::try_from(lifetime)
        .map_err(|e| CsrRefusal::Malformed(format!("lifetime: {e}")))?;
    crate::pki::set_validity(&mut params, lifetime)
        .map_err(|e| CsrRefusal::Malformed(e.to_string()))?;
    let signed = CertificateSigningRequestParams {
        params,
        public_key: requested.public_key,
    }
    .signed_by(issuer)
    .map_err(|e| CsrRefusal::Malformed(format!("signing: {e}")))?;
    Ok(signed.pem())
}

/// A request's subject: its common name and organizations, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Subject {
    common_name: String,
    organizations: Vec<String>,
}

impl Subject {
    /// Both organizations kept: rcgen keeps one value per attribute type, so the second is
    /// written under the organization OID as a custom type, which it keys apart (`issue` refuses
    /// a third, which would replace it).
    fn distinguished_name(&self) -> DistinguishedName {
        let mut name = DistinguishedName::new();
        for (i, organization) in self.organizations.iter().enumerate() {
            let kind = if i == 0 {
                DnType::OrganizationName
            } else {
                DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            name.push(kind, organization.as_str());
        }
        name.push(DnType::CommonName, self.common_name.as_str());
        name
    }
}

fn pem_der(pem: &[u8]) -> Result<Vec<u8>, CsrRefusal> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| CsrRefusal::Malformed(format!("not PEM: {e}")))?;
    if parsed.label != "CERTIFICATE REQUEST" {
        return Err(CsrRefusal::Malformed(format!(
            "PEM block is {:?}, not CERTIFICATE REQUEST",
            parsed.label
        )));
    }
    Ok(parsed.contents)
}

/// The common name a PEM certificate request asks for (what `ocmctl accept` shows an
/// administrator).
pub fn requested_common_name(pem: &[u8]) -> Result<String, CsrRefusal> {
    request_subject(pem).map(|subject| subject.common_name)
}

fn request_subject(pem: &[u8]) -> Result<Subject, CsrRefusal> {
    let der = pem_der(pem)?;
    let (_, request) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CsrRefusal::Malformed(format!("not a PKCS#10 request: {e}")))?;
    let name = &request.certification_request_info.subject;
    let mut subject = Subject {
        common_name: String::new(),
        organizations: Vec::new(),
    };
    for attribute in name.iter_attributes() {
        let value = attribute
            .as_str()
            .map_err(|e| CsrRefusal::Malformed(format!("subject attribute: {e}")))?
            .to_owned();
        match attribute.attr_type().to_id_string().as_str() {
            OID_COMMON_NAME => subject.common_name = value,
            OID_ORGANIZATION => subject.organizations.push(value),
            other => {
                return Err(CsrRefusal::Malformed(format!(
                    "unexpected subject attribute {other}"
                )));
            }
        }
    }
    Ok(subject)
}

/// Why the hub will not sign a CSR; the message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrRefusal {
    #[error("signer {0:?} is not {SIGNER_NAME}")]
    Signer(String),
    #[error("no {CLUSTER_NAME_LABEL} label")]
    NoClusterLabel,
    #[error("{CLUSTER_NAME_LABEL} label: {0}")]
    ClusterName(ocm_api::registration::ClusterNameError),
    #[error(
        "usages {0:?}: need client auth, and only digital signature and key encipherment besides"
    )]
    Usages(Vec<String>),
    #[error(
        "subject organizations {found:?} are not exactly {CLUSTER_GROUP_PREFIX}{cluster} and {MANAGED_CLUSTERS_GROUP}"
    )]
    Organizations { cluster: String, found: Vec<String> },
    #[error("subject common name {found:?} is not {CLUSTER_GROUP_PREFIX}{cluster}:<agent>")]
    CommonName { cluster: String, found: String },
    #[error("malformed request: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use ocm_api::k8s_openapi::ByteString;
    use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use rcgen::{BasicConstraints, IsCa};

    use super::*;

    /// A PKCS#10 request with CN `cn` and the given organizations, as the agent makes it.
    fn request_pem(cn: &str, organizations: &[&str]) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = Subject {
            common_name: cn.to_owned(),
            organizations: organizations.iter().map(|o| (*o).to_owned()).collect(),
        }
        .distinguished_name();
        let key = KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(label: Option<&str>, request: String) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some("cluster1-abcde".into()),
                labels: label
                    .map(|c| BTreeMap::from([(CLUSTER_NAME_LABEL.to_owned(), c.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(request.into_bytes()),
                signer_name: SIGNER_NAME.into(),
                usages: Some(vec![
                    "digital signature".into(),
                    "key encipherment".into(),
                    "client auth".into(),
                ]),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        }
    }

    fn agent_csr(cluster: &str, label: &str) -> CertificateSigningRequest {
        csr(
            Some(label),
            request_pem(
                &format!("system:open-cluster-management:{cluster}:agent1"),
                &[
                    &format!("system:open-cluster-management:{cluster}"),
                    MANAGED_CLUSTERS_GROUP,
                ],
            ),
        )
    }

    #[test]
    fn an_agents_request_for_its_labelled_cluster_is_well_formed() {
        let request = check_request(&agent_csr("cluster1", "cluster1")).unwrap();
        assert_eq!(
            request,
            AgentRequest {
                cluster: "cluster1".into(),
                agent: "agent1".into(),
                common_name: "system:open-cluster-management:cluster1:agent1".into(),
            }
        );
    }

    #[test]
    fn malformed_or_foreign_requests_are_refused_with_the_reason() {
        // Labelled for cluster2 but asking for cluster1's identity.
        let err = check_request(&agent_csr("cluster1", "cluster2")).unwrap_err();
        assert!(matches!(err, CsrRefusal::Organizations { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("system:open-cluster-management:cluster2"),
            "{err}"
        );

        let no_label = csr(None, request_pem("x", &[]));
        assert_eq!(check_request(&no_label), Err(CsrRefusal::NoClusterLabel));

        let mut other_signer = agent_csr("cluster1", "cluster1");
        other_signer.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(matches!(
            check_request(&other_signer),
            Err(CsrRefusal::Signer(_))
        ));

        let mut server_usage = agent_csr("cluster1", "cluster1");
        server_usage.spec.usages = Some(vec!["server auth".into()]);
        assert!(matches!(
            check_request(&server_usage),
            Err(CsrRefusal::Usages(_))
        ));

        let one_group = csr(
            Some("cluster1"),
            request_pem(
                "system:open-cluster-management:cluster1:agent1",
                &["system:open-cluster-management:cluster1"],
            ),
        );
        assert!(matches!(
            check_request(&one_group),
            Err(CsrRefusal::Organizations { .. })
        ));

        let admin = csr(
            Some("cluster1"),
            request_pem(
                "system:admin",
                &[
                    "system:open-cluster-management:cluster1",
                    MANAGED_CLUSTERS_GROUP,
                ],
            ),
        );
        assert!(matches!(
            check_request(&admin),
            Err(CsrRefusal::CommonName { .. })
        ));

        let garbage = csr(
            Some("cluster1"),
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
        );
        assert!(matches!(
            check_request(&garbage),
            Err(CsrRefusal::Malformed(_))
        ));
        let not_pem = csr(Some("cluster1"), "hello".into());
        assert!(matches!(
            check_request(&not_pem),
            Err(CsrRefusal::Malformed(_))
        ));
    }

    #[test]
    fn renewals_by_the_certificate_owner_and_listed_bootstrap_users_are_auto_approved() {
        let request = check_request(&agent_csr("cluster1", "cluster1")).unwrap();
        let own = "system:open-cluster-management:cluster1:agent1";
        assert_eq!(
            auto_approval(&request, own, true, &[], true),
            Some(AutoApproval::Renewal)
        );
        assert_eq!(
            auto_approval(&request, own, false, &[], false),
            None,
            "not while unaccepted"
        );
        let bootstrap =
            "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";
        assert_eq!(
            auto_approval(&request, bootstrap, true, &[], false),
            None,
            "a person decides"
        );
        assert_eq!(
            auto_approval(&request, bootstrap, false, &[bootstrap.to_owned()], false),
            Some(AutoApproval::ListedUser)
        );
        assert_eq!(
            auto_approval(&request, bootstrap, false, &[bootstrap.to_owned()], true),
            None,
            "a joined cluster's identity is not handed to a bootstrap credential"
        );
    }

    #[test]
    fn the_issued_certificate_keeps_both_groups_and_honours_a_shorter_expiration() {
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();

        let mut request = agent_csr("cluster1", "cluster1");
        request.spec.expiration_seconds = Some(600);
        let pem = issue(&request, &issuer, std::time::Duration::from_secs(86_400)).unwrap();
        let der = pem_der_certificate(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let identity = ocm_transport::tls::cert_identity(&der.clone().into()).unwrap();
        assert_eq!(
            identity.user,
            "system:open-cluster-management:cluster1:agent1"
        );
        assert_eq!(
            identity.groups,
            [
                "system:open-cluster-management:cluster1",
                MANAGED_CLUSTERS_GROUP
            ]
        );
        let lifetime = cert.validity().not_after.timestamp()
            - time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((590..=600).contains(&lifetime), "{lifetime}");
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );

        // A request whose signature does not match its key is not signed.
        let mut tampered = request.clone();
        let text = String::from_utf8(tampered.spec.request.0.clone()).unwrap();
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let mut bytes = base64_decode(&body);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        tampered.spec.request = ByteString(
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                base64_encode(&bytes)
            )
            .into_bytes(),
        );
        let err = issue(&tampered, &issuer, std::time::Duration::from_secs(86_400)).unwrap_err();
        assert!(matches!(err, CsrRefusal::Malformed(_)), "{err}");
    }

    #[test]
    fn a_request_with_more_organizations_than_a_certificate_can_carry_is_refused() {
        // Validly signed, with three organizations; rcgen would have kept the first and the
        // last, issuing a certificate of the cluster's group and system:masters without
        // managed-clusters (found by tests/fuzz_decoders.rs). check_request refuses it too.
        const THREE_ORGANIZATIONS: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIIBejCCASECAQAwgb4xMDAuBgNVBAoMJ3N5c3RlbTpvcGVuLWNsdXN0ZXItbWFu
YWdlbWVudDpjbHVzdGVyMTE4MDYGA1UECgwvc3lzdGVtOm9wZW4tY2x1c3Rlci1t
YW5hZ2VtZW50Om1hbmFnZWQtY2x1c3RlcnMxFzAVBgNVBAoMDnN5c3RlbTptYXN0
ZXJzMTcwNQYDVQQDDC5zeXN0ZW06b3Blbi1jbHVzdGVyLW1hbmFnZW1lbnQ6Y2x1
c3RlcjE6YWdlbnQxMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEzDzMqgVmFEdR
SQPEAUvOZkv+K7vnNKi4x8N17KLSArTdjXp8se5v85JYHF6o23EQ+Za4bvryDsMw
jUkk8zWBUaAAMAoGCCqGSM49BAMCA0cAMEQCIFzuj7asBhjOtbZ5OJPXu1BxiGSZ
OLfdRHUqfVjjMaL2AiAc/q+FjX1QhnMa23gFjeSJLrlVRhsuE/NmdUzljhS5hA==
-----END CERTIFICATE REQUEST-----
";
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&ca.pem(), ca_key).unwrap();
        let request = csr(Some("cluster1"), THREE_ORGANIZATIONS.to_owned());
        assert!(matches!(
            check_request(&request),
            Err(CsrRefusal::Organizations { .. })
        ));
        let err = issue(&request, &issuer, std::time::Duration::from_secs(3600)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed request: 3 subject organizations; at most two can be issued"
        );
    }

    fn pem_der_certificate(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }

    fn base64_encode(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}
