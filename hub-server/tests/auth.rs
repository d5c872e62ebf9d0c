//! The broker's authentication and authorization against a real kube-apiserver: TokenReview for
//! bearer tokens, SubjectAccessReview with OCM's mapping against real RBAC, and decisions cached
//! for the configured time only.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::time::Duration;

use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use ocm_api::k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use ocm_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{DeleteParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_hub_server::auth::{SubjectAccessReviewAuthorizer, TokenReviewAuthenticator};
use ocm_testenv::Cluster;
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{Authorizer, Identity, TokenAuthenticator};

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

async fn namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(name, None),
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
}

fn agent(cluster: &str) -> Identity {
    Identity {
        user: format!("system:open-cluster-management:{cluster}:agent"),
        groups: vec![
            format!("system:open-cluster-management:{cluster}"),
            "system:open-cluster-management:managed-clusters".into(),
        ],
    }
}

fn work_status_update(cluster: &str) -> AccessRequest {
    AccessRequest {
        verb: "update",
        group: "work.open-cluster-management.io".into(),
        resource: "manifestworks".into(),
        subresource: Some("status"),
        namespace: cluster.into(),
        name: None,
    }
}

/// Polls `authorizer` until it answers `expected` (RBAC reaches the authorizer through
/// informers, a moment after the write).
async fn until(
    authorizer: &SubjectAccessReviewAuthorizer,
    who: &Identity,
    request: &AccessRequest,
    expected: bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while authorizer.authorize(who, request).await.unwrap() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "RBAC never answered {expected} for {request:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn access_follows_rbac_with_ocms_mapping_and_decisions_last_only_the_cache_time() {
    let cluster = Cluster::start("authz").await.unwrap();
    let client = cluster.client().unwrap();
    for name in ["cluster1", "cluster2"] {
        namespace(&client, name).await;
    }
    // What OCM's registration grants an accepted cluster's agents in its namespace, in part.
    Api::<Role>::namespaced(client.clone(), "cluster1")
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("work-agent", Some("cluster1")),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["work.open-cluster-management.io".into()]),
                    resources: Some(vec!["manifestworks/status".into()]),
                    verbs: vec!["update".into(), "patch".into()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "cluster1");
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta("work-agent", Some("cluster1")),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "work-agent".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "Group".into(),
                    name: "system:open-cluster-management:cluster1".into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();

    let uncached = SubjectAccessReviewAuthorizer::new(client.clone(), Duration::ZERO);
    until(
        &uncached,
        &agent("cluster1"),
        &work_status_update("cluster1"),
        true,
    )
    .await;
    // Another cluster's agent, or this agent in another cluster's namespace: denied.
    assert!(
        !uncached
            .authorize(&agent("cluster2"), &work_status_update("cluster1"))
            .await
            .unwrap()
    );
    assert!(
        !uncached
            .authorize(&agent("cluster1"), &work_status_update("cluster2"))
            .await
            .unwrap()
    );
    // The status subresource was granted, not the work itself.
    let mut spec_update = work_status_update("cluster1");
    spec_update.subresource = None;
    assert!(
        !uncached
            .authorize(&agent("cluster1"), &spec_update)
            .await
            .unwrap()
    );

    let cached = SubjectAccessReviewAuthorizer::new(client.clone(), Duration::from_secs(2));
    assert!(
        cached
            .authorize(&agent("cluster1"), &work_status_update("cluster1"))
            .await
            .unwrap()
    );
    bindings
        .delete("work-agent", &DeleteParams::default())
        .await
        .unwrap();
    until(
        &uncached,
        &agent("cluster1"),
        &work_status_update("cluster1"),
        false,
    )
    .await;
    assert!(
        cached
            .authorize(&agent("cluster1"), &work_status_update("cluster1"))
            .await
            .unwrap(),
        "within the cache time the earlier decision stands"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        !cached
            .authorize(&agent("cluster1"), &work_status_update("cluster1"))
            .await
            .unwrap(),
        "after the cache time the revocation is seen"
    );
    cluster.stop();
}

#[tokio::test]
async fn bearer_tokens_are_checked_with_a_token_review_and_revocation_is_seen() {
    let cluster = Cluster::start("authn").await.unwrap();
    let client = cluster.client().unwrap();
    namespace(&client, "open-cluster-management").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "open-cluster-management");
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("agent-registration-bootstrap", None),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let token_for = |audiences: Vec<String>| {
        let accounts = accounts.clone();
        async move {
            accounts
                .create_token_request(
                    "agent-registration-bootstrap",
                    &PostParams::default(),
                    &TokenRequest {
                        spec: TokenRequestSpec {
                            audiences,
                            expiration_seconds: Some(3600),
                            ..TokenRequestSpec::default()
                        },
                        ..TokenRequest::default()
                    },
                )
                .await
                .unwrap()
                .status
                .unwrap()
                .token
        }
    };
    let broker = vec![ocm_api::registration::BROKER_TOKEN_AUDIENCE.to_owned()];
    let token = token_for(broker.clone()).await;
    let apiserver_token = token_for(vec![]).await;

    // Bound to the broker's audience: the hub takes it, the hub's apiserver does not.
    let authenticator =
        TokenReviewAuthenticator::new(client.clone(), Duration::ZERO, broker.clone());
    let err = authenticator
        .authenticate(&apiserver_token)
        .await
        .unwrap_err();
    assert!(err.starts_with("token not authenticated"), "{err}");
    let mut as_token = cluster.kube_config().clone();
    as_token.auth_info = ocm_api::kube::config::AuthInfo {
        token: Some(token.clone().into()),
        ..Default::default()
    };
    let direct = Client::try_from(as_token).unwrap();
    let refused = Api::<ServiceAccount>::namespaced(direct, "open-cluster-management")
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ocm_api::kube::Error::Api(status) if status.code == 401),
        "the bootstrap token is no apiserver credential: {refused:?}"
    );
    // With no audience configured, the apiserver's own, as OCM's hub reviews tokens.
    let any = TokenReviewAuthenticator::new(client.clone(), Duration::ZERO, vec![]);
    any.authenticate(&apiserver_token).await.unwrap();

    let who = authenticator.authenticate(&token).await.unwrap();
    assert_eq!(
        who.user,
        "system:serviceaccount:open-cluster-management:agent-registration-bootstrap"
    );
    assert!(
        who.groups
            .iter()
            .any(|g| g == "system:serviceaccounts:open-cluster-management"),
        "{who:?}"
    );
    // One signature character changed, far from the end (the last one's low bits are padding
    // that decoders may ignore), to a different character.
    let at = token.len() - 10;
    let replacement = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
    assert_ne!(forged, token);
    let err = authenticator.authenticate(&forged).await.unwrap_err();
    assert!(err.starts_with("token not authenticated"), "{err}");

    // Deleting the ServiceAccount revokes its tokens.
    accounts
        .delete("agent-registration-bootstrap", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while authenticator.authenticate(&token).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a revoked token still authenticates"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop();
}

/// Decisions are kept for ten minutes here, yet a hand-made change of a RoleBinding or of a
/// ClusterRoleBinding applies within seconds: the hub watches RBAC and drops what it affects.
#[tokio::test]
async fn long_cached_grants_are_dropped_when_a_role_binding_or_cluster_role_binding_goes() {
    let cluster = Cluster::start("authzwatch").await.unwrap();
    let client = cluster.client().unwrap();
    for name in ["cluster1", "cluster2"] {
        namespace(&client, name).await;
    }
    let authorizer = std::sync::Arc::new(SubjectAccessReviewAuthorizer::new(
        client.clone(),
        Duration::from_secs(600),
    ));
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ocm_hub_server::rbac_changes::run(
        client.clone(),
        std::sync::Arc::clone(&authorizer),
        ocm_hub_server::rbac_index::RbacIndex::default(),
        cancel.clone(),
    ));
    let rule = PolicyRule {
        api_groups: Some(vec!["work.open-cluster-management.io".into()]),
        resources: Some(vec!["manifestworks/status".into()]),
        verbs: vec!["update".into()],
        ..PolicyRule::default()
    };
    let group = |cluster: &str| Subject {
        kind: "Group".into(),
        name: format!("system:open-cluster-management:{cluster}"),
        api_group: Some("rbac.authorization.k8s.io".into()),
        ..Subject::default()
    };
    Api::<Role>::namespaced(client.clone(), "cluster1")
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("by-hand", Some("cluster1")),
                rules: Some(vec![rule.clone()]),
            },
        )
        .await
        .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "cluster1");
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta("by-hand", Some("cluster1")),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "by-hand".into(),
                },
                subjects: Some(vec![group("cluster1")]),
            },
        )
        .await
        .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: meta("by-hand", None),
                rules: Some(vec![rule]),
                ..ClusterRole::default()
            },
        )
        .await
        .unwrap();
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    cluster_bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: meta("by-hand", None),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "by-hand".into(),
                },
                subjects: Some(vec![group("cluster2")]),
            },
        )
        .await
        .unwrap();
    for cluster in ["cluster1", "cluster2"] {
        until(
            &authorizer,
            &agent(cluster),
            &work_status_update(cluster),
            true,
        )
        .await;
    }
    // Past the few seconds right after a change, grants are kept for the full ten minutes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for cluster in ["cluster1", "cluster2"] {
        assert!(
            authorizer
                .authorize(&agent(cluster), &work_status_update(cluster))
                .await
                .unwrap()
        );
    }

    bindings
        .delete("by-hand", &DeleteParams::default())
        .await
        .unwrap();
    until(
        &authorizer,
        &agent("cluster1"),
        &work_status_update("cluster1"),
        false,
    )
    .await;
    cluster_bindings
        .delete("by-hand", &DeleteParams::default())
        .await
        .unwrap();
    until(
        &authorizer,
        &agent("cluster2"),
        &work_status_update("cluster2"),
        false,
    )
    .await;
    cancel.cancel();
    cluster.stop();
}

/// Every request an agent's Publish and Subscribe map to, about `cluster` and in its
/// namespace, and some about another cluster or with a name.
fn agent_requests(cluster: &str, other: &str) -> Vec<AccessRequest> {
    let mut requests = Vec::new();
    let kinds: [(&str, &str, Option<&'static str>, bool); 8] = [
        (
            "cluster.open-cluster-management.io",
            "managedclusters",
            None,
            false,
        ),
        (
            "cluster.open-cluster-management.io",
            "managedclusters",
            Some("status"),
            false,
        ),
        (
            "certificates.k8s.io",
            "certificatesigningrequests",
            None,
            false,
        ),
        ("coordination.k8s.io", "leases", None, true),
        ("", "events", None, true),
        ("events.k8s.io", "events", None, true),
        (
            "work.open-cluster-management.io",
            "manifestworks",
            None,
            true,
        ),
        (
            "work.open-cluster-management.io",
            "manifestworks",
            Some("status"),
            true,
        ),
    ];
    for (group, resource, subresource, namespaced) in kinds {
        for verb in [
            "get", "list", "watch", "create", "update", "patch", "delete",
        ] {
            for namespace in [cluster, other] {
                for name in [None, Some(cluster), Some(other)] {
                    requests.push(AccessRequest {
                        verb,
                        group: group.into(),
                        resource: resource.into(),
                        subresource,
                        namespace: if namespaced {
                            namespace.into()
                        } else {
                            String::new()
                        },
                        name: name.map(str::to_owned),
                    });
                }
            }
        }
    }
    requests
}

#[tokio::test]
async fn the_hubs_rbac_index_allows_what_the_apiserver_allows_for_ocms_grants() {
    use ocm_hub_server::rbac_index::RbacIndex;
    use ocm_hub_server::registration::rbac;

    let cluster = Cluster::start("authz-index").await.unwrap();
    let client = cluster.client().unwrap();
    // OCM's grants: c1 accepted, c2 not (its ClusterRole lets it read its cluster only).
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for role in [rbac::shared_registration_role(), rbac::shared_work_role()] {
        cluster_roles
            .create(&PostParams::default(), &role)
            .await
            .unwrap();
    }
    for (name, accepted) in [("c1", true), ("c2", false)] {
        namespace(&client, name).await;
        cluster_roles
            .create(&PostParams::default(), &rbac::cluster_role(name, accepted))
            .await
            .unwrap();
        cluster_bindings
            .create(&PostParams::default(), &rbac::cluster_role_binding(name))
            .await
            .unwrap();
        if accepted {
            let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), name);
            for binding in [
                rbac::registration_role_binding(name),
                rbac::work_role_binding(name),
            ] {
                bindings
                    .create(&PostParams::default(), &binding)
                    .await
                    .unwrap();
            }
        }
    }
    let reviews = std::sync::Arc::new(SubjectAccessReviewAuthorizer::new(
        client.clone(),
        Duration::ZERO,
    ));
    let index = RbacIndex::default();
    let cancel = tokio_util::sync::CancellationToken::new();
    tokio::spawn(ocm_hub_server::rbac_changes::run(
        client.clone(),
        std::sync::Arc::clone(&reviews),
        index.clone(),
        cancel.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !index.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the index never listed RBAC"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Request by request, the index and the apiserver agree (RBAC reaches the apiserver's
    // authorizer through its informers: the first disagreement is retried for a while).
    let mut allowed = 0;
    for (who, other) in [("c1", "c2"), ("c2", "c1")] {
        for request in agent_requests(who, other) {
            let local = index.allows(&agent(who), &request);
            until(&reviews, &agent(who), &request, local).await;
            allowed += usize::from(local);
        }
    }
    assert!(
        allowed > 50,
        "only {allowed} requests allowed: not OCM's grants"
    );

    // A binding deleted: the index stops allowing at once, as the apiserver does.
    let status = AccessRequest {
        verb: "update",
        group: "cluster.open-cluster-management.io".into(),
        resource: "managedclusters".into(),
        subresource: Some("status"),
        namespace: String::new(),
        name: Some("c1".into()),
    };
    assert!(index.allows(&agent("c1"), &status));
    cluster_bindings
        .delete(&rbac::cluster_role_name("c1"), &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while index.allows(&agent("c1"), &status) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deletion never reached the index"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until(&reviews, &agent("c1"), &status, false).await;

    cancel.cancel();
    cluster.stop();
}
