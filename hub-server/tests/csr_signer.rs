//! The hub's CSR signer on a real apiserver with real RBAC: an agent's own renewal is approved
//! and signed, a listed bootstrap user's request too, an unlisted one waits for a person and is
//! signed once approved, and an approved request for another cluster's identity fails with the
//! reason. Issued certificates carry the agent's user and both groups, signed by the hub CA.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use ocm_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{Api, Client, Config};
use ocm_hub_server::auth::SubjectAccessReviewAuthorizer;
use ocm_hub_server::csr::{CLUSTER_NAME_LABEL, MANAGED_CLUSTERS_GROUP, SIGNER_NAME};
use ocm_hub_server::csr_controller::{self, Signer, SignerConfig};
use ocm_hub_server::pki::{PkiConfig, ensure};
use ocm_testenv::Cluster;
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{Authorizer, Identity};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use tokio_util::sync::CancellationToken;

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

/// A client authenticating as `user` in `groups` (a client certificate of the cluster's CA).
async fn client_as(cluster: &Cluster, user: &str, groups: &[&str]) -> Client {
    let text = cluster.kubeconfig_for(user, groups).unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&text).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn cluster_role(name: &str, rule: PolicyRule) -> ClusterRole {
    ClusterRole {
        metadata: meta(name),
        rules: Some(vec![rule]),
        ..ClusterRole::default()
    }
}

fn binding(name: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(subjects),
    }
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        ..Subject::default()
    }
}

/// An agent's request: CN `system:open-cluster-management:<identity>:agent1`, the cluster's
/// group and `managed-clusters`, labelled for `label`.
fn agent_csr(name: &str, identity: &str, label: &str) -> CertificateSigningRequest {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        format!("system:open-cluster-management:{identity}"),
    );
    dn.push(
        DnType::CustomDnType(vec![2, 5, 4, 10]),
        MANAGED_CLUSTERS_GROUP,
    );
    dn.push(
        DnType::CommonName,
        format!("system:open-cluster-management:{identity}:agent1"),
    );
    params.distinguished_name = dn;
    let key = KeyPair::generate().unwrap();
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                CLUSTER_NAME_LABEL.to_owned(),
                label.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
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

async fn wait_for(
    api: &Api<CertificateSigningRequest>,
    name: &str,
    what: &str,
    done: impl Fn(&CertificateSigningRequest) -> bool,
) -> CertificateSigningRequest {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let csr = api.get(name).await.unwrap();
        if done(&csr) {
            return csr;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "CSR {name}: {what} never happened: {:?}",
            csr.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status.as_ref().is_some_and(|s| s.certificate.is_some())
}

fn condition(csr: &CertificateSigningRequest, type_: &str) -> Option<String> {
    csr.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.message.clone().unwrap_or_default())
}

/// User and groups of an issued certificate, after checking the hub CA issued it.
fn certificate_identity(csr: &CertificateSigningRequest, ca_pem: &str) -> (String, Vec<String>) {
    let pem = &csr.status.as_ref().unwrap().certificate.as_ref().unwrap().0;
    let der = x509_parser::pem::parse_x509_pem(pem).unwrap().1.contents;
    let ca_der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert_eq!(cert.issuer(), ca.subject(), "issued by the hub CA");
    let identity = ocm_transport::tls::cert_identity(&der.into()).unwrap();
    (identity.user, identity.groups)
}

#[tokio::test]
async fn the_signer_approves_renewals_and_listed_users_signs_approved_requests_and_fails_foreign_ones()
 {
    let cluster = Cluster::start("csr").await.unwrap();
    let admin = cluster.client().unwrap();
    // The signer reads a bootstrap request's ManagedCluster (has it joined?).
    ocm_hub_server::crds::install(&admin, &ocm_api::crds::hub(), Duration::from_secs(30))
        .await
        .unwrap();
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let pp = PostParams::default();
    // Agents and bootstrap users may create CSRs; cluster1's agents may renew.
    roles
        .create(
            &pp,
            &cluster_role(
                "csr-requester",
                PolicyRule {
                    api_groups: Some(vec!["certificates.k8s.io".into()]),
                    resources: Some(vec!["certificatesigningrequests".into()]),
                    verbs: vec!["create".into(), "get".into()],
                    ..PolicyRule::default()
                },
            ),
        )
        .await
        .unwrap();
    bindings
        .create(
            &pp,
            &binding(
                "csr-requester",
                vec![
                    subject("Group", MANAGED_CLUSTERS_GROUP),
                    subject("User", "bootstrap-listed"),
                    subject("User", "bootstrap-other"),
                ],
            ),
        )
        .await
        .unwrap();
    roles
        .create(
            &pp,
            &cluster_role(
                "renew-cluster1",
                PolicyRule {
                    api_groups: Some(vec!["register.open-cluster-management.io".into()]),
                    resources: Some(vec!["managedclusters/clientcertificates".into()]),
                    resource_names: Some(vec!["cluster1".into()]),
                    verbs: vec!["renew".into()],
                    ..PolicyRule::default()
                },
            ),
        )
        .await
        .unwrap();
    bindings
        .create(
            &pp,
            &binding(
                "renew-cluster1",
                vec![subject("Group", "system:open-cluster-management:cluster1")],
            ),
        )
        .await
        .unwrap();
    // RBAC reaches the authorizer a moment after the write.
    let authorizer = Arc::new(SubjectAccessReviewAuthorizer::new(
        admin.clone(),
        Duration::ZERO,
    ));
    let agent1 = Identity {
        user: "system:open-cluster-management:cluster1:agent1".into(),
        groups: vec![
            "system:open-cluster-management:cluster1".into(),
            MANAGED_CLUSTERS_GROUP.into(),
        ],
    };
    let renew = AccessRequest {
        verb: "renew",
        group: "register.open-cluster-management.io".into(),
        resource: "managedclusters".into(),
        subresource: Some("clientcertificates"),
        namespace: String::new(),
        name: Some("cluster1".into()),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !authorizer.authorize(&agent1, &renew).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "renew never allowed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pki = ensure(&admin, &PkiConfig::new(vec!["localhost".into()]))
        .await
        .unwrap();
    let signer = Arc::new(Signer::new(
        admin.clone(),
        pki.issuer().unwrap(),
        authorizer,
        SignerConfig {
            validity: Duration::from_secs(3600),
            auto_approved_users: vec!["bootstrap-listed".into()],
            hub_user: None,
        },
    ));
    let cancel = CancellationToken::new();
    let running = tokio::spawn(csr_controller::run(signer, cancel.clone()));

    // An unlisted bootstrap user's request, first: it must still be waiting at the end.
    let other = client_as(&cluster, "bootstrap-other", &[]).await;
    Api::<CertificateSigningRequest>::all(other)
        .create(&pp, &agent_csr("cluster3-waits", "cluster3", "cluster3"))
        .await
        .unwrap();

    // The agent renews its own certificate.
    let agent = client_as(
        &cluster,
        &agent1.user,
        &[
            "system:open-cluster-management:cluster1",
            MANAGED_CLUSTERS_GROUP,
        ],
    )
    .await;
    Api::<CertificateSigningRequest>::all(agent)
        .create(&pp, &agent_csr("cluster1-renewal", "cluster1", "cluster1"))
        .await
        .unwrap();
    let csrs: Api<CertificateSigningRequest> = Api::all(admin.clone());
    let renewed = wait_for(&csrs, "cluster1-renewal", "issuing", issued).await;
    assert!(condition(&renewed, "Approved").unwrap().contains("renewal"));
    assert_eq!(
        certificate_identity(&renewed, &pki.ca_pem),
        (
            "system:open-cluster-management:cluster1:agent1".to_owned(),
            vec![
                "system:open-cluster-management:cluster1".to_owned(),
                MANAGED_CLUSTERS_GROUP.to_owned()
            ]
        )
    );

    // A listed bootstrap user.
    let listed = client_as(&cluster, "bootstrap-listed", &[]).await;
    Api::<CertificateSigningRequest>::all(listed)
        .create(&pp, &agent_csr("cluster2-join", "cluster2", "cluster2"))
        .await
        .unwrap();
    let joined = wait_for(&csrs, "cluster2-join", "issuing", issued).await;
    assert!(condition(&joined, "Approved").unwrap().contains("listed"));

    // Once cluster2 has joined, a listed bootstrap user asking for its identity again (another
    // key) waits for a person: the shared bootstrap credential must not hand a joined
    // cluster's identity out. A request for a cluster that has not joined, sent after it, is
    // still approved — so the one before it has been looked at.
    let clusters: Api<ocm_api::cluster::v1::ManagedCluster> = Api::all(admin.clone());
    clusters
        .create(
            &pp,
            &ocm_api::cluster::v1::ManagedCluster::new(
                "cluster2",
                ocm_api::cluster::v1::ManagedClusterSpec::default(),
            ),
        )
        .await
        .unwrap();
    let joined_condition = serde_json::json!({"status": {"conditions": [{
        "type": "ManagedClusterJoined", "status": "True", "reason": "ManagedClusterJoined",
        "message": "joined", "lastTransitionTime": "2026-01-01T00:00:00Z",
    }]}});
    clusters
        .patch_status(
            "cluster2",
            &PatchParams::default(),
            &Patch::Merge(joined_condition),
        )
        .await
        .unwrap();
    let listed = client_as(&cluster, "bootstrap-listed", &[]).await;
    Api::<CertificateSigningRequest>::all(listed.clone())
        .create(&pp, &agent_csr("cluster2-again", "cluster2", "cluster2"))
        .await
        .unwrap();
    Api::<CertificateSigningRequest>::all(listed)
        .create(&pp, &agent_csr("cluster5-join", "cluster5", "cluster5"))
        .await
        .unwrap();
    wait_for(&csrs, "cluster5-join", "issuing", issued).await;
    let again = csrs.get("cluster2-again").await.unwrap();
    assert_eq!(
        condition(&again, "Approved"),
        None,
        "a joined cluster's identity"
    );

    // The unlisted one waited; a person approves it, and the hub signs it.
    let waiting = csrs.get("cluster3-waits").await.unwrap();
    assert_eq!(condition(&waiting, "Approved"), None);
    assert!(!issued(&waiting));
    let approve = serde_json::json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "ApprovedByAdmin", "message": "ocmctl accept"
    }]}});
    csrs.patch_subresource(
        "approval",
        "cluster3-waits",
        &PatchParams::default(),
        &Patch::Merge(approve.clone()),
    )
    .await
    .unwrap();
    wait_for(&csrs, "cluster3-waits", "issuing after approval", issued).await;

    // Approved by a person, but labelled cluster4 while asking for cluster1's identity.
    csrs.create(&pp, &agent_csr("cluster4-foreign", "cluster1", "cluster4"))
        .await
        .unwrap();
    csrs.patch_subresource(
        "approval",
        "cluster4-foreign",
        &PatchParams::default(),
        &Patch::Merge(approve),
    )
    .await
    .unwrap();
    let failed = wait_for(&csrs, "cluster4-foreign", "failing", |c| {
        condition(c, "Failed").is_some()
    })
    .await;
    assert!(!issued(&failed));
    assert!(
        condition(&failed, "Failed")
            .unwrap()
            .contains("system:open-cluster-management:cluster4"),
        "{:?}",
        failed.status
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
    cluster.stop();
}
