//! Certificate rotation and re-bootstrapping, on a real hub and a real spoke cluster: with
//! short-lived certificates the agent renews before expiry through renewal requests the hub
//! approves automatically (requested by the certificate's own name, not the bootstrap identity),
//! its streams move to the new certificate and the cluster never stops being Available; an agent
//! whose stored certificate the hub does not trust goes back to bootstrapping.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::Duration;

use ocm_api::cluster::v1::{
    CONDITION_AVAILABLE, CONDITION_CERTIFICATE_ROTATED, CONDITION_JOINED, ManagedCluster,
};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::ByteString;
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::k8s_openapi::api::core::v1::Secret;
use ocm_api::kube::api::{ListParams, Patch, PatchParams};
use ocm_api::kube::{Api, Client};
use ocm_api::registration::CSR_USER_ANNOTATION;
use ocm_spoke_agent::agent::{self, AgentConfig};
use ocm_spoke_agent::credentials::{AGENT_NAMESPACE, CredentialStore, HUB_SECRET};
use ocm_spoke_agent::rotation::Validity;
use ocm_testenv::Cluster;
use ocm_transport::tls::PemIdentity;
use support::{BOOTSTRAP_USER, config, start_hub_issuing, user_of};
use tokio_util::sync::CancellationToken;

const AGENT_USER: &str = "system:open-cluster-management:cluster1:agent1";

fn available(cluster: &ManagedCluster, type_: &str) -> Option<ConditionStatus> {
    let conditions = cluster
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    condition::find(&conditions, type_).map(|c| c.status)
}

async fn stored_certificate(spoke: &Client) -> Option<String> {
    let secret = Api::<Secret>::namespaced(spoke.clone(), AGENT_NAMESPACE)
        .get_opt(HUB_SECRET)
        .await
        .unwrap()?;
    let data = secret.data?;
    Some(String::from_utf8(data.get("tls.crt")?.0.clone()).unwrap())
}

/// Requesters of the cluster's CSRs, in creation order, as the hub records them (the CSR
/// objects themselves are created by the hub on the requester's behalf).
async fn requesters(hub: &Client) -> Vec<String> {
    let mut csrs = Api::<CertificateSigningRequest>::all(hub.clone())
        .list(&ListParams::default().labels("open-cluster-management.io/cluster-name=cluster1"))
        .await
        .unwrap()
        .items;
    csrs.sort_by_key(|c| c.metadata.creation_timestamp.clone().map(|t| t.0));
    csrs.into_iter()
        .map(|c| {
            c.metadata
                .annotations
                .and_then(|a| a.get(CSR_USER_ANNOTATION).cloned())
                .unwrap_or_default()
        })
        .collect()
}

async fn accept(clusters: &Api<ManagedCluster>) {
    ocm_testenv::eventually("the ManagedCluster", Duration::from_secs(40), async || {
        clusters.get_opt("cluster1").await.unwrap()
    })
    .await;
    clusters
        .patch(
            "cluster1",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"spec": {"hubAcceptsClient": true, "leaseDurationSeconds": 1}}),
            ),
        )
        .await
        .unwrap();
    ocm_testenv::eventually(
        "Joined and Available",
        Duration::from_secs(40),
        async || {
            let cluster = clusters.get("cluster1").await.unwrap();
            (available(&cluster, CONDITION_JOINED) == Some(ConditionStatus::True)
                && available(&cluster, CONDITION_AVAILABLE) == Some(ConditionStatus::True))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn short_lived_certificates_are_renewed_before_expiry_and_the_cluster_stays_available() {
    let (hub_cluster, spoke_cluster) = tokio::join!(
        Cluster::start("rotation-hub"),
        Cluster::start("rotation-spoke")
    );
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let cancel = CancellationToken::new();
    // 20 s certificates: renewed at 14–18 s; only the bootstrap identity is auto-approved by
    // name, renewals by the signer's own-certificate rule.
    let (port, ca, token) = start_hub_issuing(
        &hub,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(20),
        &cancel,
    )
    .await;
    let running = CancellationToken::new();
    let agent = tokio::spawn(agent::run(
        spoke.clone(),
        AgentConfig {
            bootstrap: config(port, &ca, &token, Duration::from_secs(60)),
            credentials: CredentialStore::new(spoke.clone(), AGENT_NAMESPACE, HUB_SECRET),
            status_every: Duration::from_millis(500),
            claims: ocm_spoke_agent::status::ClaimPolicy::default(),
            work: ocm_spoke_agent::agent::WorkOptions::default(),
        },
        running.clone(),
    ));
    let clusters: Api<ManagedCluster> = Api::all(hub.clone());
    accept(&clusters).await;

    // Watch for 50 s — more than two lifetimes — with a 1 s lease and a 5 s grace: a rotation
    // that broke the agent's streams for longer than that would show as Unknown.
    let mut seen = vec![stored_certificate(&spoke).await.unwrap()];
    let watching = tokio::time::Instant::now();
    while watching.elapsed() < Duration::from_secs(50) {
        let cluster = clusters.get("cluster1").await.unwrap();
        assert_eq!(
            available(&cluster, CONDITION_AVAILABLE),
            Some(ConditionStatus::True),
            "after {:?}: {:?}",
            watching.elapsed(),
            cluster.status
        );
        let current = stored_certificate(&spoke).await.unwrap();
        if seen.last() != Some(&current) {
            seen.push(current);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        seen.len() >= 3,
        "two renewals or more in 50 s of 20 s certificates, saw {}",
        seen.len()
    );
    let now = jiff::Timestamp::now();
    for (previous, next) in seen.iter().zip(&seen[1..]) {
        let (previous, next) = (Validity::of(previous).unwrap(), Validity::of(next).unwrap());
        assert!(
            next.not_after > previous.not_after,
            "each renewal lasts longer"
        );
    }
    assert!(Validity::of(seen.last().unwrap()).unwrap().not_after > now);
    for cert in &seen {
        let identity = PemIdentity {
            cert_chain: cert.clone(),
            key: String::new(),
        };
        assert_eq!(user_of(&identity), AGENT_USER);
    }
    let cluster = clusters.get("cluster1").await.unwrap();
    assert_eq!(
        available(&cluster, CONDITION_CERTIFICATE_ROTATED),
        Some(ConditionStatus::True),
        "the agent says it rotated: {:?}",
        cluster.status
    );
    let requesters = requesters(&hub).await;
    assert_eq!(
        requesters.first().map(String::as_str),
        Some(BOOTSTRAP_USER),
        "{requesters:?}"
    );
    assert!(
        requesters[1..].iter().all(|r| r == AGENT_USER) && requesters.len() >= seen.len(),
        "one bootstrap request, then renewals by the agent's own certificate: {requesters:?}"
    );

    running.cancel();
    agent.await.unwrap().unwrap();
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}

/// A client certificate with the agent's name, issued by a CA the hub has never seen.
fn foreign_identity() -> PemIdentity {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "another-hub-ca");
    let issuer = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, AGENT_USER);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "system:open-cluster-management:cluster1",
    );
    PemIdentity {
        cert_chain: params.signed_by(&key, &issuer).unwrap().pem(),
        key: key.serialize_pem(),
    }
}

#[tokio::test]
async fn a_stored_certificate_the_hub_does_not_trust_sends_the_agent_back_to_bootstrap() {
    let (hub_cluster, spoke_cluster) = tokio::join!(
        Cluster::start("refused-hub"),
        Cluster::start("refused-spoke")
    );
    let (hub_cluster, spoke_cluster) = (hub_cluster.unwrap(), spoke_cluster.unwrap());
    let (hub, spoke) = (
        hub_cluster.client().unwrap(),
        spoke_cluster.client().unwrap(),
    );
    let cancel = CancellationToken::new();
    let (port, ca, token) = start_hub_issuing(
        &hub,
        vec![BOOTSTRAP_USER.into()],
        Duration::from_secs(3600),
        &cancel,
    )
    .await;
    // What a hub reinstalled with a new CA leaves behind: a valid-looking credential of ours.
    let foreign = foreign_identity();
    let store = CredentialStore::new(spoke.clone(), AGENT_NAMESPACE, HUB_SECRET);
    let agent_config = AgentConfig {
        bootstrap: config(port, &ca, &token, Duration::from_secs(60)),
        credentials: store.clone(),
        status_every: Duration::from_millis(500),
        claims: ocm_spoke_agent::status::ClaimPolicy::default(),
        work: ocm_spoke_agent::agent::WorkOptions::default(),
    };
    store
        .store(&agent_config.bootstrap.name, &foreign)
        .await
        .unwrap();
    let running = CancellationToken::new();
    let agent = tokio::spawn(agent::run(spoke.clone(), agent_config, running.clone()));

    let clusters: Api<ManagedCluster> = Api::all(hub.clone());
    accept(&clusters).await;
    let stored = stored_certificate(&spoke).await.unwrap();
    assert_ne!(
        stored, foreign.cert_chain,
        "replaced by the hub's certificate"
    );
    assert_eq!(
        requesters(&hub).await,
        [BOOTSTRAP_USER],
        "joined again with the bootstrap token, once"
    );
    let secret = Api::<Secret>::namespaced(spoke.clone(), AGENT_NAMESPACE)
        .get(HUB_SECRET)
        .await
        .unwrap();
    assert_eq!(
        secret.data.unwrap().get("cluster-name"),
        Some(&ByteString(b"cluster1".to_vec()))
    );

    running.cancel();
    agent.await.unwrap().unwrap();
    cancel.cancel();
    hub_cluster.stop();
    spoke_cluster.stop();
}
