//! Fuzzing the hub's own decoders of what peers send (pure: no cluster needed): certificate
//! signing requests (PEM and DER, through `check_request`, `requested_common_name` and `issue`)
//! and the webhook's AdmissionReview bodies: ManifestWorks with OCM's work validation, and
//! ManagedClusters and ManagedClusterSetBindings with their judgements and defaults.
//!
//! Inputs are fully random and mutations of valid ones: a real agent's request as PEM text and
//! as DER (re-wrapped in PEM, so the mutation reaches the ASN.1 parser), requests re-signed
//! after their subject was rewritten attribute by attribute (so the mutation also gets past the
//! signature: several organizations, other attribute types and string types, huge, empty,
//! unicode and control-character names), and AdmissionReviews whose JSON is mutated node by
//! node. Every case must not panic, must answer with a value, and must
//! stay within the allocation bound of `transport/tests/support/fuzz.rs`. What the hub relies on
//! is checked too: a request `check_request` accepts names its labelled cluster's agent, and a
//! certificate `issue` signs carries exactly the subject that was asked for, a new cluster is
//! admitted only under a cluster name, and the defaults patch applies to the cluster it is for.
//!
//! `OCM_FUZZ_CASES=100000 cargo test --release -p ocm-hub-server --test fuzz_decoders -- --nocapture`
//! runs a long session; docs/testing.md says more.

#![allow(clippy::unwrap_used)] // a failing case shows the value

#[path = "../../transport/tests/support/fuzz.rs"]
mod fuzz;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::sample::Index;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use serde_json::{Value, json};

use ocm_api::cluster::v1::{ManagedCluster, Taint};
use ocm_api::cluster::v1beta2::CLUSTER_SET_LABEL;
use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::core::DynamicObject;
use ocm_api::kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use ocm_api::registration::validate_cluster_name;
use ocm_api::work::v1::ManifestWork;
use ocm_api::work::validation::{self, Limits};
use ocm_hub_server::csr::{self, CLUSTER_NAME_LABEL, MANAGED_CLUSTERS_GROUP, SIGNER_NAME};
use ocm_hub_server::webhook::clusters::{self, CLUSTER_GROUP, ClusterVerdict};
use ocm_hub_server::webhook::review::{self, Verdict};

use fuzz::{
    Bound, bounded, mutated_bytes, mutated_json, random_bytes, run, run_within, wild_string,
};

// ---------------------------------------------------------------------------------------------
// Certificate signing requests.

const CLUSTER: &str = "cluster1";

fn agent_cn() -> String {
    format!("system:open-cluster-management:{CLUSTER}:agent1")
}

fn agent_orgs() -> Vec<String> {
    vec![
        format!("system:open-cluster-management:{CLUSTER}"),
        MANAGED_CLUSTERS_GROUP.to_owned(),
    ]
}

/// A PKCS#10 request signed by `key`, with the subject attributes given in order (a second
/// organization under its OID, as the agent writes it).
fn request_der(
    key: &KeyPair,
    cn: Option<&str>,
    orgs: &[String],
    other: Option<&str>,
) -> Option<Vec<u8>> {
    let mut name = DistinguishedName::new();
    for (i, org) in orgs.iter().enumerate() {
        let kind = if i == 0 {
            DnType::OrganizationName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 10])
        };
        name.push(kind, org.as_str());
    }
    if let Some(cn) = cn {
        name.push(DnType::CommonName, cn);
    }
    if let Some(other) = other {
        name.push(DnType::LocalityName, other);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = name;
    // rcgen refuses some strings (it is the agent's library, not ours to fuzz): no request then.
    let request = params.serialize_request(key).ok()?;
    Some(request.der().to_vec())
}

fn pem(der: &[u8]) -> Vec<u8> {
    let body = STANDARD.encode(der);
    let mut text = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap());
        text.push('\n');
    }
    text.push_str("-----END CERTIFICATE REQUEST-----\n");
    text.into_bytes()
}

/// Keys are slow to make in a debug build: a few, made once.
static KEYS: LazyLock<Vec<KeyPair>> = LazyLock::new(|| {
    vec![
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
        KeyPair::generate_for(&PKCS_ED25519).unwrap(),
    ]
});

/// The hub CA that signs.
static ISSUER: LazyLock<Issuer<'static, KeyPair>> = LazyLock::new(|| {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "ocm-hub-ca");
    let key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&key).unwrap();
    Issuer::from_ca_cert_pem(&ca.pem(), key).unwrap()
});

/// Valid requests as DER: the agent's own, and others with the right and wrong subjects.
static SEED_DERS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let cn = agent_cn();
    let orgs = agent_orgs();
    let mut seeds = Vec::new();
    for key in KEYS.iter() {
        seeds.extend(request_der(key, Some(&cn), &orgs, None));
    }
    let key = &KEYS[0];
    seeds.extend(request_der(key, Some(&cn), &orgs[..1], None));
    seeds.extend(request_der(key, Some("system:admin"), &orgs, None));
    seeds.extend(request_der(key, None, &orgs, None));
    seeds.extend(request_der(key, Some(&cn), &orgs, Some("Berlin")));
    seeds
});

// Requests re-signed after their subject was rewritten at the DER level, so every mutation gets
// past the signature check into what `issue` does with a subject: several organizations or
// common names, multi-valued RDNs, other attribute types, every ASN.1 string type.

/// A DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
    out.extend(content);
    out
}

/// The top-level TLVs of well-formed DER (rcgen's own output), headers included.
fn tlvs(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let (header, len) = match bytes[1] {
            short @ 0..0x80 => (2, usize::from(short)),
            long => {
                let n = usize::from(long & 0x7f);
                let len = bytes[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
                (2 + n, len)
            }
        };
        out.push(bytes[..header + len].to_vec());
        bytes = &bytes[header + len..];
    }
    out
}

/// The content of a TLV, its header dropped.
fn content_of(tlv: &[u8]) -> &[u8] {
    let header = if tlv[1] < 0x80 {
        2
    } else {
        2 + usize::from(tlv[1] & 0x7f)
    };
    &tlv[header..]
}

/// What a key's request is made of: version, public key and attributes of its request info,
/// and its signature algorithm.
struct RequestParts {
    version: Vec<u8>,
    public_key: Vec<u8>,
    attributes: Vec<u8>,
    algorithm: Vec<u8>,
}

static PARTS: LazyLock<Vec<RequestParts>> = LazyLock::new(|| {
    KEYS.iter()
        .map(|key| {
            let der = request_der(key, Some(&agent_cn()), &agent_orgs(), None).unwrap();
            let outer = tlvs(content_of(&der));
            let info = tlvs(content_of(&outer[0]));
            RequestParts {
                version: info[0].clone(),
                public_key: info[2].clone(),
                attributes: info.get(3).cloned().unwrap_or_default(),
                algorithm: outer[1].clone(),
            }
        })
        .collect()
});

/// One attribute of a subject: its type (an OID TLV), string type and value.
#[derive(Debug, Clone)]
struct Attribute {
    oid: Vec<u8>,
    string_tag: u8,
    value: Vec<u8>,
}

fn attribute() -> impl Strategy<Value = Attribute> {
    let oid = prop_oneof![
        // CN, O, OU, L, emailAddress, then anything
        4 => Just(vec![0x06, 0x03, 0x55, 0x04, 0x03]),
        4 => Just(vec![0x06, 0x03, 0x55, 0x04, 0x0a]),
        1 => Just(vec![0x06, 0x03, 0x55, 0x04, 0x0b]),
        1 => Just(vec![0x06, 0x03, 0x55, 0x04, 0x07]),
        1 => Just(vec![0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(|arcs| tlv(0x06, &arcs)),
    ];
    // UTF8String, PrintableString, IA5String, TeletexString, BMPString, UniversalString,
    // VisibleString, and anything else.
    let string_tag = prop_oneof![
        6 => Just(0x0c_u8),
        2 => Just(0x13),
        1 => Just(0x16),
        1 => Just(0x14),
        1 => Just(0x1e),
        1 => Just(0x1c),
        1 => Just(0x1a),
        1 => any::<u8>(),
    ];
    let value = prop_oneof![
        3 => proptest::sample::select(vec![
            agent_cn(),
            agent_orgs()[0].clone(),
            agent_orgs()[1].clone(),
            format!("system:open-cluster-management:{CLUSTER}:agent:1"),
            "system:masters".to_owned(),
        ])
        .prop_map(String::into_bytes),
        3 => wild_string().prop_map(String::into_bytes),
        1 => wild_string().prop_map(|s| s.encode_utf16().flat_map(u16::to_be_bytes).collect()),
        1 => proptest::collection::vec(any::<u8>(), 0..48),
    ];
    (oid, string_tag, value).prop_map(|(oid, string_tag, value)| Attribute {
        oid,
        string_tag,
        value,
    })
}

/// A PEM request signed by `KEYS[k]` over a subject of `rdns` (each a set of attributes), its
/// request info mutated by `ops` before signing.
fn signed_request(k: usize, rdns: &[Vec<Attribute>], ops: Option<&[fuzz::ByteOp]>) -> Vec<u8> {
    use rcgen::SigningKey as _;
    let parts = &PARTS[k];
    let name: Vec<u8> = rdns
        .iter()
        .flat_map(|set| {
            let atvs: Vec<u8> = set
                .iter()
                .flat_map(|a| tlv(0x30, &[a.oid.clone(), tlv(a.string_tag, &a.value)].concat()))
                .collect();
            tlv(0x31, &atvs)
        })
        .collect();
    let mut info = tlv(
        0x30,
        &[
            parts.version.clone(),
            tlv(0x30, &name),
            parts.public_key.clone(),
            parts.attributes.clone(),
        ]
        .concat(),
    );
    if let Some(ops) = ops {
        info = fuzz::mutate(info, ops);
    }
    let signature = KEYS[k].sign(&info).unwrap();
    let bit_string = tlv(0x03, &[&[0u8][..], &signature].concat());
    pem(&tlv(
        0x30,
        &[info, parts.algorithm.clone(), bit_string].concat(),
    ))
}

/// Requests signed over generated subjects, their request info now and then also mutated as
/// bytes before signing.
fn resigned_request() -> impl Strategy<Value = fuzz::Bytes> {
    (
        0usize..3,
        proptest::collection::vec(proptest::collection::vec(attribute(), 1..3), 0..6),
        proptest::option::weighted(0.2, proptest::collection::vec(fuzz::byte_op(), 1..4)),
    )
        .prop_map(|(k, rdns, ops)| fuzz::Bytes(signed_request(k, &rdns, ops.as_deref())))
}

/// One change to the agent's own subject.
#[derive(Debug, Clone)]
enum SubjectOp {
    Value(Index, Vec<u8>),
    StringType(Index, u8),
    Remove(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Into the set of another RDN (a multi-valued RDN).
    Merge(Index, Index),
    Add(Attribute),
}

fn subject_op() -> impl Strategy<Value = SubjectOp> {
    let value = prop_oneof![
        wild_string().prop_map(String::into_bytes),
        proptest::sample::select(vec![
            agent_cn(),
            agent_orgs()[0].clone(),
            agent_orgs()[1].clone(),
            "system:open-cluster-management:cluster2".to_owned(),
            "system:open-cluster-management:cluster1:".to_owned(),
            "system:open-cluster-management:cluster1:a:b".to_owned(),
        ])
        .prop_map(String::into_bytes),
    ];
    prop_oneof![
        3 => (any::<Index>(), value).prop_map(|(i, v)| SubjectOp::Value(i, v)),
        2 => (any::<Index>(), proptest::sample::select(vec![0x0c_u8, 0x13, 0x16, 0x14, 0x1e, 0x1c, 0x1a, 0x04]))
            .prop_map(|(i, t)| SubjectOp::StringType(i, t)),
        1 => any::<Index>().prop_map(SubjectOp::Remove),
        1 => any::<Index>().prop_map(SubjectOp::Duplicate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| SubjectOp::Swap(a, b)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| SubjectOp::Merge(a, b)),
        1 => attribute().prop_map(SubjectOp::Add),
    ]
}

fn agent_subject() -> Vec<Vec<Attribute>> {
    let attribute = |oid: u8, value: &str| Attribute {
        oid: vec![0x06, 0x03, 0x55, 0x04, oid],
        string_tag: 0x0c,
        value: value.as_bytes().to_vec(),
    };
    let orgs = agent_orgs();
    vec![
        vec![attribute(0x0a, &orgs[0])],
        vec![attribute(0x0a, &orgs[1])],
        vec![attribute(0x03, &agent_cn())],
    ]
}

fn apply_subject_op(rdns: &mut Vec<Vec<Attribute>>, op: SubjectOp) {
    if rdns.is_empty() {
        if let SubjectOp::Add(a) = op {
            rdns.push(vec![a]);
        }
        return;
    }
    let len = rdns.len();
    match op {
        SubjectOp::Value(i, v) => rdns[i.index(len)][0].value = v,
        SubjectOp::StringType(i, t) => rdns[i.index(len)][0].string_tag = t,
        SubjectOp::Remove(i) => {
            rdns.remove(i.index(len));
        }
        SubjectOp::Duplicate(i) => {
            let copy = rdns[i.index(len)].clone();
            rdns.push(copy);
        }
        SubjectOp::Swap(a, b) => rdns.swap(a.index(len), b.index(len)),
        SubjectOp::Merge(a, b) => {
            let (a, b) = (a.index(len), b.index(len));
            if a != b {
                let moved = rdns.remove(a);
                let b = if b > a { b - 1 } else { b };
                rdns[b].extend(moved);
            }
        }
        SubjectOp::Add(a) => rdns.push(vec![a]),
    }
}

/// The agent's own request, re-signed after 0 to 3 changes to its subject: what a slightly
/// wrong or a cunning agent sends, most of it close enough to reach every check.
fn near_agent_request() -> impl Strategy<Value = fuzz::Bytes> {
    (0usize..3, proptest::collection::vec(subject_op(), 0..4)).prop_map(|(k, ops)| {
        let mut rdns = agent_subject();
        for op in ops {
            apply_subject_op(&mut rdns, op);
        }
        fuzz::Bytes(signed_request(k, &rdns, None))
    })
}

#[derive(Debug, Clone)]
struct CsrCase {
    request: fuzz::Bytes,
    label: Option<String>,
    signer: String,
    usages: Option<Vec<String>>,
    expiration_seconds: Option<i32>,
}

impl CsrCase {
    fn object(&self) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some(format!("{CLUSTER}-abcde")),
                labels: self
                    .label
                    .clone()
                    .map(|c| BTreeMap::from([(CLUSTER_NAME_LABEL.to_owned(), c)])),
                ..ObjectMeta::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(self.request.0.clone()),
                signer_name: self.signer.clone(),
                usages: self.usages.clone(),
                expiration_seconds: self.expiration_seconds,
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        }
    }

    fn size(&self) -> usize {
        self.request.len()
            + self.label.as_ref().map_or(0, String::len)
            + self.signer.len()
            + self.usages.iter().flatten().map(String::len).sum::<usize>()
    }
}

/// The request bytes: random, the PEM text mutated, the DER mutated and re-wrapped, random DER
/// wrapped, or a validly signed request over a wild subject.
fn request_bytes() -> impl Strategy<Value = fuzz::Bytes> {
    let seeds = SEED_DERS.clone();
    let pem_seeds: Vec<Vec<u8>> = seeds.iter().map(|d| pem(d)).collect();
    let wild_subject = (
        0usize..3,
        proptest::option::of(wild_string()),
        proptest::collection::vec(wild_string(), 0..4),
        proptest::option::weighted(0.2, wild_string()),
    )
        .prop_map(|(key, cn, orgs, other)| {
            fuzz::Bytes(
                request_der(&KEYS[key], cn.as_deref(), &orgs, other.as_deref())
                    .map(|der| pem(&der))
                    .unwrap_or_default(),
            )
        });
    prop_oneof![
        1 => random_bytes(4096),
        2 => fuzz::mutated_seed(pem_seeds),
        4 => fuzz::mutated_seed(seeds).prop_map(|der| fuzz::Bytes(pem(&der))),
        1 => random_bytes(1024).prop_map(|der| fuzz::Bytes(pem(&der))),
        2 => wild_subject,
        4 => resigned_request(),
        6 => near_agent_request(),
        1 => proptest::sample::select(SEED_DERS.clone()).prop_map(|der| fuzz::Bytes(pem(&der))),
    ]
}

fn csr_case() -> impl Strategy<Value = CsrCase> {
    let label = proptest::option::weighted(
        0.9,
        prop_oneof![4 => Just(CLUSTER.to_owned()), 1 => wild_string()],
    );
    let signer = prop_oneof![8 => Just(SIGNER_NAME.to_owned()), 1 => wild_string()];
    let usage = prop_oneof![
        Just("client auth".to_owned()),
        Just("digital signature".to_owned()),
        Just("key encipherment".to_owned()),
        wild_string(),
    ];
    let agents_usages = vec![
        "digital signature".to_owned(),
        "key encipherment".to_owned(),
        "client auth".to_owned(),
    ];
    let usages = proptest::option::weighted(
        0.9,
        prop_oneof![
            2 => Just(agents_usages),
            1 => proptest::collection::vec(usage, 0..5),
        ],
    );
    let expiration = proptest::option::of(prop_oneof![
        Just(i32::MIN),
        Just(0),
        Just(i32::MAX),
        any::<i32>(),
        600..86_400,
    ]);
    (request_bytes(), label, signer, usages, expiration).prop_map(
        |(request, label, signer, usages, expiration_seconds)| CsrCase {
            request,
            label,
            signer,
            usages,
            expiration_seconds,
        },
    )
}

/// The subject an issued PEM certificate carries: CN (empty when there is none) and
/// organizations, as the broker reads them from a client certificate.
fn issued_subject(pem: &str) -> (String, Vec<String>) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .last()
        .map(|cn| cn.as_str().unwrap().to_owned())
        .unwrap_or_default();
    let orgs = subject
        .iter_organization()
        .map(|o| o.as_str().unwrap().to_owned())
        .collect();
    (cn, orgs)
}

fn requested_organizations(request: &[u8]) -> Vec<String> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::prelude::FromDer as _;
    let (_, block) = x509_parser::pem::parse_x509_pem(request).unwrap();
    let (_, parsed) = X509CertificationRequest::from_der(&block.contents).unwrap();
    parsed
        .certification_request_info
        .subject
        .iter_organization()
        .map(|o| o.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_allocation_bound_is_measured_for_real() {
    fuzz::assert_allocations_are_counted();
}

#[test]
fn certificate_requests_are_checked_or_refused_and_accepted_ones_name_their_clusters_agent() {
    run(
        "CSR check_request / requested_common_name",
        csr_case(),
        |case| {
            let object = case.object();
            bounded(case.size(), || {
                let common_name = csr::requested_common_name(&case.request);
                match csr::check_request(&object) {
                    Ok(request) => {
                        fuzz::reached("accepted");
                        assert_eq!(Some(&request.cluster), case.label.as_ref());
                        assert!(validate_cluster_name(&request.cluster).is_ok());
                        assert!(!request.agent.is_empty() && !request.agent.contains(':'));
                        assert_eq!(
                            request.common_name,
                            format!(
                                "system:open-cluster-management:{}:{}",
                                request.cluster, request.agent
                            )
                        );
                        assert_eq!(common_name.as_ref(), Ok(&request.common_name));
                        for requester in [request.common_name.as_str(), "bootstrap"] {
                            let _ = csr::auto_approval(
                                &request,
                                requester,
                                true,
                                &["bootstrap".to_owned()],
                                false,
                            );
                        }
                    }
                    Err(refusal) => {
                        fuzz::reached("refused");
                        drop(refusal.to_string());
                    }
                }
            });
        },
    );
}

#[test]
fn signing_refuses_what_it_cannot_sign_and_issues_exactly_the_subject_asked_for() {
    // The CA's key is made outside the measured decode.
    LazyLock::force(&ISSUER);
    run("CSR issue", csr_case(), |case| {
        let object = case.object();
        let issued = bounded(case.size(), || {
            csr::issue(&object, &ISSUER, std::time::Duration::from_secs(86_400))
        });
        match issued {
            Ok(certificate) => {
                fuzz::reached("issued");
                let (user, groups) = issued_subject(&certificate);
                assert_eq!(Ok(user), csr::requested_common_name(&case.request));
                assert_eq!(groups, requested_organizations(&case.request));
            }
            Err(refusal) => {
                fuzz::reached("refused");
                drop(refusal.to_string());
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The ManifestWork webhook.

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
           "spec": {"replicas": 2, "template": {"spec": {"containers": [
               {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
}

fn work(manifests: Vec<Value>, executor: bool) -> Value {
    let mut spec = json!({"workload": {"manifests": manifests},
        "deleteOption": {"propagationPolicy": "Foreground"},
        "manifestConfigs": [{"resourceIdentifier": {"group": "apps", "resource": "deployments",
            "name": "web", "namespace": "default"}, "feedbackRules": [{"type": "WellKnownStatus"}],
            "updateStrategy": {"type": "ServerSideApply"}}]});
    if executor {
        spec["executor"] = json!({"subject": {"type": "ServiceAccount",
            "serviceAccount": {"namespace": "ns", "name": "deployer"}}});
    }
    json!({"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
           "metadata": {"name": "web", "namespace": CLUSTER, "uid": "u-1", "generation": 1,
                        "labels": {"a": "b"}, "finalizers": ["f"]},
           "spec": spec})
}

fn review_json(operation: &str, object: Value, old: Option<Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0b7e", "name": "web", "namespace": CLUSTER, "operation": operation,
            "kind": {"group": review::WORK_GROUP, "version": "v1", "kind": "ManifestWork"},
            "resource": {"group": review::WORK_GROUP, "version": "v1", "resource": review::WORK_RESOURCE},
            "requestKind": {"group": review::WORK_GROUP, "version": "v1", "kind": "ManifestWork"},
            "userInfo": {"username": "alice", "groups": ["team", "system:authenticated"],
                         "uid": "u-1", "extra": {"scopes": ["a"]}},
            "object": object, "oldObject": old, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

fn review_seeds() -> Vec<Value> {
    let good = work(vec![deployment("web"), deployment("api")], false);
    let with_executor = work(vec![deployment("web")], true);
    let duplicate = work(vec![deployment("web"), deployment("web")], false);
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "generateName": "c-"}, "data": {"<k>": "&v\u{2028}"}});
    let mut status = review_json("UPDATE", good.clone(), Some(good.clone()));
    status["request"]["subResource"] = json!("status");
    vec![
        review_json("CREATE", good.clone(), None),
        review_json("CREATE", with_executor.clone(), None),
        review_json("UPDATE", with_executor, Some(good.clone())),
        review_json("UPDATE", duplicate, Some(good.clone())),
        review_json("CREATE", work(vec![config_map], false), None),
        review_json("DELETE", Value::Null, Some(good)),
        status,
    ]
}

/// What the webhook server does with a body: `server::parse` (private to the server, so its
/// three steps are repeated here), `review::judge`, the `execute-as` review and refusal it may
/// need, and the answer it writes.
fn admit(body: &[u8]) {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => {
            fuzz::reached("not an AdmissionReview");
            return drop(e.to_string());
        }
    };
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return;
    }
    let Ok(request): Result<AdmissionRequest<DynamicObject>, _> = review.try_into() else {
        return;
    };
    let verdict = review::judge(&request, &Limits::default());
    let response = AdmissionResponse::from(&request);
    let response = match verdict {
        Verdict::Allow => {
            fuzz::reached("allowed");
            response
        }
        Verdict::Deny(status) => {
            fuzz::reached("denied");
            let mut denied = response.deny(&status.message);
            denied.result = status;
            denied
        }
        Verdict::CheckExecuteAs(check) => {
            fuzz::reached("execute-as checked");
            drop(check.review(&request.user_info));
            response.deny(check.denied(&request.user_info).message)
        }
    };
    drop(serde_json::to_vec(&response.into_review()).unwrap());
}

/// The webhook holds the body's JSON values (the AdmissionReview) while it copies the object into
/// a second tree of values and then into a ManifestWork: up to three decodings at once, each
/// within the default bound.
const WEBHOOK_BOUND: Bound = Bound {
    factor: 3 * fuzz::DEFAULT_BOUND.factor,
    slack: fuzz::DEFAULT_BOUND.slack,
};

#[test]
fn admission_review_bodies_are_judged_or_refused_whatever_the_bytes() {
    // The work mutated inside a well-formed review, so every case reaches the judgement.
    let works = vec![
        work(vec![deployment("web"), deployment("api")], true),
        work(vec![deployment("web")], false),
    ];
    let within = (
        proptest::sample::select(vec!["CREATE", "UPDATE"]),
        fuzz::mutated_json_value(works.clone()),
        proptest::option::of(proptest::sample::select(works)),
    )
        .prop_map(|(operation, object, old)| {
            fuzz::Bytes(serde_json::to_vec(&review_json(operation, object, old)).unwrap())
        });
    let inputs = prop_oneof![
        1 => random_bytes(4096),
        4 => mutated_json(review_seeds()),
        4 => within,
        1 => mutated_bytes(serde_json::to_vec(&review_seeds()[0]).unwrap()),
    ];
    run_within(
        "ManifestWork AdmissionReview body (webhook)",
        WEBHOOK_BOUND,
        inputs,
        |body| {
            bounded(body.len(), || admit(&body));
        },
    );
}

#[test]
fn manifest_works_are_validated_or_refused_with_field_errors() {
    let seeds = vec![
        work(vec![deployment("web"), deployment("api")], true),
        work(
            vec![deployment("web"), deployment("web"), json!({"kind": 1})],
            false,
        ),
    ];
    let inputs = prop_oneof![1 => random_bytes(2048), 5 => mutated_json(seeds)];
    run_within("ManifestWork validation", WEBHOOK_BOUND, inputs, |bytes| {
        bounded(bytes.len(), || {
            let Ok(work) = serde_json::from_slice::<ManifestWork>(&bytes) else {
                return;
            };
            match validation::validate(&work, &Limits::default()) {
                Ok(()) => {
                    fuzz::reached("valid");
                    assert!(!work.spec.workload.manifests.is_empty());
                }
                Err(errors) => {
                    fuzz::reached("invalid");
                    assert!(!errors.is_empty());
                    drop(review::invalid("web", &errors));
                }
            }
            std::hint::black_box(validation::manifests_size(&work.spec.workload.manifests));
        });
    });
}

// ---------------------------------------------------------------------------------------------
// The ManagedCluster and ManagedClusterSetBinding webhooks.

fn cluster_json(name: &str, accepted: bool, set: Option<&str>, taint_time: bool) -> Value {
    let mut labels = json!({"env": "prod"});
    if let Some(set) = set {
        labels[CLUSTER_SET_LABEL] = json!(set);
    }
    let mut taint = json!({"key": "k", "value": "v", "effect": "NoSelect"});
    if taint_time {
        taint["timeAdded"] = json!("2025-12-16T06:00:17Z");
    }
    json!({"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
        "metadata": {"name": name, "labels": labels, "uid": "u-2"},
        "spec": {"hubAcceptsClient": accepted, "leaseDurationSeconds": 60,
            "managedClusterClientConfigs": [{"url": "https://c1:6443", "caBundle": "Y2E="}],
            "taints": [taint]}})
}

fn binding_json(name: &str, set: &str) -> Value {
    json!({"apiVersion": "cluster.open-cluster-management.io/v1beta2",
        "kind": "ManagedClusterSetBinding",
        "metadata": {"name": name, "namespace": "ns"}, "spec": {"clusterSet": set}})
}

fn cluster_review(
    kind: &str,
    resource: &str,
    operation: &str,
    object: Value,
    old: Option<Value>,
) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "1", "name": object["metadata"]["name"], "operation": operation,
            "kind": {"group": CLUSTER_GROUP, "version": "v1", "kind": kind},
            "resource": {"group": CLUSTER_GROUP, "version": "v1", "resource": resource},
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object, "oldObject": old,
        }
    })
}

fn cluster_review_seeds() -> Vec<Value> {
    let cluster =
        |op, object, old| cluster_review("ManagedCluster", "managedclusters", op, object, old);
    let binding = |op, object, old| {
        cluster_review(
            "ManagedClusterSetBinding",
            "managedclustersetbindings",
            op,
            object,
            old,
        )
    };
    vec![
        cluster(
            "CREATE",
            cluster_json("cluster1", true, Some("prod"), false),
            None,
        ),
        cluster("CREATE", cluster_json("cluster2", false, None, true), None),
        cluster(
            "UPDATE",
            cluster_json("cluster1", true, Some("dev"), false),
            Some(cluster_json("cluster1", false, Some("prod"), true)),
        ),
        binding("CREATE", binding_json("prod", "prod"), None),
        binding(
            "UPDATE",
            binding_json("prod", "prod"),
            Some(binding_json("prod", "dev")),
        ),
    ]
}

/// What the server does with a body on the cluster routes: the three judgements, the
/// permissions they ask for, and the defaults patch, which must apply to the object it is for.
fn admit_cluster(body: &[u8]) {
    let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) else {
        fuzz::reached("not an AdmissionReview");
        return;
    };
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return;
    }
    let Ok(request): Result<AdmissionRequest<DynamicObject>, _> = review.try_into() else {
        return;
    };
    let is_create = request.operation == Operation::Create;
    for verdict in [
        clusters::judge_cluster(&request),
        clusters::judge_binding(&request),
    ] {
        match verdict {
            ClusterVerdict::Allow => fuzz::reached("allowed"),
            ClusterVerdict::Deny(status) => {
                fuzz::reached("denied");
                drop(serde_json::to_vec(&status).unwrap());
            }
            ClusterVerdict::Check(needed) => {
                fuzz::reached("permissions checked");
                for need in needed {
                    drop(need.review(&request.user_info));
                    drop(need.denied(&request.user_info));
                }
            }
        }
    }
    // A new cluster is admitted only under a cluster name.
    if is_create
        && !matches!(clusters::judge_cluster(&request), ClusterVerdict::Deny(_))
        && let Some(object) = &request.object
    {
        let name = object.metadata.name.clone().unwrap_or_default();
        assert!(validate_cluster_name(&name).is_ok(), "admitted {name:?}");
    }
    let now: ocm_api::k8s_openapi::jiff::Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    match clusters::defaults(&request, now) {
        Ok(Some(ops)) => {
            fuzz::reached("defaulted");
            let patch: json_patch::Patch = serde_json::from_value(ops).unwrap();
            let mut object = serde_json::to_value(request.object.as_ref().unwrap()).unwrap();
            json_patch::patch(&mut object, &patch).unwrap();
            let patched: ManagedCluster = serde_json::from_value(object).unwrap();
            let labels = patched.metadata.labels.unwrap_or_default();
            assert!(labels.contains_key(CLUSTER_SET_LABEL));
            // Each taint's time: kept from before for a taint that was already there, now for a new one.
            // (An old object counts only on UPDATE.)
            let old: Vec<Taint> = request
                .old_object
                .as_ref()
                .filter(|_| request.operation == Operation::Update)
                .map(|old| {
                    let old: ManagedCluster =
                        serde_json::from_value(serde_json::to_value(old).unwrap()).unwrap();
                    old.spec.taints
                })
                .unwrap_or_default();
            for taint in &patched.spec.taints {
                let before = old.iter().find(|t| {
                    t.key == taint.key && t.value == taint.value && t.effect == taint.effect
                });
                match before {
                    Some(before) => assert_eq!(taint.time_added, before.time_added),
                    None => assert_eq!(taint.time_added.as_ref().map(|t| t.0), Some(now)),
                }
            }
        }
        Ok(None) => {}
        Err(status) => drop(status.message),
    }
}

#[test]
fn cluster_and_binding_admission_bodies_are_judged_or_refused_and_defaults_apply() {
    let objects = vec![
        cluster_json("cluster1", true, Some("prod"), false),
        cluster_json("cluster2", false, None, true),
    ];
    let within = (
        proptest::sample::select(vec!["CREATE", "UPDATE"]),
        fuzz::mutated_json_value(objects.clone()),
        proptest::option::of(proptest::sample::select(objects)),
    )
        .prop_map(|(operation, object, old)| {
            let review =
                cluster_review("ManagedCluster", "managedclusters", operation, object, old);
            fuzz::Bytes(serde_json::to_vec(&review).unwrap())
        });
    let inputs = prop_oneof![
        1 => random_bytes(4096),
        4 => mutated_json(cluster_review_seeds()),
        4 => within,
    ];
    run_within(
        "ManagedCluster / binding AdmissionReview body (webhook)",
        WEBHOOK_BOUND,
        inputs,
        |body| {
            bounded(body.len(), || admit_cluster(&body));
        },
    );
}

/// DER lengths of up to 2^64 in front of a few bytes, at any point of a valid request, or as the
/// request's own outer length.
fn claimed_der_lengths() -> impl Strategy<Value = fuzz::Bytes> {
    let long_length = |length: u64| {
        let bytes = length.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let mut out = vec![0x80 | (8 - skip) as u8];
        out.extend(&bytes[skip..]);
        out
    };
    let inside = (
        proptest::sample::select(SEED_DERS.clone()),
        any::<Index>(),
        proptest::sample::select(vec![
            0x30_u8, 0x31, 0x02, 0x03, 0x04, 0x06, 0x0c, 0x13, 0xa0,
        ]),
        (1u64 << 16)..=u64::MAX,
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(move |(seed, cut, tag, length, tail)| {
            let mut der = seed[..cut.index(seed.len() + 1)].to_vec();
            der.push(tag);
            der.extend(long_length(length));
            der.extend(tail);
            fuzz::Bytes(pem(&der))
        });
    let outer = (
        proptest::sample::select(SEED_DERS.clone()),
        (1u64 << 16)..=u64::MAX,
    )
        .prop_map(move |(seed, length)| {
            let mut der = vec![0x30];
            der.extend(long_length(length));
            der.extend(content_of(&seed));
            fuzz::Bytes(pem(&der))
        });
    prop_oneof![inside, outer]
}

#[test]
fn der_lengths_claimed_beyond_the_request_allocate_nothing_for_them() {
    LazyLock::force(&ISSUER);
    // Base64 decoding and parsing cost a few times the PEM; nothing may follow the claim.
    let tight = Bound {
        factor: 4,
        slack: 64 << 10,
    };
    run_within(
        "CSR claimed DER lengths",
        tight,
        claimed_der_lengths(),
        |request| {
            let case = CsrCase {
                request,
                label: Some(CLUSTER.to_owned()),
                signer: SIGNER_NAME.to_owned(),
                usages: None,
                expiration_seconds: None,
            };
            let object = case.object();
            bounded(case.size(), || {
                if csr::requested_common_name(&case.request).is_ok() {
                    fuzz::reached("named");
                }
                drop(csr::check_request(&object));
                if csr::issue(&object, &ISSUER, std::time::Duration::from_secs(3600)).is_ok() {
                    fuzz::reached("issued");
                }
            });
        },
    );
}
