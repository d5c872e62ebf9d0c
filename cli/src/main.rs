//! `ocmctl`: clusteradm-style command line for an ocm-rs hub.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line prints

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::kube::api::ListParams;
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{Api, Client, Config};

/// Manage an ocm-rs hub: its clusters, and later their work.
#[derive(Debug, Parser)]
#[command(name = "ocmctl", version, about, long_about = None)]
struct Cli {
    /// Kubeconfig of the hub cluster (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, env = "OCM_HUB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show objects on the hub.
    Get {
        #[command(subcommand)]
        what: Get,
    },
    /// Accept clusters that asked to join: approve their certificate requests and set
    /// hubAcceptsClient.
    Accept {
        /// Clusters to accept, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        clusters: Vec<String>,
        /// Wait (up to 5 minutes) for clusters that have not joined yet.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Get {
    /// Managed clusters, with OCM's columns.
    Clusters {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Yaml,
    Json,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ocmctl: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = client(cli.kubeconfig.as_deref()).await?;
    match cli.command {
        Command::Get {
            what: Get::Clusters { output },
        } => {
            let clusters = Api::<ManagedCluster>::all(client)
                .list(&ListParams::default())
                .await
                .context("listing ManagedClusters (is this an ocm-rs hub? run ocm-hub against it)")?
                .items;
            match output {
                Output::Table if clusters.is_empty() => {
                    println!("No clusters have joined this hub.")
                }
                Output::Table => print!(
                    "{}",
                    ocm_cli::clusters::table(&clusters, jiff::Timestamp::now())
                ),
                Output::Json => println!("{}", serde_json::to_string_pretty(&clusters)?),
                Output::Yaml => print!("{}", serde_saphyr::to_string(&clusters)?),
            }
        }
        Command::Accept { clusters, wait } => {
            let wait = if wait {
                Duration::from_secs(300)
            } else {
                Duration::ZERO
            };
            for cluster in &clusters {
                let accepted = ocm_cli::accept::accept(&client, cluster, wait).await?;
                let csrs = if accepted.approved.is_empty() {
                    "no pending certificate request".to_owned()
                } else {
                    format!("approved {}", accepted.approved.join(", "))
                };
                let state = if accepted.already {
                    "was already accepted"
                } else {
                    "accepted"
                };
                println!("{cluster}: {state}; {csrs}");
            }
        }
    }
    Ok(())
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("no hub: pass --kubeconfig or set KUBECONFIG")?,
    };
    Ok(Client::try_from(config)?)
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
            format!("ocmctl {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(cli.render_help().to_string().contains("Usage: ocmctl"));
    }
}
