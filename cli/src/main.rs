//! `ocmctl`: clusteradm-style command line for an ocm-rs hub.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line prints

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::kube::api::ListParams;
use ocm_api::kube::config::{KubeConfigOptions, Kubeconfig};
use ocm_api::kube::{Api, Client, Config};
use ocm_cli::hub::HubUrl;
use ocm_cli::join::{JoinRequest, Joined, Mode};
use ocm_cli::local::LocalFiles;
use ocm_cli::progress::Reporter;

/// Manage an ocm-rs hub and its clusters, with clusteradm's verbs.
#[derive(Debug, Parser)]
#[command(name = "ocmctl", version, about, long_about = None)]
struct Cli {
    /// Kubeconfig of the cluster the command acts on: the hub for init, get, accept, create and
    /// delete (else $OCM_HUB_KUBECONFIG), the managed cluster for join and unjoin (default:
    /// $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// How long --wait waits (e.g. 90s, 5m).
    #[arg(long, global = true, default_value = "5m", value_parser = duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make this cluster an ocm-rs hub: OCM's CRDs, the bootstrap ServiceAccount and its
    /// ClusterRole, the hub CA; prints the command that joins a managed cluster.
    Init {
        /// Where agents reach ocm-hub's gRPC broker: host:port (a name in ocm-hub's
        /// --grpc-hosts, its --grpc-listen port).
        #[arg(long, value_parser = hub_url)]
        hub_url: HubUrl,
        /// Wait until ocm-hub serves at --hub-url with this hub's CA.
        #[arg(long)]
        wait: bool,
        #[arg(short, long, value_enum, default_value = "text")]
        output: TextOrJson,
        /// How long the printed bootstrap token is valid.
        #[arg(long, default_value = "1h", value_parser = duration)]
        token_expiration: Duration,
    },
    /// Show objects on the hub.
    Get {
        #[command(subcommand)]
        what: Get,
    },
    /// Create objects on the hub.
    Create {
        #[command(subcommand)]
        what: Create,
    },
    /// Delete objects on the hub.
    Delete {
        #[command(subcommand)]
        what: Delete,
    },
    /// Accept clusters that asked to join: approve their certificate requests and set
    /// hubAcceptsClient.
    Accept {
        /// Clusters to accept, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        clusters: Vec<String>,
        /// Wait (up to --timeout) for clusters that have not asked to join yet (their
        /// ManagedCluster and certificate request).
        #[arg(long)]
        wait: bool,
        /// Whose certificate requests may be approved (default: the bootstrap identities and
        /// the cluster's own agents). Several waiting requests of those are refused.
        #[arg(long, value_delimiter = ',')]
        requesters: Vec<String>,
        /// Approve every waiting certificate request of the cluster, whoever asked.
        #[arg(long)]
        skip_approve_check: bool,
    },
    /// Join the managed cluster of --kubeconfig to a hub (run the command `ocmctl init` or
    /// `ocmctl get token` printed on the hub).
    Join {
        /// A bootstrap token of the hub.
        #[arg(long)]
        hub_token: String,
        /// Where the hub's gRPC broker is: host:port.
        #[arg(long, value_parser = hub_url)]
        hub_url: HubUrl,
        /// The hub CA: base64 of its PEM, as the join command gives it.
        #[arg(long, required_unless_present = "ca_file", conflicts_with = "ca_file")]
        ca_data: Option<String>,
        /// The hub CA as a PEM file, instead of --ca-data.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// This cluster's name on the hub.
        #[arg(long)]
        cluster_name: String,
        /// Run the agent as a local background process instead of a Deployment on the cluster.
        #[arg(long)]
        local: bool,
        /// With --local: the ocm-agent binary (default: beside ocmctl).
        #[arg(long, requires = "local")]
        agent_binary: Option<PathBuf>,
        /// With --local: where the agent's bootstrap config, log and pid are kept.
        #[arg(long, env = "OCMCTL_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The agent image of the Deployment.
        #[arg(long, conflicts_with = "local")]
        image: Option<String>,
        /// Wait until the hub has approved the join (the agent holds its hub certificate).
        #[arg(long)]
        wait: bool,
        /// Skip checking from here that the hub serves with this CA and accepts the token.
        #[arg(long)]
        skip_preflight: bool,
        /// An HTTP CONNECT proxy the agent (and the preflight) reaches the hub through:
        /// http://[user:password@]host:port, or https:// for TLS to the proxy. The agent gets
        /// it in its environment (from the bootstrap Secret in the cluster), never as an
        /// argument.
        #[arg(long)]
        proxy_url: Option<String>,
        /// The CA (PEM file) of an https:// proxy's certificate.
        #[arg(long, requires = "proxy_url")]
        proxy_ca_file: Option<PathBuf>,
    },
    /// Remove what `join` set up on the managed cluster of --kubeconfig (stops a local agent).
    Unjoin {
        /// The cluster's name on the hub.
        #[arg(long)]
        cluster_name: String,
        /// Where `join --local` kept the agent's files.
        #[arg(long, env = "OCMCTL_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Unjoin even while work the agent applied is on the cluster: its resources are
        /// deleted or left as each work's delete option says (left, for an unknown work).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Get {
    /// Managed clusters, with OCM's columns.
    Clusters {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// ManifestWorks: whether they were applied and are available, and the status fed back.
    #[command(alias = "work")]
    Works {
        /// Only the works of this name.
        name: Option<String>,
        /// Only this managed cluster's works (default: every cluster's).
        #[arg(short, long)]
        cluster: Option<String>,
        /// Only these managed clusters' works, comma separated.
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
    },
    /// A new bootstrap token, and the join command with it.
    Token {
        /// The hub URL to put in the join command (default: the one `ocmctl init` recorded).
        #[arg(long, value_parser = hub_url)]
        hub_url: Option<HubUrl>,
        #[arg(short, long, value_enum, default_value = "text")]
        output: TextOrJson,
        /// How long the token is valid.
        #[arg(long, default_value = "1h", value_parser = duration)]
        token_expiration: Duration,
    },
}

#[derive(Debug, Subcommand)]
enum Create {
    /// A ManifestWork with the manifests of -f in each cluster's namespace (or, with
    /// --overwrite, new manifests for the work already there).
    #[command(group(ArgGroup::new("targets").required(true).multiple(true).args(["cluster", "clusters"])))]
    Work {
        /// The work's name (the same in every cluster).
        name: String,
        /// The manifests: a YAML or JSON file of one or more objects (documents separated by
        /// `---`), a directory of .yaml/.yml/.json files, or - for standard input. Repeatable.
        #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// A managed cluster to deliver the work to.
        #[arg(short, long)]
        cluster: Option<String>,
        /// Managed clusters to deliver the work to, comma separated.
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        /// Replace the manifests of a work that already exists, rather than refusing.
        #[arg(long)]
        overwrite: bool,
    },
}

#[derive(Debug, Subcommand)]
enum Delete {
    /// The ManifestWork <name> in each cluster's namespace; the cluster's agent removes what it
    /// applied first.
    #[command(group(ArgGroup::new("targets").required(true).multiple(true).args(["cluster", "clusters"])))]
    Work {
        /// The work's name.
        name: String,
        /// The managed cluster whose work to delete.
        #[arg(short, long)]
        cluster: Option<String>,
        /// Managed clusters whose work to delete, comma separated.
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        /// Wait (up to --timeout) until the work is gone, i.e. the agent has removed what it
        /// applied.
        #[arg(long)]
        wait: bool,
        /// Remove the work's finalizers too: gone at once, without waiting for the agent (what
        /// the work applied may stay on the cluster).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TextOrJson {
    Text,
    Json,
}

fn hub_url(text: &str) -> Result<HubUrl, String> {
    HubUrl::parse(text).map_err(|e| e.to_string())
}

fn duration(text: &str) -> Result<Duration, String> {
    ocm_transport::grpc_config::parse_go_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 90s, 5m or 1h"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ocmctl: {}", report(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause only if the text so far does not already say it.
fn report(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

fn progress() -> Reporter<std::io::Stderr> {
    let terminal = std::io::stderr().is_terminal();
    Reporter::new(std::io::stderr(), terminal)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            hub_url,
            wait,
            output,
            token_expiration,
        } => {
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let options = ocm_cli::init::InitOptions {
                hub_url: hub_url.clone(),
                token_expiration,
            };
            let initialized = ocm_cli::init::init(&client, &options).await?;
            if wait {
                ocm_cli::hub::wait_until_serving(
                    &hub_url,
                    &initialized.ca_pem,
                    cli.timeout,
                    &mut progress(),
                )
                .await?;
            }
            match output {
                TextOrJson::Json => {
                    println!("{}", serde_json::to_string_pretty(&initialized.join)?)
                }
                TextOrJson::Text => {
                    print!("{}", ocm_cli::init::text(&initialized.join, &hub_url, wait))
                }
            }
        }
        Command::Get {
            what:
                Get::Token {
                    hub_url,
                    output,
                    token_expiration,
                },
        } => {
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let join =
                ocm_cli::token::get_token(&client, hub_url.as_ref(), token_expiration).await?;
            match output {
                TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&join)?),
                TextOrJson::Text => print!("{}", join.text()),
            }
        }
        Command::Get {
            what: Get::Clusters { output },
        } => {
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let clusters = Api::<ManagedCluster>::all(client)
                .list(&ListParams::default())
                .await
                .context("listing ManagedClusters (is this an ocm-rs hub? run `ocmctl init` and ocm-hub against it)")?
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
        Command::Get {
            what:
                Get::Works {
                    name,
                    cluster,
                    clusters,
                    output,
                },
        } => {
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let targets = match (&cluster, clusters.is_empty()) {
                (None, true) => Vec::new(),
                _ => ocm_cli::works::target_clusters(cluster.as_deref(), &clusters)?,
            };
            let works = ocm_cli::works::list(&client, name.as_deref(), &targets).await?;
            match output {
                Output::Table if works.is_empty() => println!(
                    "No works found{}{}.",
                    name.map(|n| format!(" named {n}")).unwrap_or_default(),
                    match targets.as_slice() {
                        [] => String::new(),
                        [one] => format!(" in cluster {one}"),
                        many => format!(" in clusters {}", many.join(", ")),
                    }
                ),
                Output::Table => {
                    print!("{}", ocm_cli::works::table(&works, jiff::Timestamp::now()))
                }
                Output::Json => println!("{}", serde_json::to_string_pretty(&works)?),
                Output::Yaml => print!("{}", serde_saphyr::to_string(&works)?),
            }
        }
        Command::Create {
            what:
                Create::Work {
                    name,
                    files,
                    cluster,
                    clusters,
                    overwrite,
                },
        } => {
            let targets = ocm_cli::works::target_clusters(cluster.as_deref(), &clusters)?;
            let manifests = ocm_cli::manifests::read(&files, &mut std::io::stdin().lock())?;
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let created =
                ocm_cli::works::create(&client, &name, &manifests, &targets, overwrite).await?;
            for (cluster, outcome) in created {
                println!("{cluster}: work {name} {}", outcome.as_str());
            }
        }
        Command::Delete {
            what:
                Delete::Work {
                    name,
                    cluster,
                    clusters,
                    wait,
                    force,
                },
        } => {
            use ocm_cli::works::Deletion;
            let targets = ocm_cli::works::target_clusters(cluster.as_deref(), &clusters)?;
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let deleted = ocm_cli::works::delete(&client, &name, &targets, force).await?;
            let mut pending = Vec::new();
            for (cluster, outcome) in deleted {
                match outcome {
                    Deletion::NotFound => {
                        println!("{cluster}: work {name} not found (already deleted)")
                    }
                    Deletion::Deleted => println!("{cluster}: work {name} deleted"),
                    Deletion::Deleting(waiting) if wait => pending.push(waiting),
                    Deletion::Deleting(_) => println!(
                        "{cluster}: work {name} is being deleted; the cluster's agent removes what it applied first (--wait waits for that)"
                    ),
                }
            }
            if !pending.is_empty() {
                ocm_cli::works::wait_until_deleted(
                    &client,
                    &name,
                    &pending,
                    cli.timeout,
                    &mut progress(),
                )
                .await?;
                for waited in pending {
                    println!("{}: work {name} deleted", waited.cluster);
                }
            }
        }
        Command::Accept {
            clusters,
            wait,
            requesters,
            skip_approve_check,
        } => {
            let client = hub_client(cli.kubeconfig.as_deref()).await?;
            let options = ocm_cli::accept::AcceptOptions {
                wait: if wait { cli.timeout } else { Duration::ZERO },
                requesters,
                skip_approve_check,
            };
            for cluster in &clusters {
                let accepted = ocm_cli::accept::accept(&client, cluster, &options).await?;
                for skipped in &accepted.skipped {
                    eprintln!("{cluster}: not approved, its requester does not count: {skipped}");
                }
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
        Command::Join {
            hub_token,
            hub_url,
            ca_data,
            ca_file,
            cluster_name,
            local,
            agent_binary,
            state_dir,
            image,
            wait,
            skip_preflight,
            proxy_url,
            proxy_ca_file,
        } => {
            let proxy_ca = match &proxy_ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading --proxy-ca-file {}", path.display()))?,
                ),
                None => None,
            };
            let proxy = proxy_url
                .as_deref()
                .map(|url| ocm_cli::join::AgentProxy::new(url, proxy_ca.as_deref()))
                .transpose()?;
            let request = match (ca_data, ca_file) {
                (_, Some(path)) => {
                    let pem = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading --ca-file {}", path.display()))?;
                    JoinRequest::with_ca_pem(&cluster_name, hub_url, &hub_token, &pem)?
                }
                (Some(data), None) => JoinRequest::new(&cluster_name, hub_url, &hub_token, &data)?,
                (None, None) => anyhow::bail!("pass the hub CA with --ca-data or --ca-file"),
            }
            .through(proxy);
            let spoke = spoke_client(cli.kubeconfig.as_deref()).await?;
            if !skip_preflight {
                ocm_cli::join::preflight(&request).await?;
            }
            let files = match local {
                true => Some(LocalFiles::new(
                    &state_dir_or_default(state_dir)?,
                    &cluster_name,
                )),
                false => None,
            };
            let mode = match &files {
                Some(files) => Mode::Local {
                    agent_binary: match agent_binary {
                        Some(path) => path,
                        None => agent_beside_ocmctl()?,
                    },
                    files: files.clone(),
                    spoke_kubeconfig: cli.kubeconfig.as_deref().map(ocm_cli::join::absolute),
                },
                None => Mode::InCluster {
                    image: image.unwrap_or_else(ocm_cli::join::default_image),
                },
            };
            if let Some(proxy) = &request.proxy {
                println!("{cluster_name}: the agent reaches the hub through the proxy {proxy}");
            }
            match ocm_cli::join::join(&spoke, &request, &mode).await? {
                Joined::Local(started) => println!(
                    "{cluster_name}: ocm-agent runs locally (pid {}, log {}, health http://{}/healthz)",
                    started.pid,
                    started.log.display(),
                    started.health
                ),
                Joined::Applied(objects) => {
                    for object in objects {
                        println!("{cluster_name}: applied {object}");
                    }
                }
            }
            if wait {
                ocm_cli::join::wait_for_credential(
                    &spoke,
                    &cluster_name,
                    files.as_ref(),
                    cli.timeout,
                    &mut progress(),
                )
                .await?;
                println!(
                    "{cluster_name} joined the hub at {}; on the hub, `ocmctl get clusters` shows it.",
                    request.hub_url
                );
            } else {
                println!(
                    "Please log onto the hub cluster and run the following command:\n\n    \
                     ocmctl accept --clusters {cluster_name}\n"
                );
            }
        }
        Command::Unjoin {
            cluster_name,
            state_dir,
            force,
        } => {
            let spoke = spoke_client(cli.kubeconfig.as_deref()).await?;
            let files = state_dir_or_default(state_dir)
                .ok()
                .map(|dir| LocalFiles::new(&dir, &cluster_name));
            let unjoined = ocm_cli::unjoin::unjoin(
                &spoke,
                &cluster_name,
                files.as_ref(),
                force,
                cli.timeout,
                &mut progress(),
            )
            .await?;
            if let Some((pid, log)) = &unjoined.stopped {
                println!(
                    "{cluster_name}: stopped the local agent (pid {pid}); its log stays at {}",
                    log.display()
                );
            }
            for released in &unjoined.released {
                println!(
                    "{cluster_name}: released AppliedManifestWork {}: deleted [{}], left [{}]",
                    released.record,
                    released.deleted.join(", "),
                    released.orphaned.join(", ")
                );
            }
            for object in &unjoined.deleted {
                println!("{cluster_name}: deleted {object}");
            }
            if unjoined.stopped.is_none() && unjoined.deleted.is_empty() {
                println!("{cluster_name}: nothing of its agent was here");
            }
            println!(
                "The hub still lists {cluster_name}; to remove it there: kubectl delete managedcluster {cluster_name}"
            );
        }
    }
    Ok(())
}

/// `--state-dir`, else `$XDG_STATE_HOME/ocmctl`, else `~/.local/state/ocmctl`.
fn state_dir_or_default(state_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    // Absolute: the agent's command line names its bootstrap config by this path, and unjoin
    // recognises the agent by it, whatever the working directory.
    if let Some(dir) = state_dir {
        return Ok(std::path::absolute(&dir).unwrap_or(dir));
    }
    let home = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    home("XDG_STATE_HOME")
        .or_else(|| home("HOME").map(|h| h.join(".local").join("state")))
        .map(|dir| dir.join("ocmctl"))
        .context("no state directory: pass --state-dir (or set OCMCTL_STATE_DIR or HOME)")
}

/// `ocm-agent` in the directory of the running ocmctl (where cargo builds both).
fn agent_beside_ocmctl() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating ocmctl itself; pass --agent-binary")?;
    let agent = exe.with_file_name("ocm-agent");
    if !agent.is_file() {
        anyhow::bail!(
            "no ocm-agent beside ocmctl ({}): pass --agent-binary <path>, or build it with `cargo build -p ocm-spoke-agent`",
            agent.display()
        );
    }
    Ok(agent)
}

async fn hub_client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let from_env = std::env::var_os("OCM_HUB_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    client(kubeconfig.or(from_env.as_deref()), "the hub").await
}

async fn spoke_client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    client(kubeconfig, "the managed cluster").await
}

async fn client(kubeconfig: Option<&Path>, which: &str) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await.with_context(|| {
            format!("no kubeconfig for {which}: pass --kubeconfig or set KUBECONFIG")
        })?,
    };
    Ok(Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

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

    #[test]
    fn errors_name_each_cause_once() {
        let inner = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(inner)
            .context("reading the hub CA: connection refused")
            .context("ocmctl init");
        assert_eq!(
            super::report(&err),
            "ocmctl init: reading the hub CA: connection refused"
        );
    }

    #[test]
    fn work_verbs_take_clusteradms_flags() {
        let parse = |args: &[&str]| super::Cli::try_parse_from([&["ocmctl"], args].concat());
        let create = parse(&[
            "create",
            "work",
            "web",
            "-f",
            "a.yaml",
            "-f",
            "-",
            "-c",
            "c1",
            "--clusters",
            "c2,c3",
            "--overwrite",
        ])
        .unwrap();
        match create.command {
            super::Command::Create {
                what:
                    super::Create::Work {
                        files,
                        cluster,
                        clusters,
                        overwrite,
                        ..
                    },
            } => {
                assert_eq!(files.len(), 2);
                assert_eq!(cluster.as_deref(), Some("c1"));
                assert_eq!(clusters, ["c2", "c3"]);
                assert!(overwrite);
            }
            other => panic!("{other:?}"),
        }
        let no_cluster = parse(&["create", "work", "web", "-f", "a.yaml"]).unwrap_err();
        assert!(no_cluster.to_string().contains("--cluster"), "{no_cluster}");
        assert!(parse(&["create", "work", "web", "--clusters", "c1"]).is_err());
        assert!(parse(&["get", "works"]).is_ok());
        assert!(parse(&["get", "work", "web", "--cluster", "c1", "-o", "yaml"]).is_ok());
        assert!(
            parse(&[
                "delete",
                "work",
                "web",
                "--clusters",
                "c1,c2",
                "--wait",
                "--force"
            ])
            .is_ok()
        );
        assert!(parse(&["delete", "work", "web"]).is_err());
    }

    #[test]
    fn join_takes_clusteradms_flags() {
        let cli = super::Cli::try_parse_from([
            "ocmctl",
            "join",
            "--hub-token",
            "t",
            "--hub-url",
            "hub:8090",
            "--ca-data",
            "Q0E=",
            "--cluster-name",
            "c1",
            "--local",
            "--wait",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
        let missing_ca = super::Cli::try_parse_from([
            "ocmctl",
            "join",
            "--hub-token",
            "t",
            "--hub-url",
            "hub:8090",
            "--cluster-name",
            "c1",
        ]);
        assert!(missing_ca.is_err());
        let bad_url = super::Cli::try_parse_from(["ocmctl", "init", "--hub-url", "grpc://hub"])
            .unwrap_err()
            .to_string();
        assert!(bad_url.contains("host:port"), "{bad_url}");
    }
}
