//! OCM's registration admission with a real kube-apiserver calling the hub's webhook: a
//! ManagedCluster's name must be a cluster name and its client URLs https; accepting a cluster
//! needs `managedclusters/accept`, moving it into a cluster set `managedclustersets/join` on it, and binding a set into a namespace `managedclustersets/bind` with the binding named
//! after the set — each checked for the requester with real RBAC; and OCM's defaults (the
//! `default` set label, taints' `timeAdded`) are in the object as stored.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::collections::BTreeMap;
use std::time::Duration;

use ocm_api::cluster::v1::{ClientConfig, ManagedCluster, ManagedClusterSpec, Taint, TaintEffect};
use ocm_api::cluster::v1beta2::{
    CLUSTER_SET_LABEL, ManagedClusterSetBinding, ManagedClusterSetBindingSpec,
};
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{PostParams, ResourceExt as _};
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{Api, Client, Config};
use ocm_hub_server::pki::{self, PkiConfig};
use ocm_hub_server::webhook::{self, WebhookConfig};
use ocm_testenv::Cluster;
use tokio_util::sync::CancellationToken;

async fn client_as(cluster: &Cluster, user: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig_for(user, &[]).unwrap()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Grants `user` `rules` cluster-wide, under `name`.
async fn grant(admin: &Client, name: &str, user: &str, rules: Vec<PolicyRule>) {
    Api::<ClusterRole>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..ObjectMeta::default()
                },
                rules: Some(rules),
                ..ClusterRole::default()
            },
        )
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: name.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".into(),
                    name: user.into(),
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The apiserver's refusal: its code, and the message our webhook gave.
fn refused<T: std::fmt::Debug>(result: Result<T, ocm_api::kube::Error>) -> (u16, String) {
    match result {
        Err(ocm_api::kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test]
async fn registration_objects_are_admitted_only_as_ocm_admits_them() {
    let cluster = Cluster::start("cluster-admission").await.unwrap();
    let admin = cluster.client().unwrap();
    ocm_hub_server::crds::install(&admin, &ocm_api::crds::hub(), Duration::from_secs(60))
        .await
        .unwrap();
    let pki_config = PkiConfig::new(vec!["localhost".into()]);
    let hub_pki = pki::ensure(&admin, &pki_config).await.unwrap();
    let cancel = CancellationToken::new();
    webhook::start(
        &admin,
        &pki_config.namespace,
        &hub_pki,
        WebhookConfig::new("127.0.0.1:0".parse().unwrap(), vec!["127.0.0.1".into()]),
        cancel.clone(),
    )
    .await
    .unwrap();
    let clusters: Api<ManagedCluster> = Api::all(admin.clone());

    // Names and URLs, whoever asks (the admin here). Retried until the apiserver has loaded the
    // webhook configuration.
    let reserved = ManagedCluster::new("kube-system", ManagedClusterSpec::default());
    let (code, message) = ocm_testenv::eventually(
        "the webhook in effect",
        Duration::from_secs(30),
        async || match clusters.create(&PostParams::default(), &reserved).await {
            Err(ocm_api::kube::Error::Api(status)) => Some((status.code, status.message)),
            Ok(_) => {
                let _ = clusters.delete("kube-system", &Default::default()).await;
                None
            }
            Err(_) => None,
        },
    )
    .await;
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("reserved"), "{message}");
    let mut plain = ManagedCluster::new("plain", ManagedClusterSpec::default());
    plain.spec.managed_cluster_client_configs = vec![ClientConfig {
        url: "http://plain.example:6443".into(),
        ca_bundle: None,
    }];
    let (code, message) = refused(clusters.create(&PostParams::default(), &plain).await);
    assert_eq!(code, 422);
    assert!(message.contains("https://"), "{message}");

    // Alice may create and update ManagedClusters, nothing more.
    grant(
        &admin,
        "alice-clusters",
        "alice",
        vec![rule(
            "cluster.open-cluster-management.io",
            &["managedclusters", "managedclustersetbindings"],
            &["create", "get", "update", "patch"],
        )],
    )
    .await;
    let alice = client_as(&cluster, "alice").await;
    let as_alice: Api<ManagedCluster> = Api::all(alice.clone());
    let mut accepted = ManagedCluster::new("c1", ManagedClusterSpec::default());
    accepted.spec.hub_accepts_client = true;
    let (code, message) = refused(as_alice.create(&PostParams::default(), &accepted).await);
    assert_eq!(code, 403);
    assert!(message.contains("cannot accept"), "{message}");

    // Joining asks nothing of her; the defaults are in the stored object.
    let mut joining = ManagedCluster::new("c1", ManagedClusterSpec::default());
    joining.spec.taints = vec![Taint {
        key: "example.com/new".into(),
        value: String::new(),
        effect: TaintEffect::NoSelect,
        time_added: None,
    }];
    let stored = as_alice
        .create(&PostParams::default(), &joining)
        .await
        .unwrap();
    assert_eq!(
        stored.labels().get(CLUSTER_SET_LABEL).map(String::as_str),
        Some("default")
    );
    let added = stored.spec.taints[0].time_added.clone().unwrap();

    // An update keeps the taint's time; accepting is refused until she may accept.
    let mut update = stored.clone();
    update.spec.taints[0].time_added = None;
    let kept = as_alice
        .replace("c1", &PostParams::default(), &update)
        .await
        .unwrap();
    assert_eq!(kept.spec.taints[0].time_added, Some(added));
    let mut accept = kept.clone();
    accept.spec.hub_accepts_client = true;
    let (code, _) = refused(
        as_alice
            .replace("c1", &PostParams::default(), &accept)
            .await,
    );
    assert_eq!(code, 403);
    grant(
        &admin,
        "alice-accept",
        "alice",
        vec![rule(
            "register.open-cluster-management.io",
            &["managedclusters/accept"],
            &["update"],
        )],
    )
    .await;
    let accepted =
        ocm_testenv::eventually("acceptance allowed", Duration::from_secs(20), async || {
            let mut accept = as_alice.get("c1").await.unwrap();
            accept.spec.hub_accepts_client = true;
            as_alice
                .replace("c1", &PostParams::default(), &accept)
                .await
                .ok()
        })
        .await;
    assert!(accepted.spec.hub_accepts_client);

    // Moving c1 from `default` to `finance` needs join on `finance`.
    let mut moving = accepted.clone();
    moving
        .labels_mut()
        .insert(CLUSTER_SET_LABEL.into(), "finance".into());
    let (code, message) = refused(
        as_alice
            .replace("c1", &PostParams::default(), &moving)
            .await,
    );
    assert_eq!(code, 403);
    assert!(message.contains("ManagedClusterSet"), "{message}");
    grant(
        &admin,
        "alice-join",
        "alice",
        vec![rule(
            "cluster.open-cluster-management.io",
            &["managedclustersets/join"],
            &["create"],
        )],
    )
    .await;
    ocm_testenv::eventually("joining allowed", Duration::from_secs(20), async || {
        let mut moving = as_alice.get("c1").await.unwrap();
        moving
            .labels_mut()
            .insert(CLUSTER_SET_LABEL.into(), "finance".into());
        as_alice
            .replace("c1", &PostParams::default(), &moving)
            .await
            .ok()
    })
    .await;

    // Bindings: named after their set, and `bind` on it.
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("team-a".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let bindings: Api<ManagedClusterSetBinding> = Api::namespaced(alice.clone(), "team-a");
    let binding = |name: &str, set: &str| ManagedClusterSetBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("team-a".into()),
            labels: Some(BTreeMap::new()),
            ..ObjectMeta::default()
        },
        spec: ManagedClusterSetBindingSpec {
            cluster_set: set.into(),
        },
        status: None,
    };
    let (code, _) = refused(
        bindings
            .create(&PostParams::default(), &binding("dev", "prod"))
            .await,
    );
    assert_eq!(code, 422);
    let (code, message) = refused(
        bindings
            .create(&PostParams::default(), &binding("dev", "dev"))
            .await,
    );
    assert_eq!(code, 403);
    assert!(message.contains("cannot bind"), "{message}");
    grant(
        &admin,
        "alice-bind",
        "alice",
        vec![rule(
            "cluster.open-cluster-management.io",
            &["managedclustersets/bind"],
            &["create"],
        )],
    )
    .await;
    ocm_testenv::eventually("binding allowed", Duration::from_secs(20), async || {
        bindings
            .create(&PostParams::default(), &binding("dev", "dev"))
            .await
            .ok()
    })
    .await;

    cancel.cancel();
    cluster.stop();
}
