//! `cargo xtask`: the project's own tasks, in Rust so they run wherever cargo does.
//!
//! - `k8s-bins`: build the real Kubernetes binaries into the cache (once per version), and fetch
//!   OCM's published CRDs there for the tests that compare against or install them.
//! - `prereqs`: install what the tests need from the machine ([`prereqs`]).
//! - `test`: `prereqs`, then the whole test suite, real clusters included (what `.ci/run` and
//!   the README use).
//! - `up` / `down` / `status`: the local environment (a hub and managed clusters).

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line tool reports on the terminal

mod prereqs;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use ocm_testbins::assets::REFERENCE_CRDS_ENV;
use ocm_testbins::components::{ALL, OCM_CRDS};
use ocm_testbins::go_build::{self, BuildOutcome};
use ocm_testbins::{Assets, AssetsLocation};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "ocm-rs project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok
    /// from their Go modules into the cache, and fetch OCM's published CRDs from OCM's API
    /// module there (each skipped when already cached).
    K8sBins {
        /// Rebuild even when a complete build is cached.
        #[arg(long)]
        force: bool,
        /// The Go command to use.
        #[arg(long, env = "GO", default_value = "go")]
        go: PathBuf,
    },
    /// Install what the tests need from the machine when it is missing (Mosquitto, tinyproxy,
    /// util-linux's setpriv, with apt-get) and find Go >= 1.26, selecting the pinned toolchain
    /// through an older go command when needed.
    Prereqs {
        /// The Go command to use.
        #[arg(long, env = "GO", default_value = "go")]
        go: PathBuf,
    },
    /// Run the whole test suite against real clusters (installs the prerequisites and builds
    /// the binaries first if needed).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Start the local environment in the background: a hub cluster running ocm-hub and managed
    /// clusters each running an ocm-agent, joined and accepted.
    Up {
        /// Extra arguments for `ocm-localenv up` (after `--`), e.g. `-- --managed 3`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Stop the local environment and every process it started.
    Down,
    /// Show whether the local environment runs, and where its kubeconfigs are.
    Status,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.task {
        Task::K8sBins { force, go } => k8s_bins(&go, force).map(|_| ()),
        Task::Prereqs { go } => prereqs::ensure(&go).map(|_| ()),
        Task::Test { cargo_args } => test(&cargo_args),
        Task::Up { args } => {
            let assets = ensure_assets()?;
            // The hub and agents run from the build beside ocm-localenv, and ocmctl is there
            // for the user.
            run_checked(cargo().args([
                "build",
                "--quiet",
                "--package",
                "ocm-hub-server",
                "--package",
                "ocm-spoke-agent",
                "--package",
                "ocm-cli",
                "--bins",
            ]))?;
            let mut full = vec!["up".to_owned(), "--ocm".to_owned()];
            full.extend(args);
            localenv(&full)?;
            println!(
                "kubectl {} is at {}: export PATH=\"{}:$PATH\"",
                ocm_testbins::components::KUBERNETES.version,
                assets.kubectl.display(),
                assets.kubectl_dir().display()
            );
            Ok(())
        }
        Task::Down => localenv(&["down".to_owned()]),
        Task::Status => localenv(&["status".to_owned()]),
    }
}

/// Builds what is missing and returns the located binaries.
fn k8s_bins(go: &std::path::Path, force: bool) -> Result<Assets> {
    let location = AssetsLocation::from_env()?;
    let external_crds = std::env::var_os(REFERENCE_CRDS_ENV).is_some_and(|v| !v.is_empty());
    if external_crds {
        eprintln!("{REFERENCE_CRDS_ENV} is set: using OCM's CRDs there, fetching none");
    }
    let mut wanted: Vec<_> = ALL
        .into_iter()
        .filter(|c| !(external_crds && *c == OCM_CRDS))
        .collect();
    let root = match &location {
        AssetsLocation::Cache(root) => root.clone(),
        AssetsLocation::Directory(_) => {
            eprintln!(
                "{} is set: using the binaries there, building none",
                ocm_testbins::assets::ASSETS_ENV
            );
            // The CRDs still come from the cache, which prebuilt binaries do not replace.
            wanted.retain(|c| c.binaries.is_empty());
            ocm_testbins::assets::default_cache_root()?
        }
    };
    if wanted.is_empty() {
        return Ok(Assets::locate(&location)?);
    }
    let go = prereqs::find_go(go, false)?;
    let progress = |line: &str| eprintln!("[k8s-bins] {line}");
    let outcomes = go_build::build_components(&go.go, &root, &wanted, force, &progress)?;
    let built: Vec<String> = outcomes
        .iter()
        .filter_map(|o| match o {
            BuildOutcome::Built {
                component, elapsed, ..
            } => Some(format!(
                "{} {} in {:.0} s",
                component.name,
                component.version,
                elapsed.as_secs_f64()
            )),
            BuildOutcome::Cached { .. } => None,
        })
        .collect();
    if !built.is_empty() {
        eprintln!("[k8s-bins] built: {}", built.join(", "));
    }
    Ok(Assets::locate(&location)?)
}

/// Binaries from `OCM_TEST_ASSETS` or the cache, building into the cache when missing, with
/// the Go named by `$GO` (default `go`).
fn ensure_assets() -> Result<Assets> {
    k8s_bins(&go_from_env(), false)
}

/// The Go command `$GO` names, else `go`.
fn go_from_env() -> PathBuf {
    std::env::var_os("GO").map_or_else(|| PathBuf::from("go"), PathBuf::from)
}

fn test(cargo_args: &[String]) -> Result<()> {
    let go = prereqs::ensure(&go_from_env())?;
    let assets = k8s_bins(&go.go, false)?;
    eprintln!(
        "[test] Kubernetes binaries: {}",
        assets
            .kube_apiserver
            .parent()
            .map_or_else(String::new, |p| p.display().to_string())
    );
    // In CI the committed Cargo.lock must already be complete.
    let locked: &[&str] = if std::env::var_os("CI").is_some_and(|v| v == "true") {
        &["--locked"]
    } else {
        &[]
    };
    // Tests that build Go (OCM's Go transports) run `go` by name: the selected one comes first.
    let path = go.child_path()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-targets"])
        .args(locked)
        .args(cargo_args);
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--doc"]).args(locked);
    if let Some(path) = &path {
        cmd.env("PATH", path);
        doc.env("PATH", path);
    }
    run_checked(&mut cmd)?;
    run_checked(&mut doc)
}

/// Runs `ocm-localenv <args> --dir <workspace>/.ocm-local`, whatever the current directory.
fn localenv(args: &[String]) -> Result<()> {
    let dir = workspace_root().join(".ocm-local");
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "ocm-testenv",
        "--bin",
        "ocm-localenv",
        "--",
    ])
    .args(args)
    .arg("--dir")
    .arg(dir);
    run_checked(&mut cmd)
}

fn workspace_root() -> PathBuf {
    let xtask_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_owned()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_every_task() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        assert!(matches!(
            Cli::parse_from(["xtask", "k8s-bins", "--force"]).task,
            Task::K8sBins { force: true, .. }
        ));
        assert!(matches!(
            Cli::parse_from(["xtask", "prereqs"]).task,
            Task::Prereqs { .. }
        ));
        let Task::Test { cargo_args } =
            Cli::parse_from(["xtask", "test", "--", "--test", "x"]).task
        else {
            panic!("test task expected");
        };
        assert_eq!(cargo_args, ["--test", "x"]);
    }

    #[test]
    fn cache_root_is_outside_the_repository() {
        let root = ocm_testbins::assets::default_cache_root().unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap();
        assert!(
            !root.starts_with(repo),
            "{} is inside {}",
            root.display(),
            repo.display()
        );
    }
}
