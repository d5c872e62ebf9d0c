//! What the test suite needs from the machine, and installing it where it can: the one place
//! for it, run by `cargo xtask test` before anything else and by `.ci/run`, so the README's test
//! command works on a fresh Debian machine exactly as CI does.
//!
//! - Programs the tests run ([`PROGRAMS`]): installed with `apt-get` (through `sudo` when not
//!   root) when missing, and only those.
//! - Go >= 1.26 for the Kubernetes binaries and OCM's Go transports. An older installed Go
//!   (>= 1.21) fetches the pinned toolchain through the go command's own toolchain selection
//!   (`GOTOOLCHAIN=go1.26.x`), from the Go module proxy it already uses: Go never comes from an
//!   address of ours. Without any Go, Debian's `golang-go` is installed when it is new enough
//!   for that.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use ocm_testbins::components::{GO_TOOLCHAIN, MIN_GO};
use ocm_testbins::go_build::{self, BuildError};

/// A program the tests run, and the Debian package that has it.
#[derive(Debug)]
struct Program {
    name: &'static str,
    package: &'static str,
    /// Where the tests look for it: `None` on `PATH`, else these files (the packaged places).
    files: Option<&'static [&'static str]>,
    why: &'static str,
}

const PROGRAMS: &[Program] = &[
    Program {
        name: "setpriv",
        package: "util-linux",
        files: None,
        why: "ties test cluster processes to their owner so none outlive it",
    },
    Program {
        name: "tinyproxy",
        package: "tinyproxy",
        files: Some(&["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]),
        // The package may also start tinyproxy as a service; the tests run their own instances.
        why: "the HTTP CONNECT proxy the transport tests tunnel through",
    },
    Program {
        name: "mosquitto",
        package: "mosquitto",
        files: Some(&["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]),
        why: "the MQTT v5 broker the MQTT tests run against",
    },
];

/// The oldest Go whose go command can select another toolchain (`GOTOOLCHAIN`).
const TOOLCHAIN_SELECTION_SINCE: (u32, u32) = (1, 21);

/// The Go that builds and tests use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Go {
    /// The go command to run.
    pub(crate) go: PathBuf,
    /// Its `go env GOVERSION`.
    pub(crate) version: String,
    /// A directory to put first on children's `PATH`, because tests run `go` by name: set when
    /// the go command is not simply the one `PATH` already finds.
    pub(crate) bin_dir: Option<PathBuf>,
}

impl Go {
    /// `PATH` for child processes, with [`Go::bin_dir`] first.
    pub(crate) fn child_path(&self) -> Result<Option<OsString>> {
        let Some(dir) = &self.bin_dir else {
            return Ok(None);
        };
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(dir.clone()).chain(std::env::split_paths(&rest));
        Ok(Some(
            std::env::join_paths(paths).context("cannot put the Go directory on PATH")?,
        ))
    }
}

/// Installs the missing programs, then finds (or selects) the Go to use, as `go` names it.
pub(crate) fn ensure(go: &Path) -> Result<Go> {
    let missing: Vec<&Program> = PROGRAMS.iter().filter(|p| find(p).is_none()).collect();
    if !missing.is_empty() {
        let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
        let why = missing
            .iter()
            .map(|p| format!("{} ({}: {})", p.package, p.name, p.why))
            .collect::<Vec<_>>()
            .join(", ");
        eprintln!("[prereqs] missing: {why}");
        install(&packages).with_context(|| format!("the tests need {why}"))?;
        let still: Vec<&str> = missing
            .iter()
            .filter(|p| find(p).is_none())
            .map(|p| p.name)
            .collect();
        if !still.is_empty() {
            bail!(
                "installed {} but still cannot find {}",
                packages.join(" "),
                still.join(", ")
            );
        }
    }
    for program in PROGRAMS {
        if let Some(path) = find(program) {
            eprintln!("[prereqs] {}: {}", program.name, path.display());
        }
    }
    let go = find_go(go, true)?;
    eprintln!("[prereqs] go: {} ({})", go.version, go.go.display());
    Ok(go)
}

fn find(program: &Program) -> Option<PathBuf> {
    match program.files {
        Some(files) => files.iter().map(PathBuf::from).find(|p| p.is_file()),
        None => on_path(program.name),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Go to build and test with: `go` itself when it is new enough; else the pinned toolchain
/// as `go` selects it. With `install`, a machine without any Go gets Debian's `golang-go` first
/// if that is new enough to select the toolchain.
pub(crate) fn find_go(go: &Path, install: bool) -> Result<Go> {
    match go_build::check_go(go) {
        Ok(version) => {
            // `--go /opt/go/bin/go` (or `GO=`): tests run `go` by name, so they must find it.
            let bin_dir = go
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map(Path::to_owned);
            Ok(Go {
                go: go.to_owned(),
                version,
                bin_dir,
            })
        }
        Err(BuildError::GoTooOld { found, .. }) => select_toolchain(go, &found),
        Err(BuildError::GoMissing { .. }) if install && go == Path::new("go") => {
            install_debian_go()?;
            find_go(go, false)
        }
        Err(err) => Err(err.into()),
    }
}

/// Runs `GOTOOLCHAIN=<pinned> go env GOROOT`: the go command fetches the pinned toolchain as a
/// module through its own proxy settings (and checks it against the checksum database), and
/// names where it is.
fn select_toolchain(go: &Path, found: &str) -> Result<Go> {
    let selectable = go_build::parse_go_version(found)
        .is_some_and(|(major, minor, _)| (major, minor) >= TOOLCHAIN_SELECTION_SINCE);
    if !selectable {
        bail!(
            "{} is {found}: building Kubernetes needs Go >= {}.{}, and a go command older than \
             {}.{} cannot fetch a newer toolchain itself. Install Go >= {}.{} and put it first on \
             PATH (or any Go >= {}.{}: this command then selects {GO_TOOLCHAIN} through it).",
            go.display(),
            MIN_GO.0,
            MIN_GO.1,
            TOOLCHAIN_SELECTION_SINCE.0,
            TOOLCHAIN_SELECTION_SINCE.1,
            MIN_GO.0,
            MIN_GO.1,
            TOOLCHAIN_SELECTION_SINCE.0,
            TOOLCHAIN_SELECTION_SINCE.1,
        );
    }
    eprintln!(
        "[prereqs] {} is {found}; selecting {GO_TOOLCHAIN} through it (GOTOOLCHAIN)",
        go.display()
    );
    let output = Command::new(go)
        .args(["env", "GOROOT"])
        .env("GOTOOLCHAIN", GO_TOOLCHAIN)
        .output()
        .with_context(|| format!("could not run {}", go.display()))?;
    if !output.status.success() {
        bail!(
            "`GOTOOLCHAIN={GO_TOOLCHAIN} {} env GOROOT` failed (the go command fetches the \
             toolchain from the Go module proxy in `go env GOPROXY`):\n{}",
            go.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let root = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let bin = root.join("bin");
    let selected = bin.join("go");
    let version = go_build::check_go(&selected).with_context(|| {
        format!(
            "the toolchain {GO_TOOLCHAIN} selected at {}",
            root.display()
        )
    })?;
    Ok(Go {
        go: selected,
        version,
        bin_dir: Some(bin),
    })
}

/// Installs Debian's `golang-go` when its version can select the pinned toolchain; otherwise
/// says what to install.
fn install_debian_go() -> Result<()> {
    let candidate = on_path("apt-cache").and_then(|apt_cache| {
        let output = Command::new(apt_cache)
            .args(["policy", "golang-go"])
            .output()
            .ok()?;
        apt_candidate(&String::from_utf8_lossy(&output.stdout))
    });
    let usable = candidate
        .as_deref()
        .and_then(|v| go_build::parse_go_version(&format!("go{v}")))
        .is_some_and(|(major, minor, _)| (major, minor) >= TOOLCHAIN_SELECTION_SINCE);
    if !usable {
        let packaged = candidate.map_or_else(
            || "no golang-go package is available here".to_owned(),
            |v| format!("this system's golang-go is {v}, too old to select another toolchain"),
        );
        bail!(
            "Go is not installed: the Kubernetes test binaries and OCM's Go transports are built \
             with Go >= {}.{}. Install Go >= {}.{} and put it on PATH; any Go >= {}.{} also does, \
             as this command then selects {GO_TOOLCHAIN} through it ({packaged}).",
            MIN_GO.0,
            MIN_GO.1,
            MIN_GO.0,
            MIN_GO.1,
            TOOLCHAIN_SELECTION_SINCE.0,
            TOOLCHAIN_SELECTION_SINCE.1,
        );
    }
    eprintln!(
        "[prereqs] Go is not installed; installing golang-go {} to select {GO_TOOLCHAIN} with",
        candidate.unwrap_or_default()
    );
    install(&["golang-go"])
}

/// The upstream version of `apt-cache policy`'s candidate, e.g. `2:1.19~1` gives `1.19`.
fn apt_candidate(policy: &str) -> Option<String> {
    let candidate = policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))?
        .trim();
    if candidate == "(none)" {
        return None;
    }
    let without_epoch = candidate.split_once(':').map_or(candidate, |(_, v)| v);
    let upstream: String = without_epoch
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (!upstream.is_empty()).then_some(upstream)
}

/// `apt-get update` and `apt-get install` of `packages`, as root or through `sudo`.
fn install(packages: &[&str]) -> Result<()> {
    let by_hand = format!("apt-get install {}", packages.join(" "));
    if on_path("apt-get").is_none() {
        bail!(
            "apt-get is not available to install them: install the packages {} with this \
             system's package manager",
            packages.join(", ")
        );
    }
    let sudo = if is_root() {
        false
    } else if on_path("sudo").is_some() {
        true
    } else {
        bail!("not root and no sudo, so they cannot be installed here: run `{by_hand}` as root");
    };
    let apt = |args: &[&str]| {
        // `sudo env …` rather than `sudo VAR=… …`, which sudo's policy may refuse.
        let mut cmd = if sudo {
            let mut cmd = Command::new("sudo");
            cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            cmd
        } else {
            let mut cmd = Command::new("apt-get");
            cmd.env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        };
        cmd.args(args);
        let sudo_prefix = if sudo { "sudo " } else { "" };
        eprintln!("[prereqs] {sudo_prefix}apt-get {}", args.join(" "));
        let status = cmd
            .status()
            .with_context(|| format!("could not run {cmd:?}"))?;
        if !status.success() {
            bail!("{cmd:?} failed ({status}); install them yourself: `{by_hand}`");
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(packages);
    apt(&args)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(path: &Path, body: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn apt_candidates_lose_their_epoch_and_debian_revision() {
        let policy = "golang-go:\n  Installed: (none)\n  Candidate: 2:1.19~1\n  Version table:\n";
        assert_eq!(apt_candidate(policy).as_deref(), Some("1.19"));
        let trixie = "golang-go:\n  Installed: (none)\n  Candidate: 2:1.24~2\n";
        assert_eq!(apt_candidate(trixie).as_deref(), Some("1.24"));
        assert_eq!(apt_candidate("golang-go:\n  Candidate: (none)\n"), None);
        assert_eq!(apt_candidate(""), None);
    }

    #[test]
    fn a_new_enough_go_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let go = dir.path().join("bin/go");
        script(&go, "echo go1.26.8");
        let found = find_go(&go, false).unwrap();
        assert_eq!(found.go, go);
        assert_eq!(found.version, "go1.26.8");
        assert_eq!(
            found.bin_dir.as_deref(),
            Some(dir.path().join("bin").as_path())
        );
    }

    /// A go command that answers like Go 1.24 and, asked with `GOTOOLCHAIN`, names a toolchain
    /// whose go is 1.26: what `go env GOROOT` gives after the go command fetched it.
    #[test]
    fn an_older_go_selects_the_pinned_toolchain() {
        let dir = tempfile::tempdir().unwrap();
        let toolchain = dir.path().join("toolchain");
        script(&toolchain.join("bin/go"), "echo go1.26.8");
        let old = dir.path().join("old/go");
        script(
            &old,
            &format!(
                "if [ \"$GOTOOLCHAIN\" = {GO_TOOLCHAIN} ] && [ \"$*\" = 'env GOROOT' ]; then \
                 echo {}; else echo go1.24.4; fi",
                toolchain.display()
            ),
        );
        let found = find_go(&old, false).unwrap();
        assert_eq!(found.go, toolchain.join("bin/go"));
        assert_eq!(found.version, "go1.26.8");
        assert_eq!(found.bin_dir, Some(toolchain.join("bin")));
        let path = found.child_path().unwrap().unwrap();
        assert_eq!(
            std::env::split_paths(&path).next(),
            Some(toolchain.join("bin"))
        );
    }

    #[test]
    fn a_go_too_old_to_select_a_toolchain_names_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("go");
        script(&old, "echo go1.19.8");
        let message = format!("{:#}", find_go(&old, false).unwrap_err());
        assert!(message.contains("go1.19.8"), "{message}");
        assert!(message.contains("Install Go >= 1.26"), "{message}");
        assert!(message.contains(GO_TOOLCHAIN), "{message}");
    }

    #[test]
    fn a_failed_selection_shows_the_go_commands_error() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("go");
        script(
            &old,
            "if [ -n \"$GOTOOLCHAIN\" ] && [ \"$GOTOOLCHAIN\" != local ]; then \
             echo 'go: downloading toolchain: dial tcp: lookup failed' >&2; exit 1; fi; echo go1.22.0",
        );
        let message = format!("{:#}", find_go(&old, false).unwrap_err());
        assert!(message.contains("dial tcp: lookup failed"), "{message}");
        assert!(message.contains("GOTOOLCHAIN="), "{message}");
    }
}
