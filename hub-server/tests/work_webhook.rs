//! The ManifestWork admission webhook with a real kube-apiserver calling it over HTTPS, trusting
//! it through the registered configuration's `caBundle`: valid works admitted; an empty
//! workload, a manifest without name or kind, two manifests naming one resource and a work over
//! the configured size refused with the field named; an update that makes a work invalid
//! refused; a new or changed executor admitted only for a requester with `execute-as` on it
//! (real RBAC through a SubjectAccessReview); a malformed AdmissionReview answered 400 while the
//! webhook carries on; and `ocm-hub`'s assembly registering it, ready only once it serves.

#![allow(clippy::unwrap_used)] // test helpers fail the test by panicking, with the value shown

use std::sync::Arc;
use std::time::Duration;

use ocm_api::k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use ocm_api::k8s_openapi::api::core::v1::Namespace;
use ocm_api::k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::core::Status;
use ocm_api::kube::{Api, Client, Config};
use ocm_api::work::v1::ManifestWork;
use ocm_hub_server::hub::{self, HubConfig, HubError};
use ocm_hub_server::pki::{self, PkiConfig};
use ocm_hub_server::registration::availability::AvailabilityConfig;
use ocm_hub_server::webhook::registration::{DEFAULT_NAME, WEBHOOK_NAME};
use ocm_hub_server::webhook::{self, Webhook, WebhookConfig};
use ocm_testenv::{Cluster, free_port};
use ocm_transport::broker::BrokerConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

const NAMESPACE: &str = "cluster1";
/// How the apiserver introduces our refusals.
const DENIED: &str = "admission webhook \"manifestworkvalidators.admission.work.open-cluster-management.io\" denied the request: ";

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

fn config_map(name: &str, data: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default"}, "data": {"key": data}})
}

fn work(name: &str, manifests: Vec<Value>) -> ManifestWork {
    work_as(name, manifests, None)
}

fn work_as(name: &str, manifests: Vec<Value>, executor: Option<&str>) -> ManifestWork {
    let mut spec = json!({"workload": {"manifests": manifests}});
    if let Some(account) = executor {
        spec["executor"] = json!({"subject": {"type": "ServiceAccount",
            "serviceAccount": {"namespace": "apps", "name": account}}});
    }
    serde_json::from_value(json!({
        "apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
        "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec,
    }))
    .unwrap()
}

/// The Status the apiserver refused `result` with.
fn refusal<T: std::fmt::Debug>(result: Result<T, ocm_api::kube::Error>) -> Status {
    match result {
        Err(ocm_api::kube::Error::Api(status)) => *status,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Asserts the webhook (not the apiserver's own checks) refused it, naming every field in
/// `fields`.
fn refused_by_webhook(status: &Status, code: u16, fields: &[&str]) {
    assert!(status.message.starts_with(DENIED), "{}", status.message);
    assert_eq!(status.code, code, "{status:?}");
    for field in fields {
        assert!(
            status.message.contains(field),
            "{field} not named in {}",
            status.message
        );
        if code == 422 {
            let causes = &status.details.as_ref().unwrap().causes;
            assert!(
                causes.iter().any(|c| c.field == *field),
                "no cause for {field}: {causes:?}"
            );
        }
    }
}

/// How many UPDATEs the apiserver has sent the work webhook, by its own metrics.
async fn webhook_updates(client: &Client) -> u64 {
    let request = hyper::Request::get("/metrics").body(Vec::new()).unwrap();
    let metrics = client.request_text(request).await.unwrap();
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("apiserver_admission_webhook_request_total{")
                && line.contains(&format!("name=\"{WEBHOOK_NAME}\""))
                && line.contains("operation=\"UPDATE\"")
        })
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap();
            value.parse::<f64>().unwrap() as u64
        })
        .sum()
}

/// Waits until the apiserver calls the webhook (it learns of a new configuration a moment
/// after it is written): a dry run of an empty work is refused by it.
async fn until_called(works: &Api<ManifestWork>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        match works.create(&dry_run, &work("probe", vec![])).await {
            Err(ocm_api::kube::Error::Api(status)) if status.message.starts_with(DENIED) => {
                return;
            }
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "the apiserver never called the webhook; last: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client authenticating as `user` in `groups`, with only what RBAC grants it.
async fn client_as(cluster: &Cluster, user: &str, groups: &[&str]) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig_for(user, groups).unwrap()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// One request over HTTPS to the webhook (trusting `ca`, at most `version`), as raw HTTP/1.1;
/// the status code and body.
async fn post(
    webhook: &Webhook,
    ca: &str,
    version: &'static rustls::SupportedProtocolVersion,
    body: &[u8],
) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[version])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(webhook.address)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(version.version),
        "the negotiated TLS version"
    );
    let head = format!(
        "POST /validate-work HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

async fn http_get(port: u16, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn invalid_works_are_refused_at_admission_with_the_field_named() {
    let cluster = Cluster::start("work-webhook").await.unwrap();
    let client = cluster.client().unwrap();
    ocm_hub_server::crds::install(&client, &ocm_api::crds::hub(), Duration::from_secs(60))
        .await
        .unwrap();
    namespace(&client, NAMESPACE).await;
    let pki_config = PkiConfig::new(vec!["localhost".into()]);
    let hub_pki = pki::ensure(&client, &pki_config).await.unwrap();
    let mut config = WebhookConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec!["127.0.0.1".into(), "localhost".into()],
    );
    config.limits.max_manifests_size = 4096;
    let cancel = CancellationToken::new();
    let webhook = webhook::start(
        &client,
        &pki_config.namespace,
        &hub_pki,
        config,
        cancel.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        webhook.url,
        format!("https://127.0.0.1:{}/validate-work", webhook.address.port())
    );
    let works: Api<ManifestWork> = Api::namespaced(client.clone(), NAMESPACE);
    until_called(&works).await;

    // Valid: admitted and stored.
    let stored = works
        .create(
            &PostParams::default(),
            &work("web", vec![config_map("a", "1"), config_map("b", "2")]),
        )
        .await
        .unwrap();
    assert_eq!(stored.spec.workload.manifests.len(), 2);

    // An empty workload.
    let status = refusal(
        works
            .create(&PostParams::default(), &work("empty", vec![]))
            .await,
    );
    refused_by_webhook(&status, 422, &["spec.workload.manifests"]);
    assert!(
        status
            .message
            .contains("ManifestWork.work.open-cluster-management.io \"empty\" is invalid: spec.workload.manifests: Required value"),
        "{}",
        status.message
    );

    // A manifest without a name, and one with generateName instead.
    let nameless =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}});
    let generated = json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"generateName": "x-", "namespace": "default"}});
    let status = refusal(
        works
            .create(
                &PostParams::default(),
                &work("nameless", vec![config_map("a", "1"), nameless, generated]),
            )
            .await,
    );
    refused_by_webhook(
        &status,
        422,
        &[
            "spec.workload.manifests[1].metadata.name",
            "spec.workload.manifests[2].metadata.generateName",
        ],
    );

    // Without a kind: the CRD's embedded-resource schema refuses it before any webhook is
    // asked, naming the field too.
    let kindless = json!({"apiVersion": "v1", "metadata": {"name": "x", "namespace": "default"}});
    let status = refusal(
        works
            .create(
                &PostParams::default(),
                &work("kindless", vec![kindless.clone()]),
            )
            .await,
    );
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains("spec.workload.manifests[0].kind"),
        "{}",
        status.message
    );

    // Two manifests naming one resource (another version of it counts as the same).
    let again = json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "a", "namespace": "default"}, "data": {"other": "x"}});
    let status = refusal(
        works
            .create(
                &PostParams::default(),
                &work("twice", vec![config_map("a", "1"), again]),
            )
            .await,
    );
    refused_by_webhook(&status, 422, &["spec.workload.manifests[1]"]);
    assert!(
        status
            .message
            .contains("Duplicate value: ConfigMap default/a is already spec.workload.manifests[0]"),
        "{}",
        status.message
    );

    // Over the configured 4 KiB.
    let status = refusal(
        works
            .create(
                &PostParams::default(),
                &work("big", vec![config_map("big", &"x".repeat(5000))]),
            )
            .await,
    );
    refused_by_webhook(&status, 422, &["spec.workload.manifests"]);
    assert!(
        status.message.contains("exceeds the 4096 limit"),
        "{}",
        status.message
    );

    // An update that makes the stored work invalid is refused, and the work stays as it was;
    // one that changes nothing validation looks at is admitted.
    let mut broken = stored.clone();
    broken.spec.workload.manifests.clear();
    let status = refusal(works.replace("web", &PostParams::default(), &broken).await);
    refused_by_webhook(&status, 422, &["spec.workload.manifests"]);
    let patch =
        json!({"spec": {"workload": {"manifests": [config_map("a", "1"), config_map("a", "2")]}}});
    let status = refusal(
        works
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    refused_by_webhook(&status, 422, &["spec.workload.manifests[1]"]);
    assert_eq!(
        works
            .get("web")
            .await
            .unwrap()
            .spec
            .workload
            .manifests
            .len(),
        2
    );
    // Updates that leave the spec alone (a label, a finalizer added and removed) are not sent
    // to the webhook at all (its match condition); one that changes the spec is.
    let before = webhook_updates(&client).await;
    let label = json!({"metadata": {"labels": {"team": "a"}}});
    works
        .patch("web", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    for finalizers in [json!(["example.com/hold"]), json!(null)] {
        let patch = json!({"metadata": {"finalizers": finalizers}});
        works
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    assert_eq!(webhook_updates(&client).await, before);
    let edit = json!({"spec": {"workload": {"manifests": [config_map("a", "3")]}}});
    works
        .patch("web", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    assert_eq!(webhook_updates(&client).await, before + 1);

    // A malformed AdmissionReview sent directly: a clear 400 (over TLS 1.2, which the
    // webhook speaks besides 1.3) ...
    let (code, body) = post(
        &webhook,
        &hub_pki.ca_pem,
        &rustls::version::TLS12,
        b"{not json",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.starts_with("the body is not an AdmissionReview: "),
        "{body}"
    );
    let (code, body) = post(
        &webhook,
        &hub_pki.ca_pem,
        &rustls::version::TLS13,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    )
    .await;
    assert_eq!(
        (code, body.trim()),
        (400, "the AdmissionReview has no request")
    );
    // ... and it keeps serving: a review sent directly (the kindless manifest the schema
    // keeps from it), and the apiserver's calls.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "8a1f", "name": "kindless", "namespace": NAMESPACE, "operation": "CREATE",
            "kind": {"group": "work.open-cluster-management.io", "version": "v1", "kind": "ManifestWork"},
            "resource": {"group": "work.open-cluster-management.io", "version": "v1", "resource": "manifestworks"},
            "userInfo": {"username": "someone"},
            "object": serde_json::to_value(work("kindless", vec![kindless])).unwrap(),
        }
    });
    let (code, body) = post(
        &webhook,
        &hub_pki.ca_pem,
        &rustls::version::TLS13,
        &serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["response"]["uid"], "8a1f");
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["details"]["causes"][0]["field"],
        "spec.workload.manifests[0].kind"
    );
    let status = refusal(
        works
            .create(&PostParams::default(), &work("empty", vec![]))
            .await,
    );
    refused_by_webhook(&status, 422, &["spec.workload.manifests"]);

    cancel.cancel();
    cluster.stop();
}

fn role(name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: meta(name, Some(NAMESPACE)),
        rules: Some(rules),
    }
}

fn bind(name: &str, user: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(NAMESPACE)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.into(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            ..Subject::default()
        }]),
    }
}

fn hub_config(health_port: u16) -> HubConfig {
    HubConfig {
        grpc_listen: format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap(),
        health_listen: format!("127.0.0.1:{health_port}").parse().unwrap(),
        pki: PkiConfig::new(vec!["localhost".into()]),
        serving_files: None,
        client_cert_validity: Duration::from_secs(3600),
        auto_approved_users: Vec::new(),
        token_audiences: vec![ocm_api::registration::BROKER_TOKEN_AUDIENCE.to_owned()],
        auth_cache_ttl: Duration::from_secs(1),
        access_cache_ttl: Duration::from_secs(1),
        availability: AvailabilityConfig::default(),
        lease_write_interval: Duration::from_secs(60),
        broker: BrokerConfig::default(),
        max_message_size: 4 << 20,
        bootstrap_service_account: None,
        work_mqtt: None,
    }
}

#[tokio::test]
async fn the_hub_serves_the_webhook_and_an_executor_needs_execute_as() {
    let cluster = Cluster::start("work-executor").await.unwrap();
    let admin = cluster.client().unwrap();
    let cancel = CancellationToken::new();

    // A webhook that cannot listen: the hub does not start, and never says it is ready.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let failing_health = free_port().unwrap();
    let failing = cancel.child_token();
    let error = hub::run_with_webhook(
        admin.clone(),
        hub_config(failing_health),
        Some(WebhookConfig::new(
            taken.local_addr().unwrap(),
            vec!["127.0.0.1".into()],
        )),
        failing.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, HubError::Webhook(_)) && error.to_string().contains("binding the webhook"),
        "{error}"
    );
    assert_eq!(http_get(failing_health, "/readyz").await, Some(503));
    failing.cancel();
    drop(taken);

    // The hub with its webhook: ready once it serves, with its configuration registered.
    let health = free_port().unwrap();
    tokio::spawn(hub::run_with_webhook(
        admin.clone(),
        hub_config(health),
        Some(WebhookConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec!["127.0.0.1".into()],
        )),
        cancel.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while http_get(health, "/readyz").await != Some(200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registered = Api::<ValidatingWebhookConfiguration>::all(admin.clone())
        .get(DEFAULT_NAME)
        .await
        .unwrap();
    let hook = &registered.webhooks.unwrap()[0];
    assert_eq!(hook.name, WEBHOOK_NAME);
    assert!(
        hook.client_config
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://127.0.0.1:") && u.ends_with("/validate-work")),
        "{:?}",
        hook.client_config.url
    );
    namespace(&admin, NAMESPACE).await;
    let admin_works: Api<ManifestWork> = Api::namespaced(admin.clone(), NAMESPACE);
    until_called(&admin_works).await;

    // alice may write works in the namespace, and execute as apps/deployer only.
    let roles: Api<Role> = Api::namespaced(admin.clone(), NAMESPACE);
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), NAMESPACE);
    let rules = [
        (
            "work-editor",
            vec![PolicyRule {
                api_groups: Some(vec!["work.open-cluster-management.io".into()]),
                resources: Some(vec!["manifestworks".into()]),
                verbs: ["create", "get", "list", "update", "patch"]
                    .map(String::from)
                    .to_vec(),
                ..PolicyRule::default()
            }],
        ),
        (
            "execute-as-deployer",
            vec![PolicyRule {
                api_groups: Some(vec!["work.open-cluster-management.io".into()]),
                resources: Some(vec!["manifestworks".into()]),
                resource_names: Some(vec!["system:serviceaccount:apps:deployer".into()]),
                verbs: vec!["execute-as".into()],
                ..PolicyRule::default()
            }],
        ),
    ];
    for (name, rules) in rules {
        roles
            .create(&PostParams::default(), &role(name, rules))
            .await
            .unwrap();
        bindings
            .create(&PostParams::default(), &bind(name, "alice"))
            .await
            .unwrap();
    }
    let alice = client_as(&cluster, "alice", &["team-a"]).await;
    let works: Api<ManifestWork> = Api::namespaced(alice, NAMESPACE);

    // The executor alice may execute as (once RBAC has reached the authorizer).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let admitted = loop {
        match works
            .create(
                &PostParams::default(),
                &work_as("deploy", vec![config_map("a", "1")], Some("deployer")),
            )
            .await
        {
            Ok(admitted) => break admitted,
            Err(err) => assert!(
                tokio::time::Instant::now() < deadline,
                "alice's work with her executor never admitted: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // One she may not: refused with OCM's message.
    let status = refusal(
        works
            .create(
                &PostParams::default(),
                &work_as("other", vec![config_map("a", "1")], Some("admin-sa")),
            )
            .await,
    );
    refused_by_webhook(&status, 403, &[]);
    assert!(
        status.message.ends_with(
            "user alice cannot manipulate the Manifestwork with executor apps/admin-sa in namespace cluster1"
        ),
        "{}",
        status.message
    );
    // Nor may she switch her work to it.
    let mut switched = admitted.clone();
    switched.spec = work_as("deploy", vec![config_map("a", "1")], Some("admin-sa")).spec;
    let status = refusal(
        works
            .replace("deploy", &PostParams::default(), &switched)
            .await,
    );
    refused_by_webhook(&status, 403, &[]);

    // The admin may; alice may then change that work's manifests, since the executor she
    // keeps is not hers to justify (checked only when it changes, as OCM does).
    admin_works
        .create(
            &PostParams::default(),
            &work_as("admins", vec![config_map("a", "1")], Some("admin-sa")),
        )
        .await
        .unwrap();
    let edit = json!({"spec": {"workload": {"manifests": [config_map("a", "2")]}}});
    works
        .patch("admins", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();

    // A work near the 500 KiB limit can still be relabelled and given its finalizer: the
    // webhook's match condition compares such specs within the apiserver's CEL budget.
    let manifests = (0..300)
        .map(|i| config_map(&format!("cm-{i}"), &"x".repeat(1500)))
        .collect();
    admin_works
        .create(&PostParams::default(), &work("large", manifests))
        .await
        .unwrap();
    let patch = json!({"metadata": {"labels": {"size": "large"},
                                    "finalizers": ["example.com/hold"]}});
    admin_works
        .patch("large", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    cancel.cancel();
    cluster.stop();
}
