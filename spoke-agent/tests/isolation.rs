//! Isolation through the real hub, its real RBAC and real certificates: an agent of cluster A
//! can neither subscribe to nor publish for cluster B; a cluster the hub does not (or no
//! longer) accept(s) cannot read ManifestWorks, while an accepted one can; a bootstrap token
//! that has expired is refused with the reason, one that has not is accepted.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

mod support;

use std::time::Duration;

use ocm_api::cluster::v1::{CONDITION_HUB_ACCEPTED, ManagedCluster};
use ocm_api::condition::{self, ConditionStatus};
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::k8s_openapi::api::core::v1::ServiceAccount;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::Api;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_proto::SubscriptionRequest;
use ocm_spoke_agent::bootstrap;
use ocm_spoke_agent::csr::AgentName;
use ocm_testenv::Cluster;
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::grpc_client::GrpcClient;
use ocm_transport::grpc_config::GrpcClientConfig;
use ocm_transport::registration::{self, RegistrationKind};
use ocm_transport::tls::PemIdentity;
use support::{BOOTSTRAP_USER, config, start_hub};
use tokio_util::sync::CancellationToken;

fn client(port: u16, ca: &str, identity: Option<PemIdentity>, token: Option<String>) -> GrpcClient {
    GrpcClient::new(&GrpcClientConfig {
        url: format!("localhost:{port}"),
        ca_pem: Some(ca.to_owned()),
        client_identity: identity,
        token,
        keep_alive: None,
        server_healthiness_timeout: None,
        proxy: None,
    })
    .unwrap()
}

fn request(cluster: &str, data_type: DataType) -> SubscriptionRequest {
    SubscriptionRequest {
        source: String::new(),
        cluster_name: cluster.to_owned(),
        data_type: data_type.to_string(),
    }
}

async fn join(port: u16, ca: &str, token: &str, cluster: &str) -> PemIdentity {
    let mut join = config(port, ca, token, Duration::from_secs(60));
    join.name = AgentName {
        cluster: cluster.to_owned(),
        agent: "agent1".to_owned(),
    };
    bootstrap::bootstrap(&join, &CancellationToken::new())
        .await
        .unwrap()
}

async fn accepted(clusters: &Api<ManagedCluster>, name: &str) -> bool {
    clusters
        .get(name)
        .await
        .unwrap()
        .status
        .and_then(|s| condition::find(&s.conditions, CONDITION_HUB_ACCEPTED).map(|c| c.status))
        == Some(ConditionStatus::True)
}

#[tokio::test]
async fn clusters_are_isolated_from_each_other_and_unaccepted_ones_from_work() {
    let hub_cluster = Cluster::start("isolation").await.unwrap();
    let kube = hub_cluster.client().unwrap();
    let cancel = CancellationToken::new();
    // Auto-approved bootstrap identity: both clusters are accepted on first sight.
    let (port, ca, token) = start_hub(&kube, vec![BOOTSTRAP_USER.into()], &cancel).await;
    let (a, b) = tokio::join!(
        join(port, &ca, &token, "cluster-a"),
        join(port, &ca, &token, "cluster-b")
    );
    let clusters: Api<ManagedCluster> = Api::all(kube.clone());
    ocm_testenv::eventually("both accepted", Duration::from_secs(30), async || {
        (accepted(&clusters, "cluster-a").await && accepted(&clusters, "cluster-b").await)
            .then_some(())
    })
    .await;
    let (agent_a, agent_b) = (
        client(port, &ca, Some(a), None),
        client(port, &ca, Some(b), None),
    );

    // A in its own cluster: its ManagedCluster and, accepted, its ManifestWorks.
    let works = |cluster: &str| request(cluster, DataType::manifest_bundles());
    let clusters_of = |cluster: &str| request(cluster, DataType::managed_clusters());
    ocm_testenv::eventually(
        "A may read its works",
        Duration::from_secs(30),
        async || agent_a.try_subscribe(works("cluster-a")).await.ok(),
    )
    .await;
    agent_a
        .try_subscribe(clusters_of("cluster-a"))
        .await
        .unwrap();

    // A for B: refused, both ways.
    for refused in [clusters_of("cluster-b"), works("cluster-b")] {
        let status = agent_a.try_subscribe(refused).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    }
    let lease_of_b = Lease {
        metadata: ObjectMeta {
            name: Some("managed-cluster-lease".into()),
            namespace: Some("cluster-b".into()),
            ..ObjectMeta::default()
        },
        ..Lease::default()
    };
    let event = registration::encode(
        RegistrationKind::Lease,
        SubResource::Spec,
        EventAction::UpdateRequest,
        "cluster-b",
        &lease_of_b,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let status = agent_a.publish(&event).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    assert!(
        status.message().contains("cluster-a"),
        "names the caller: {status}"
    );
    // B itself may renew it.
    agent_b.publish(&event).await.unwrap();

    // B denied: its ManifestWorks are closed to it; its own ManagedCluster stays readable (it
    // must see that it was denied).
    clusters
        .patch(
            "cluster-b",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": false}})),
        )
        .await
        .unwrap();
    let status = ocm_testenv::eventually(
        "B's work access to end",
        Duration::from_secs(30),
        async || agent_b.try_subscribe(works("cluster-b")).await.err(),
    )
    .await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    agent_b
        .try_subscribe(clusters_of("cluster-b"))
        .await
        .unwrap();
    agent_a.try_subscribe(works("cluster-a")).await.unwrap();

    cancel.cancel();
    hub_cluster.stop();
}

#[tokio::test]
async fn an_expired_bootstrap_token_is_refused_and_a_current_one_accepted() {
    let hub_cluster = Cluster::start("expired-token").await.unwrap();
    let kube = hub_cluster.client().unwrap();
    let cancel = CancellationToken::new();
    let (port, ca, _) = start_hub(&kube, vec![BOOTSTRAP_USER.into()], &cancel).await;
    let account = Api::<ServiceAccount>::namespaced(kube.clone(), "open-cluster-management")
        .get("agent-registration-bootstrap")
        .await
        .unwrap();
    let now = jiff::Timestamp::now().as_second();
    // What a TokenRequest for the broker's audience would have returned, valid for an hour
    // from `issued`.
    let token = |issued: i64| {
        hub_cluster
            .sign_service_account_token(&serde_json::json!({
                "sub": BOOTSTRAP_USER,
                // Bound to the broker, as `ocmctl get token` binds its tokens.
                "aud": [ocm_api::registration::BROKER_TOKEN_AUDIENCE],
                "iat": issued,
                "nbf": issued,
                "exp": issued + 3600,
                "kubernetes.io": {
                    "namespace": "open-cluster-management",
                    "serviceaccount": {
                        "name": "agent-registration-bootstrap",
                        "uid": account.metadata.uid.clone().unwrap(),
                    },
                },
            }))
            .unwrap()
    };
    let join_as = |token: String| client(port, &ca, None, Some(token));

    let current = join_as(token(now - 60));
    current
        .try_subscribe(request("cluster1", DataType::managed_clusters()))
        .await
        .unwrap();

    let expired = join_as(token(now - 7200));
    let status = expired
        .try_subscribe(request("cluster1", DataType::managed_clusters()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status}");
    assert!(
        expired.credential_refusal().borrow().is_some(),
        "reported as a refused credential"
    );
    // The agent's own bootstrap says so.
    let joining = config(port, &ca, &token(now - 7200), Duration::from_secs(60));
    let started = std::time::Instant::now();
    let err = bootstrap::bootstrap(&joining, &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, bootstrap::BootstrapError::Refused { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the hub refused the bootstrap token"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused at once, not after the join timeout"
    );
    assert!(
        Api::<ManagedCluster>::all(kube.clone())
            .get_opt("cluster1")
            .await
            .unwrap()
            .is_none(),
        "nothing registered with it"
    );
    cancel.cancel();
    hub_cluster.stop();
}
