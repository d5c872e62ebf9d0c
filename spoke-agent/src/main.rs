//! `ocm-agent`: the ocm-rs agent on a managed cluster. It joins the hub with a bootstrap
//! credential (OCM's gRPC bootstrap config), keeps its own certificate in a Secret on its
//! cluster, renews its lease and reports its cluster's status.

#![allow(clippy::print_stderr)] // the binary's edge reports on the terminal

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{Client, Config};
use ocm_spoke_agent::agent::{self, AgentConfig, WorkOptions};
use ocm_spoke_agent::bootstrap::BootstrapConfig;
use ocm_spoke_agent::credentials::CredentialStore;
use ocm_spoke_agent::csr::AgentName;
use ocm_spoke_agent::health::AgentHealth;
use ocm_spoke_agent::status::ClaimPolicy;
use ocm_transport::client::TransportConfig;
use ocm_transport::grpc_config::{GrpcConfigFile, parse_go_duration};
use ocm_transport::health;
use ocm_transport::http_proxy::{self, HttpProxy, ProxyEnv, ProxySource};
use ocm_transport::mqtt_config::MqttConfig;
use tokio_util::sync::CancellationToken;

/// The ocm-rs agent: registers its cluster with the hub and keeps it alive there.
#[derive(Debug, Parser)]
#[command(name = "ocm-agent", version, about, long_about = None)]
struct Cli {
    /// This cluster's name on the hub.
    #[arg(long, env = "OCM_CLUSTER_NAME")]
    cluster_name: String,
    /// This agent's name (part of its certificate's common name).
    #[arg(long, default_value = "agent")]
    agent_name: String,
    /// OCM's gRPC bootstrap config (url, caData or caFile, token or tokenFile).
    #[arg(long)]
    bootstrap_config: PathBuf,
    /// Kubeconfig of this (the managed) cluster (default: $KUBECONFIG, ~/.kube/config, or
    /// in-cluster).
    #[arg(long, env = "OCM_AGENT_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace and Secret the hub credential is kept in on this cluster.
    #[arg(long, default_value = "open-cluster-management-agent")]
    namespace: String,
    #[arg(long, default_value = "hub-kubeconfig-secret")]
    secret: String,
    /// Ask the hub for certificates this long (shorter than its default).
    #[arg(long, value_parser = duration)]
    client_cert_expiration: Option<Duration>,
    /// How long to wait for the hub to approve the join.
    #[arg(long, default_value = "1h", value_parser = duration)]
    join_timeout: Duration,
    /// How often the cluster's status is computed (sent only when it changed).
    #[arg(long, default_value = "10s", value_parser = duration)]
    status_interval: Duration,
    /// Custom ClusterClaims reported at most (reserved ones always are).
    #[arg(long, default_value_t = 20)]
    max_custom_cluster_claims: usize,
    /// Claim name suffixes that count as reserved, comma separated.
    #[arg(long, value_delimiter = ',')]
    reserved_cluster_claim_suffixes: Vec<String>,
    /// The longest raw-JSON status feedback value reported, in bytes (OCM: 1024).
    #[arg(long, default_value_t = ocm_api::work::v1::DEFAULT_MAX_JSON_RAW_LENGTH)]
    max_json_raw_length: usize,
    /// How long an AppliedManifestWork whose ManifestWork the hub no longer has is kept before
    /// what it applied is deleted.
    #[arg(long, default_value = "60m", value_parser = duration)]
    appliedmanifestwork_eviction_grace_period: Duration,
    /// The slow pass over every work; status otherwise follows watches (about a second).
    #[arg(long, default_value = "60s", value_parser = duration)]
    status_sync_interval: Duration,
    /// Where ManifestWorks come from: `grpc` (the hub's broker, over the registration
    /// connection) or `mqtt` (an MQTT v5 broker configured by --workload-source-config), as
    /// OCM's work agent flag of the same name.
    #[arg(long, default_value = "grpc", value_parser = ["grpc", "mqtt"])]
    workload_source_driver: String,
    /// OCM's MQTT config file for `--workload-source-driver mqtt` (brokerHost, caFile,
    /// clientCertFile, clientKeyFile, topics naming the source `kube`).
    #[arg(long)]
    workload_source_config: Option<PathBuf>,
    /// Where /healthz, /readyz and /metrics are served (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8092")]
    health_listen: SocketAddr,
    /// How long a vital loop (registration, work agent; the lease renewal: its period plus
    /// this) may go without turning before /healthz fails.
    #[arg(long, default_value = "3m", value_parser = duration)]
    liveness_stall_timeout: Duration,
    /// Reach the hub through this HTTP CONNECT proxy: http://[user:password@]host:port, or
    /// https:// for TLS to the proxy. Wins over HTTPS_PROXY and is used whatever NO_PROXY says.
    /// Its credentials are never logged.
    #[arg(long, env = "OCM_PROXY_URL", hide_env_values = true)]
    proxy_url: Option<String>,
    /// The CA (PEM) that signed an https:// proxy's certificate (default: the system's CAs).
    #[arg(long)]
    proxy_ca_file: Option<PathBuf>,
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
            eprintln!("ocm-agent: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let text = tokio::fs::read_to_string(&cli.bootstrap_config)
        .await
        .with_context(|| format!("reading {}", cli.bootstrap_config.display()))?;
    let grpc = GrpcConfigFile::from_yaml(&text)
        .and_then(|file| file.resolve(|path| std::fs::read_to_string(path)))
        .with_context(|| format!("bootstrap config {}", cli.bootstrap_config.display()))?;
    let mqtt = match (
        cli.workload_source_driver.as_str(),
        &cli.workload_source_config,
    ) {
        ("mqtt", Some(path)) => {
            let path = path.clone();
            Some(tokio::task::spawn_blocking(move || MqttConfig::load(&path)).await??)
        }
        ("mqtt", None) => {
            anyhow::bail!("--workload-source-driver mqtt needs --workload-source-config <file>")
        }
        _ => None,
    };
    let mut grpc = grpc;
    grpc.proxy = proxy(&cli, &grpc.url).await?;
    if grpc.proxy.is_some() && mqtt.is_some() {
        tracing::warn!("the MQTT work connection does not use the proxy; only the hub's gRPC does");
    }
    let spoke = client(cli.kubeconfig.as_deref()).await?;
    let config = AgentConfig {
        bootstrap: BootstrapConfig {
            transport: TransportConfig::Grpc(grpc),
            name: AgentName {
                cluster: cli.cluster_name,
                agent: cli.agent_name,
            },
            expiration_seconds: cli
                .client_cert_expiration
                .and_then(|d| i32::try_from(d.as_secs()).ok()),
            timeout: cli.join_timeout,
            waiting_notice: Duration::from_secs(30),
        },
        credentials: CredentialStore::new(spoke.clone(), &cli.namespace, &cli.secret),
        status_every: cli.status_interval,
        claims: ClaimPolicy {
            max_custom: cli.max_custom_cluster_claims,
            reserved_suffixes: cli.reserved_cluster_claim_suffixes,
        },
        work: WorkOptions {
            max_json_raw: cli
                .max_json_raw_length
                .min(ocm_api::work::v1::MAX_JSON_RAW_LENGTH),
            eviction_grace: cli.appliedmanifestwork_eviction_grace_period,
            resync_every: cli.status_sync_interval,
            mqtt,
        },
    };
    let cancel = CancellationToken::new();
    let observed = Arc::new(AgentHealth::new(cli.liveness_stall_timeout));
    let mut registry = prometheus_client::registry::Registry::default();
    observed.metrics.register(&mut registry);
    let listener = tokio::net::TcpListener::bind(cli.health_listen)
        .await
        .with_context(|| format!("binding the health endpoint on {}", cli.health_listen))?;
    tokio::spawn(health::serve(
        listener,
        Arc::clone(&observed),
        Arc::new(registry),
        cancel.clone(),
    ));
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    agent::run_observed(spoke, config, observed, cancel).await?;
    Ok(())
}

/// The proxy to reach the hub at `hub_url` through: `--proxy-url`, else `HTTPS_PROXY` unless
/// `NO_PROXY` (or Go's loopback rule) exempts the hub.
async fn proxy(cli: &Cli, hub_url: &str) -> anyhow::Result<Option<HttpProxy>> {
    let env = ProxyEnv::from_lookup(|name| std::env::var(name).ok());
    let target = hub_url
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let chosen = http_proxy::choose(cli.proxy_url.as_deref(), &env, target);
    let ca = match &cli.proxy_ca_file {
        Some(path) => Some(
            tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("reading --proxy-ca-file {}", path.display()))?,
        ),
        None => None,
    };
    let Some((url, source)) = chosen else {
        if ca.is_some() {
            tracing::warn!(hub = %target, "--proxy-ca-file is not used: no proxy for the hub");
        }
        return Ok(None);
    };
    let from = match source {
        ProxySource::Explicit => "--proxy-url",
        ProxySource::Environment => "HTTPS_PROXY",
    };
    let proxy = HttpProxy::from_url(url, ca.as_deref()).context(from)?;
    tracing::info!(%proxy, from, hub = %target, "reaching the hub through an HTTP proxy");
    Ok(Some(proxy))
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await.context(
            "no managed cluster: pass --kubeconfig, set KUBECONFIG, or run in a cluster",
        )?,
    };
    Ok(Client::try_from(config)?)
}

async fn shutdown_signal() {
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
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
    fn help_never_shows_the_proxy_credentials_from_the_environment() {
        let help = super::Cli::command().render_long_help().to_string();
        assert!(help.contains("--proxy-url"), "{help}");
        assert!(help.contains("OCM_PROXY_URL"), "{help}");
        // `hide_env_values`: whatever the variable holds never reaches --help.
        let arg = super::Cli::command();
        let proxy = arg
            .get_arguments()
            .find(|a| a.get_id() == "proxy_url")
            .cloned();
        assert!(proxy.is_some_and(|a| a.is_hide_env_values_set()));
    }

    #[test]
    fn answers_help_and_version() {
        super::Cli::command().debug_assert();
        let mut cli = super::Cli::command();
        assert_eq!(
            cli.render_version(),
            format!("ocm-agent {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(cli.render_help().to_string().contains("Usage: ocm-agent"));
    }
}
