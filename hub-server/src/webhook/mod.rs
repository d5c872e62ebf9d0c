//! The hub's admission webhooks: OCM's work webhook — the apiserver sends every ManifestWork
//! CREATE and UPDATE here and stores only what it admits — and OCM's registration webhooks for
//! ManagedClusters (validating and defaulting) and ManagedClusterSetBindings ([`clusters`]).
//!
//! - [`review`] (pure) decides: OCM's rules from [`ocm_api::work::validation`] (at least one
//!   manifest, the configured size limit, `apiVersion`/`kind`/`metadata.name` on each, no
//!   `generateName`, no two manifests naming one resource), refused with the field paths; and,
//!   for a new or changed `spec.executor`, the requester's `execute-as` permission, which
//!   [`server`] asks the apiserver for with a SubjectAccessReview, as OCM does.
//! - [`server`] serves it over HTTPS (TLS 1.2/1.3) with a serving certificate the hub CA issues
//!   ([`crate::pki::ensure_serving`]).
//! - [`registration`] is the ValidatingWebhookConfiguration ocm-hub applies at start, with the
//!   hub CA as its `caBundle`.
//!
//! [`start`] puts them together and keeps them up: every `maintenance_interval` the serving
//! certificate is checked (a reissued one reaches new handshakes without a restart) and the
//! configuration applied again, so a deleted or edited one comes back.

pub mod clusters;
pub mod registration;
pub mod review;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ocm_api::k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use ocm_api::kube::Client;
use ocm_api::work::validation::Limits;
use ocm_transport::tls::{PemIdentity, ReloadableIdentity};
use tokio_util::sync::CancellationToken;

use crate::pki::{self, HubPki, PkiError, ServingCertificate};

/// How the webhook is served and registered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where it listens (port 0: one the system picks; the registration names the real one).
    pub listen: SocketAddr,
    /// Host names and IP addresses the apiserver reaches it by: the first is in the registered
    /// URL, all are in the serving certificate.
    pub hosts: Vec<String>,
    /// Validation bounds (`--max-work-size`).
    pub limits: Limits,
    /// The ValidatingWebhookConfiguration's name.
    pub configuration_name: String,
    /// The Secret (in the hub namespace) its serving certificate is kept in.
    pub serving_secret: String,
    pub serving_validity: time::Duration,
    /// How long the apiserver waits for an answer.
    pub timeout_seconds: i32,
    /// How often the certificate is checked and the configuration applied again.
    pub maintenance_interval: Duration,
}

impl WebhookConfig {
    /// OCM's defaults (500 KiB, 10 s) with our names.
    pub fn new(listen: SocketAddr, hosts: Vec<String>) -> Self {
        Self {
            listen,
            hosts,
            limits: Limits::default(),
            configuration_name: registration::DEFAULT_NAME.to_owned(),
            serving_secret: "ocm-hub-webhook-serving".to_owned(),
            serving_validity: time::Duration::days(365),
            timeout_seconds: 10,
            maintenance_interval: Duration::from_secs(300),
        }
    }

    fn serving_certificate(&self) -> ServingCertificate {
        ServingCertificate {
            secret: self.serving_secret.clone(),
            common_name: "ocm-hub-webhook".to_owned(),
            hosts: self.hosts.clone(),
            validity: self.serving_validity,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook needs at least one host name or address the apiserver reaches it by")]
    NoHosts,
    #[error("the webhook's serving certificate: {0}")]
    Pki(#[from] PkiError),
    #[error("the webhook's TLS: {0}")]
    Tls(String),
    #[error("binding the webhook on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("registering ValidatingWebhookConfiguration {name}: {source}")]
    Register {
        name: String,
        #[source]
        source: ocm_api::kube::Error,
    },
}

/// A serving webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The address it listens on.
    pub address: SocketAddr,
    /// The URL the apiserver calls.
    pub url: String,
}

/// Issues (or reuses) the serving certificate, listens, registers the configuration and serves
/// until `cancel`. An error means the webhook does not serve (and nothing keeps running).
pub async fn start(
    client: &Client,
    namespace: &str,
    hub_pki: &HubPki,
    config: WebhookConfig,
    cancel: CancellationToken,
) -> Result<Webhook, WebhookError> {
    let host = config.hosts.first().cloned().ok_or(WebhookError::NoHosts)?;
    let wanted = config.serving_certificate();
    let serving = pki::ensure_serving(client, namespace, hub_pki, &wanted).await?;
    let identity =
        ReloadableIdentity::new(&serving).map_err(|e| WebhookError::Tls(e.to_string()))?;
    let tls =
        server::tls_config(Arc::clone(&identity)).map_err(|e| WebhookError::Tls(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| WebhookError::Bind {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| WebhookError::Bind {
        address: config.listen,
        source,
    })?;
    let url = registration::url(&host, address.port());
    let configuration = registration::configuration(
        &config.configuration_name,
        &url,
        &hub_pki.ca_pem,
        config.timeout_seconds,
    );

    let serving_cancel = cancel.child_token();
    tokio::spawn(server::serve(
        listener,
        Arc::new(tls),
        server::Handler {
            client: client.clone(),
            limits: config.limits,
        },
        serving_cancel.clone(),
    ));
    let mutating =
        registration::mutating_configuration(&url, &hub_pki.ca_pem, config.timeout_seconds);
    if let Err(source) = registration::apply(client, &configuration).await {
        serving_cancel.cancel();
        return Err(WebhookError::Register {
            name: config.configuration_name,
            source,
        });
    }
    if let Err(source) = registration::apply_mutating(client, &mutating).await {
        serving_cancel.cancel();
        return Err(WebhookError::Register {
            name: registration::MUTATING_NAME.to_owned(),
            source,
        });
    }
    tracing::info!(
        %address, %url, configuration = %config.configuration_name,
        max_work_size = config.limits.max_manifests_size, "work webhook serving"
    );
    let maintenance = Maintenance {
        client: client.clone(),
        namespace: namespace.to_owned(),
        hub_pki: hub_pki.clone(),
        wanted,
        serving,
        identity,
        configuration,
        mutating,
        interval: config.maintenance_interval,
    };
    tokio::spawn(maintenance.run(serving_cancel));
    Ok(Webhook { address, url })
}

/// What keeps the serving certificate fresh and the configuration in place.
struct Maintenance {
    client: Client,
    namespace: String,
    hub_pki: HubPki,
    wanted: ServingCertificate,
    serving: PemIdentity,
    identity: Arc<ReloadableIdentity>,
    configuration: ValidatingWebhookConfiguration,
    mutating: MutatingWebhookConfiguration,
    interval: Duration,
}

impl Maintenance {
    /// Every `interval` until `cancel`: reload a reissued certificate, re-apply the
    /// configuration.
    async fn run(mut self, cancel: CancellationToken) {
        let mut every = tokio::time::interval(self.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await; // the first tick is now: all of it was just done
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            self.refresh_certificate().await;
            if let Err(err) = registration::apply(&self.client, &self.configuration).await {
                tracing::warn!(
                    %err, name = ?self.configuration.metadata.name,
                    "re-applying the webhook configuration"
                );
            }
            if let Err(err) = registration::apply_mutating(&self.client, &self.mutating).await {
                tracing::warn!(
                    %err, name = registration::MUTATING_NAME,
                    "re-applying the mutating webhook configuration"
                );
            }
        }
    }

    async fn refresh_certificate(&mut self) {
        let secret = &self.wanted.secret;
        let current =
            match pki::ensure_serving(&self.client, &self.namespace, &self.hub_pki, &self.wanted)
                .await
            {
                Ok(current) if current.cert_chain != self.serving.cert_chain => current,
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(%err, %secret, "checking the webhook serving certificate");
                    return;
                }
            };
        match self.identity.reload(&current) {
            Ok(()) => {
                tracing::info!(%secret, "webhook serving certificate reloaded");
                self.serving = current;
            }
            Err(err) => tracing::warn!(
                %err, %secret,
                "webhook serving certificate unusable; keeping the old one"
            ),
        }
    }
}
