//! `ocm-hub`: the ocm-rs hub. It runs against the hub cluster's kube-apiserver, keeps OCM's API
//! objects there as CRDs, runs the registration controllers (CSR signing, acceptance,
//! availability), validates ManifestWorks at admission (a webhook it registers) and serves the
//! CloudEvents broker that spoke agents connect to.

#![allow(clippy::print_stderr)] // the binary's edge reports on the terminal

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ocm_api::kube::client::ClientBuilder;
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{Client, Config};
use ocm_hub_server::hub::{self, HubClients, HubConfig};
use ocm_hub_server::pki::PkiConfig;
use ocm_hub_server::registration::availability::{self, AvailabilityConfig};
use ocm_hub_server::webhook::WebhookConfig;
use ocm_transport::broker::{BrokerConfig, BrokerLimits};
use ocm_transport::grpc_config::parse_go_duration;
use ocm_transport::mqtt_config::MqttConfig;
use ocm_transport::mqtt_transport::Role;
use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimitLayer;

/// The ocm-rs hub: OCM's registration controllers and CloudEvents broker.
#[derive(Debug, Parser)]
#[command(name = "ocm-hub", version, about, long_about = None)]
struct Cli {
    /// Kubeconfig of the hub cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, env = "OCM_HUB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where the CloudEvents gRPC broker listens (mutual TLS).
    #[arg(long, default_value = "0.0.0.0:8090")]
    grpc_listen: SocketAddr,
    /// Where /healthz, /readyz and /metrics are served (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8091")]
    health_listen: SocketAddr,
    /// Host names and IP addresses agents reach the broker by (its serving certificate's SANs).
    #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
    grpc_hosts: Vec<String>,
    /// The hub's namespace (its CA and serving certificate Secrets live there).
    #[arg(long, default_value = "open-cluster-management-hub")]
    namespace: String,
    /// Serving certificate and key (PEM) to use instead of generating one.
    #[arg(long, requires = "grpc_key_file")]
    grpc_cert_file: Option<PathBuf>,
    #[arg(long, requires = "grpc_cert_file")]
    grpc_key_file: Option<PathBuf>,
    /// Users whose cluster join requests are approved without a person.
    #[arg(long, value_delimiter = ',')]
    auto_approved_users: Vec<String>,
    /// The audiences a bootstrap token must be bound to (`ocmctl` binds its tokens to the
    /// first). An empty value accepts tokens of the apiserver's own audience instead, as OCM's
    /// hub does — such a token is also a credential for the hub's apiserver.
    #[arg(long, value_delimiter = ',', default_value = ocm_api::registration::BROKER_TOKEN_AUDIENCE)]
    token_audiences: Vec<String>,
    /// Lifetime of the agents' client certificates.
    #[arg(long, default_value = "24h", value_parser = duration)]
    client_cert_validity: Duration,
    /// How long a TokenReview's answer is reused: a deleted token keeps working this long.
    #[arg(long, default_value = "60s", value_parser = duration)]
    auth_cache_ttl: Duration,
    /// How long an authorization grant (SubjectAccessReview) is reused. Any change of a Role,
    /// RoleBinding, ClusterRole or ClusterRoleBinding drops the decisions it may affect at once,
    /// so this bounds only changes the hub cannot see (another authorizer, group membership).
    /// Denials are reused at most 5 s.
    #[arg(long, default_value = "10m", value_parser = duration)]
    access_cache_ttl: Duration,
    /// A cluster is Unknown after this many lease durations without a renewal.
    #[arg(long, default_value_t = 5)]
    lease_grace_multiplier: u32,
    /// How often a cluster's Lease object is rewritten (renewals are kept in memory).
    #[arg(long, default_value = "60s", value_parser = duration)]
    lease_write_interval: Duration,
    /// Heartbeat on every Subscribe stream.
    #[arg(long, default_value = "10s", value_parser = duration)]
    heartbeat_interval: Duration,
    /// Largest CloudEvent accepted or sent, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_message_size: usize,
    /// Create this ServiceAccount (`namespace/name`) with OCM's bootstrap ClusterRole; agents
    /// join with its tokens.
    #[arg(long, value_parser = namespaced_name)]
    bootstrap_service_account: Option<(String, String)>,
    /// How ManifestWorks reach agents besides the gRPC broker: `grpc` (only it) or `mqtt` (also
    /// an MQTT v5 broker, configured by --work-driver-config), as OCM's `--work-driver`.
    #[arg(long, default_value = "grpc", value_parser = ["grpc", "mqtt"])]
    work_driver: String,
    /// OCM's MQTT config file (brokerHost, caFile, clientCertFile, clientKeyFile, topics) for
    /// `--work-driver mqtt`. The topics must name the source `kube`, e.g.
    /// `sources/kube/consumers/+/sourceevents`.
    #[arg(long)]
    work_driver_config: Option<PathBuf>,
    /// MQTT client ID of the hub (unique per hub replica).
    #[arg(long, default_value = "ocm-hub")]
    mqtt_client_id: String,
    /// Where the ManifestWork admission webhook listens (HTTPS). Port 0: one the system picks;
    /// the webhook configuration registered with the apiserver names the port bound.
    #[arg(long, default_value = "127.0.0.1:0")]
    webhook_listen: SocketAddr,
    /// Host names and IP addresses the apiserver reaches the webhook by: the first is the
    /// registered URL's host, all are in its serving certificate.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    webhook_hosts: Vec<String>,
    /// The most requests to the hub's apiserver waiting for an answer at once (more wait in
    /// line), which bounds the hub's connections to it.
    #[arg(long, default_value_t = 32)]
    kube_max_in_flight: usize,
    /// The same for the TokenReviews and SubjectAccessReviews that authenticate and authorize
    /// agents, which have their own connections and line: a fleet reconnecting at once then
    /// does not hold up the hub's listings and writes.
    #[arg(long, default_value_t = 32)]
    kube_review_max_in_flight: usize,
    /// The most a ManifestWork's manifests may weigh together (bytes, or with Ki or Mi).
    #[arg(long, default_value = "500Ki", value_parser = size)]
    max_work_size: usize,
}

/// Bytes: `512000`, `500Ki`, `1Mi`.
fn size(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.strip_suffix("Ki") {
        Some(digits) => (digits, 1 << 10),
        None => match text.strip_suffix("Mi") {
            Some(digits) => (digits, 1 << 20),
            None => (text, 1),
        },
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size like 512000, 500Ki or 1Mi"))
}

fn namespaced_name(text: &str) -> Result<(String, String), String> {
    text.split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
        .ok_or_else(|| format!("{text:?} is not namespace/name"))
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_go_duration(text).ok_or_else(|| format!("{text:?} is not a duration like 10s, 5m or 24h"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube_client::client::builder=off")
    });
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ocm-hub: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let kube = kube_config(cli.kubeconfig.as_deref()).await?;
    let clients = HubClients {
        main: client(kube.clone(), cli.kube_max_in_flight)?,
        reviews: client(kube.clone(), cli.kube_review_max_in_flight)?,
        availability: client(kube, availability::CONCURRENT_WRITES)?,
    };
    let mut webhook = WebhookConfig::new(cli.webhook_listen, cli.webhook_hosts);
    webhook.limits.max_manifests_size = cli.max_work_size;
    let mut pki = PkiConfig::new(cli.grpc_hosts);
    pki.namespace = cli.namespace;
    let work_mqtt = match (cli.work_driver.as_str(), &cli.work_driver_config) {
        ("mqtt", Some(path)) => {
            let path = path.clone();
            let mqtt = tokio::task::spawn_blocking(move || MqttConfig::load(&path)).await??;
            Some(mqtt.settings(
                &cli.mqtt_client_id,
                Role::Source {
                    source_id: ocm_hub_server::services::HUB_SOURCE.to_owned(),
                },
                // Room for a spec event to every cluster of a large fleet at once.
                65_536,
            )?)
        }
        ("mqtt", None) => anyhow::bail!("--work-driver mqtt needs --work-driver-config <file>"),
        _ => None,
    };
    let config = HubConfig {
        grpc_listen: cli.grpc_listen,
        health_listen: cli.health_listen,
        pki,
        serving_files: cli.grpc_cert_file.zip(cli.grpc_key_file),
        client_cert_validity: cli.client_cert_validity,
        auto_approved_users: cli.auto_approved_users,
        token_audiences: cli
            .token_audiences
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect(),
        auth_cache_ttl: cli.auth_cache_ttl,
        access_cache_ttl: cli.access_cache_ttl,
        availability: AvailabilityConfig {
            grace_multiplier: cli.lease_grace_multiplier,
            ..AvailabilityConfig::default()
        },
        lease_write_interval: cli.lease_write_interval,
        broker: BrokerConfig {
            heartbeat_interval: cli.heartbeat_interval,
            limits: BrokerLimits {
                // A connection is authenticated again at least as often as certificates are
                // renewed, so one opened with a certificate never outlives it by much.
                max_connection_age: Some(cli.client_cert_validity),
                ..BrokerLimits::default()
            },
            ..BrokerConfig::default()
        },
        max_message_size: cli.max_message_size,
        bootstrap_service_account: cli.bootstrap_service_account,
        work_mqtt,
    };
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    hub::run_with_webhook(clients, config, Some(webhook), cancel).await?;
    Ok(())
}

/// How to reach the hub's apiserver: `--kubeconfig`, else `KUBECONFIG` or in-cluster.
async fn kube_config(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("no hub cluster: pass --kubeconfig, set KUBECONFIG, or run in a cluster")?,
    })
}

/// A client of the hub's apiserver with at most `max_in_flight` requests waiting for an answer
/// at once. kube's HTTP/1.1 pool opens a connection per concurrent request; unbounded, ten
/// thousand agents resubscribing at once made thousands of connections until connecting
/// failed. (A watch holds its slot only until its response starts.)
fn client(config: Config, max_in_flight: usize) -> anyhow::Result<Client> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&ConcurrencyLimitLayer::new(max_in_flight.max(1)))
        .build())
}

async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn answers_help_and_version() {
        super::Cli::command().debug_assert();
        let mut cli = super::Cli::command();
        assert_eq!(
            cli.render_version(),
            format!("ocm-hub {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(cli.render_help().to_string().contains("Usage: ocm-hub"));
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(super::size("512000"), Ok(512_000));
        assert_eq!(super::size("500Ki"), Ok(500 * 1024));
        assert_eq!(super::size("1Mi"), Ok(1 << 20));
        assert!(super::size("0").is_err());
        assert!(super::size("5MB").is_err());
        assert!(super::size("Ki").is_err());
    }
}
