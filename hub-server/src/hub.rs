//! The hub, assembled: CRDs, PKI, the broker with Kubernetes authentication and authorization,
//! the registration services and their change publishers, work delivery, the CSR signer,
//! acceptance and availability, the ManifestWork admission webhook — and `/healthz`,
//! `/readyz`, `/metrics`. `ocm-hub` is this with flags.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::k8s_openapi::api::authentication::v1::SelfSubjectReview;
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::k8s_openapi::api::coordination::v1::Lease;
use ocm_api::kube::api::PostParams;
use ocm_api::kube::runtime::watcher;
use ocm_api::kube::{Api, Client};
use ocm_transport::broker::{self, Broker, BrokerConfig, EventHandler};
use ocm_transport::event_type::DataType;
use ocm_transport::mqtt_transport::MqttSettings;
use ocm_transport::registration::{CLUSTER_NAME_LABEL, RegistrationKind};
use ocm_transport::tls::{self, PemIdentity, ReloadableIdentity};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::auth::{RbacAuthorizer, SubjectAccessReviewAuthorizer, TokenReviewAuthenticator};
use crate::csr_controller::{self, Signer, SignerConfig};
use crate::metrics::{Counted, HubMetrics};
use crate::pki::{self, PkiConfig};
use crate::rbac_index::RbacIndex;
use crate::registration::availability::{self, AvailabilityConfig};
use crate::registration::clusters::SharedClusters;
use crate::registration::{acceptance, liveness::Liveness};
use crate::services::source::publish_changes;
use crate::services::{
    ClusterIndex, CsrOps, EventOps, KindOps, LeaseOps, ManagedClusterOps, Outbox,
    RegistrationService,
};
use crate::webhook::WebhookConfig;
use ocm_transport::health::{self as http, Readiness};

/// Everything the hub is configured with.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub grpc_listen: SocketAddr,
    pub health_listen: SocketAddr,
    pub pki: PkiConfig,
    /// A serving certificate and key (PEM files) to use instead of the generated one.
    pub serving_files: Option<(PathBuf, PathBuf)>,
    pub client_cert_validity: Duration,
    pub auto_approved_users: Vec<String>,
    /// The audiences bearer tokens must be bound to (any); empty: the apiserver's own.
    pub token_audiences: Vec<String>,
    /// How long TokenReview answers are reused.
    pub auth_cache_ttl: Duration,
    /// How long SubjectAccessReview grants are reused; RBAC changes drop them sooner.
    pub access_cache_ttl: Duration,
    pub availability: AvailabilityConfig,
    pub lease_write_interval: Duration,
    pub broker: BrokerConfig,
    pub max_message_size: usize,
    /// A ServiceAccount (`namespace`, `name`) whose tokens agents join with: created with OCM's
    /// bootstrap ClusterRole, as OCM's cluster manager sets it up.
    pub bootstrap_service_account: Option<(String, String)>,
    /// Also serve ManifestWorks over this MQTT broker (OCM's `--work-driver=mqtt`), as the
    /// source `kube`.
    pub work_mqtt: Option<MqttSettings>,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("binding {what} on {address}: {source}")]
    Bind {
        what: &'static str,
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Crds(#[from] crate::crds::CrdError),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("reading the serving certificate {path}: {source}")]
    ServingFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("the broker stopped: {0}")]
    Broker(String),
    #[error("setting up the bootstrap ServiceAccount: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    #[error("the MQTT work driver: {0}")]
    Mqtt(String),
}

/// The hub's clients of its apiserver. The reviews that authenticate and authorize agents
/// (TokenReviews, SubjectAccessReviews) go through their own, so that when ten thousand agents
/// reconnect to a restarted hub their reviews queue behind each other and not in front of the
/// hub's listings and writes: sharing one request limit, the listings a restarted hub needs
/// before it answers any resync waited minutes behind tens of thousands of reviews.
#[derive(Clone)]
pub struct HubClients {
    /// Listings, watches and writes: the controllers and the agents' requests.
    pub main: Client,
    /// Agents' TokenReviews and SubjectAccessReviews.
    pub reviews: Client,
    /// Availability's condition writes: rare, and each one late is a lost cluster still shown
    /// Available, so they do not queue behind bulk work such as the grants acceptance
    /// re-applies to every cluster after a restart.
    pub availability: Client,
}

impl std::fmt::Debug for HubClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClients").finish_non_exhaustive()
    }
}

impl From<Client> for HubClients {
    /// One client for everything (tests, small hubs).
    fn from(client: Client) -> Self {
        Self {
            main: client.clone(),
            reviews: client.clone(),
            availability: client,
        }
    }
}

/// Runs the hub against `clients`' cluster until `cancel`, without the ManifestWork admission
/// webhook ([`run_with_webhook`]).
pub async fn run(
    clients: impl Into<HubClients>,
    config: HubConfig,
    cancel: CancellationToken,
) -> Result<(), HubError> {
    run_with_webhook(clients, config, None, cancel).await
}

/// [`run`], also serving the ManifestWork admission webhook and registering it with the
/// apiserver when `webhook` is given (`ocm-hub` always does): the hub is ready only once the
/// webhook serves, and does not start if it cannot.
pub async fn run_with_webhook(
    clients: impl Into<HubClients>,
    config: HubConfig,
    webhook: Option<WebhookConfig>,
    cancel: CancellationToken,
) -> Result<(), HubError> {
    let HubClients {
        main: client,
        reviews,
        availability: availability_client,
    } = clients.into();
    let mut registry = Registry::default();
    let metrics = HubMetrics::register(&mut registry);
    let outbox = Outbox::new();
    registry.register(
        "ocm_hub_sent_events",
        "CloudEvents the hub sent to agents, by data type and action",
        outbox.sent_counter(),
    );
    let readiness = Arc::new(Readiness::default());
    let health = bind(config.health_listen, "the health endpoint").await?;
    tokio::spawn(http::serve(
        health,
        Arc::clone(&readiness),
        Arc::new(registry),
        cancel.clone(),
    ));

    crate::crds::install(&client, &ocm_api::crds::hub(), Duration::from_secs(60)).await?;
    let hub_pki = pki::ensure(&client, &config.pki).await?;
    if let Some(webhook) = webhook {
        crate::webhook::start(
            &client,
            &config.pki.namespace,
            &hub_pki,
            webhook,
            cancel.clone(),
        )
        .await?;
    }
    let serving = match &config.serving_files {
        Some((cert, key)) => PemIdentity {
            cert_chain: read(cert).await?,
            key: read(key).await?,
        },
        None => hub_pki.serving.clone(),
    };
    let hub_user = own_user(&client).await;
    if let Some((namespace, name)) = &config.bootstrap_service_account {
        bootstrap_identity(&client, namespace, name)
            .await
            .map_err(|e| HubError::Bootstrap(e.to_string()))?;
    }

    let liveness = Arc::new(Liveness::new());
    availability::seed(&client, &liveness, config.lease_write_interval).await;
    let cluster_index = ClusterIndex::new(RegistrationKind::ManagedCluster);
    let csr_index = ClusterIndex::new(RegistrationKind::CertificateSigningRequest);
    let lease_index = ClusterIndex::new(RegistrationKind::Lease);
    let authorizer = Arc::new(SubjectAccessReviewAuthorizer::new(
        reviews.clone(),
        config.access_cache_ttl,
    ));
    let rbac = RbacIndex::default();
    tokio::spawn(crate::rbac_changes::run(
        client.clone(),
        Arc::clone(&authorizer),
        rbac.clone(),
        cancel.clone(),
    ));
    let agents_authorizer: Arc<dyn ocm_transport::broker::Authorizer> =
        Arc::new(RbacAuthorizer::new(rbac, Arc::clone(&authorizer)));
    let mut handlers: HashMap<DataType, Arc<dyn EventHandler>> = HashMap::new();
    add(
        &mut handlers,
        &metrics,
        ManagedClusterOps::new(
            client.clone(),
            cluster_index.clone(),
            Arc::clone(&agents_authorizer),
        ),
        &outbox,
    );
    add(
        &mut handlers,
        &metrics,
        CsrOps::new(client.clone(), csr_index.clone()),
        &outbox,
    );
    add(
        &mut handlers,
        &metrics,
        LeaseOps::new(
            client.clone(),
            lease_index.clone(),
            Arc::clone(&liveness),
            config.lease_write_interval,
        ),
        &outbox,
    );
    add(
        &mut handlers,
        &metrics,
        EventOps::new(client.clone()),
        &outbox,
    );
    let works = crate::work::start(
        client.clone(),
        outbox.clone(),
        Arc::clone(&metrics),
        crate::work::WorkConfig::default(),
        cancel.clone(),
    );
    let work_handler: Arc<dyn EventHandler> = Arc::new(Counted::new(
        works.clone(),
        DataType::manifest_bundles().to_string(),
        Arc::clone(&metrics),
    ));
    handlers.insert(DataType::manifest_bundles(), Arc::clone(&work_handler));
    if let Some(settings) = config.work_mqtt.clone() {
        tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), "serving ManifestWorks over MQTT too");
        crate::work::mqtt::start(settings, works, work_handler, &outbox, cancel.clone())
            .map_err(|e| HubError::Mqtt(e.to_string()))?;
    }
    let broker = Broker::new(
        config.broker.clone(),
        handlers,
        Some(Arc::new(TokenReviewAuthenticator::new(
            reviews,
            config.auth_cache_ttl,
            config.token_audiences.clone(),
        ))),
        Arc::clone(&agents_authorizer),
    );
    outbox.connect(broker.clone());

    let labelled = watcher::Config::default().labels(CLUSTER_NAME_LABEL);
    tokio::spawn(publish_changes(
        RegistrationKind::ManagedCluster,
        Api::<ManagedCluster>::all(client.clone()),
        watcher::Config::default(),
        cluster_index,
        outbox.clone(),
        cancel.clone(),
    ));
    tokio::spawn(publish_changes(
        RegistrationKind::CertificateSigningRequest,
        Api::<CertificateSigningRequest>::all(client.clone()),
        labelled.clone(),
        csr_index,
        outbox.clone(),
        cancel.clone(),
    ));
    tokio::spawn(publish_changes(
        RegistrationKind::Lease,
        Api::<Lease>::all(client.clone()),
        labelled,
        lease_index,
        outbox.clone(),
        cancel.clone(),
    ));
    let signer = Signer::new(
        client.clone(),
        hub_pki.issuer()?,
        Arc::clone(&agents_authorizer),
        SignerConfig {
            validity: config.client_cert_validity,
            auto_approved_users: config.auto_approved_users.clone(),
            hub_user: hub_user.clone(),
        },
    );
    tokio::spawn(csr_controller::run(Arc::new(signer), cancel.clone()));
    // Acceptance, cleanup, availability and cluster sets share one ManagedCluster watch and
    // cache.
    let mut shared_clusters = SharedClusters::new();
    let cluster_sets_changed = Arc::new(tokio::sync::Notify::new());
    shared_clusters.notify_changes(Arc::clone(&cluster_sets_changed));
    let (accepting, cleaning, checking) = (
        shared_clusters.feed(),
        shared_clusters.feed(),
        shared_clusters.store(),
    );
    let cluster_controllers = vec![
        acceptance::run(
            client.clone(),
            accepting,
            acceptance::AcceptanceConfig {
                // As OCM's ManagedClusterAutoApproval: listing users whose CSRs are approved
                // also accepts their clusters, so CSR approval is the one gate.
                auto_accept: !config.auto_approved_users.is_empty(),
                grants_changed: Some({
                    let authorizer = Arc::clone(&authorizer);
                    let broker = broker.clone();
                    Arc::new(move |cluster: &str, change| {
                        authorizer.forget_cluster(cluster);
                        // Streams were authorized when they opened: revoked access ends them,
                        // and the agents' next Subscribe is authorized anew.
                        if change == acceptance::GrantChange::Revoked {
                            broker.close_cluster(cluster);
                        }
                    })
                }),
            },
            cancel.clone(),
        )
        .boxed(),
        crate::registration::cleanup::run(client.clone(), cleaning, cancel.clone()).boxed(),
        availability::run(
            availability_client,
            checking,
            liveness,
            config.availability,
            cancel.clone(),
        )
        .boxed(),
        crate::registration::clustersets::run(
            client.clone(),
            shared_clusters.store(),
            cluster_sets_changed,
            cancel.clone(),
        )
        .boxed(),
    ];
    tokio::spawn(shared_clusters.run(client.clone(), cancel.clone(), cluster_controllers));
    let counted = broker.clone();
    let gauge = metrics.subscribers.clone();
    let wire_metrics = Arc::clone(&metrics);
    let counting = cancel.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                () = counting.cancelled() => return,
                _ = every.tick() => {
                    gauge.set(i64::try_from(counted.subscriber_count()).unwrap_or(i64::MAX));
                    let wire = counted.wire_bytes();
                    wire_metrics.wire_bytes(wire.received(), wire.sent());
                }
            }
        }
    });

    let listener = bind(config.grpc_listen, "the gRPC broker").await?;
    let server_tls = tls::server_config(ReloadableIdentity::new(&serving)?, &hub_pki.ca_pem)?;
    readiness.set_ready();
    tracing::info!(grpc = %config.grpc_listen, health = %config.health_listen, hub_user = ?hub_user, "hub serving");
    let stopping = cancel.clone();
    broker::serve(
        broker,
        listener,
        Arc::new(server_tls),
        config.max_message_size,
        async move { stopping.cancelled().await },
    )
    .await
    .map_err(|e| HubError::Broker(e.to_string()))
}

fn add<O: KindOps>(
    handlers: &mut HashMap<DataType, Arc<dyn EventHandler>>,
    metrics: &Arc<HubMetrics>,
    ops: O,
    outbox: &Outbox,
) {
    let data_type = O::KIND.data_type();
    let service = RegistrationService::new(ops, outbox.clone());
    handlers.insert(
        data_type.clone(),
        Arc::new(Counted::new(
            service,
            data_type.to_string(),
            Arc::clone(metrics),
        )),
    );
}

async fn bind(
    address: SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpListener, HubError> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| HubError::Bind {
            what,
            address,
            source,
        })
}

async fn read(path: &PathBuf) -> Result<String, HubError> {
    tokio::fs::read_to_string(path)
        .await
        .map_err(|source| HubError::ServingFile {
            path: path.clone(),
            source,
        })
}

/// The hub's own user name, so the signer can tell CSRs the hub created for agents; `None`
/// (the `csr-user` annotation then never trusted) if the apiserver cannot say.
async fn own_user(client: &Client) -> Option<String> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await;
    match review {
        Ok(review) => review.status?.user_info?.username,
        Err(err) => {
            tracing::warn!(%err, "cannot learn the hub's own identity; CSRs from agents need a person's approval");
            None
        }
    }
}

/// The bootstrap ServiceAccount with OCM's bootstrap ClusterRole (server-side applied).
async fn bootstrap_identity(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ocm_api::kube::Error> {
    use ocm_api::k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use ocm_api::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use ocm_api::kube::api::{Patch, PatchParams};

    let apply = PatchParams::apply(crate::registration::acceptance::FIELD_MANAGER).force();
    let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    };
    let ns = Namespace {
        metadata: meta(namespace, None),
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &apply, &Patch::Apply(&ns))
        .await?;
    let account = ServiceAccount {
        metadata: meta(name, Some(namespace)),
        ..ServiceAccount::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .patch(name, &apply, &Patch::Apply(&account))
        .await?;
    let role = crate::registration::rbac::bootstrap_cluster_role();
    Api::<ClusterRole>::all(client.clone())
        .patch(
            crate::registration::rbac::BOOTSTRAP_ROLE,
            &apply,
            &Patch::Apply(&role),
        )
        .await?;
    let binding = crate::registration::rbac::bootstrap_binding(namespace, name);
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(
            crate::registration::rbac::BOOTSTRAP_ROLE,
            &apply,
            &Patch::Apply(&binding),
        )
        .await?;
    tracing::info!(%namespace, service_account = %name, "bootstrap identity ready");
    Ok(())
}
