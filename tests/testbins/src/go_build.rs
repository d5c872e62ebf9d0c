//! Builds the pinned components from their Go modules into the cache (or, for a component
//! with no binaries, only copies its files out of the module).
//!
//! `go install k8s.io/kubernetes/cmd/...@vX` does not work: k8s.io/kubernetes requires its
//! staging modules at the non-existent version v0.0.0 and `replace`s them with `./staging/...`.
//! So every component is built inside a small wrapper module of our own that requires it and,
//! for Kubernetes, replaces each staging module with its published `v0.<minor>.<patch>` tag.
//! The replace list is derived from that version's go.mod, never hand-listed, because the set
//! of staging modules changes between minors.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::assets::COMPLETE_STAMP;
use crate::components::{ALL, Component, KUBERNETES, MIN_GO, copied_file_name};

/// What the caller is told while a build runs.
pub type Progress<'a> = &'a (dyn Fn(&str) + Sync);

/// Outcome for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// A complete build was already cached.
    Cached { component: Component, dir: PathBuf },
    /// Built now, taking `elapsed`.
    Built {
        component: Component,
        dir: PathBuf,
        elapsed: Duration,
    },
}

/// Builds every component whose cache directory is not complete ([`build_components`] of
/// [`ALL`]).
pub fn build_missing(
    go: &Path,
    cache_root: &Path,
    force: bool,
    progress: Progress<'_>,
) -> Result<Vec<BuildOutcome>, BuildError> {
    build_components(go, cache_root, &ALL, force, progress)
}

/// Builds those of `components` whose cache directory is not complete, two at a time (the
/// Kubernetes build on one thread, the rest in order on another: Go already spreads one
/// build's packages over all cores, so more parallelism only fills its download and link gaps).
pub fn build_components(
    go: &Path,
    cache_root: &Path,
    components: &[Component],
    force: bool,
    progress: Progress<'_>,
) -> Result<Vec<BuildOutcome>, BuildError> {
    let go_version = check_go(go)?;
    progress(&format!("using {go_version} ({})", go.display()));
    let (big, rest): (Vec<Component>, Vec<Component>) = components
        .iter()
        .copied()
        .partition(|c| c.name == KUBERNETES.name);
    let run_queue = |queue: Vec<Component>| -> Result<Vec<BuildOutcome>, BuildError> {
        queue
            .into_iter()
            .map(|c| ensure_component(go, cache_root, c, force, progress))
            .collect()
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| run_queue(big));
        let second = run_queue(rest);
        (first.join(), second)
    });
    let first = first.map_err(|_| BuildError::Panicked)?;
    let mut outcomes = first?;
    outcomes.extend(second?);
    Ok(outcomes)
}

/// `go env GOVERSION`, checked against [`MIN_GO`].
pub fn check_go(go: &Path) -> Result<String, BuildError> {
    let output = Command::new(go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            return Err(BuildError::GoUnusable {
                go: go.to_owned(),
                detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Err(error) => {
            return Err(BuildError::GoMissing {
                go: go.to_owned(),
                error,
            });
        }
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match parse_go_version(&version) {
        Some(found) if found >= MIN_GO => Ok(version),
        _ => Err(BuildError::GoTooOld {
            go: go.to_owned(),
            found: version,
        }),
    }
}

/// Parses `go1.26.8`, `go1.26`, `go1.27rc1` into `(major, minor, patch)`.
pub fn parse_go_version(version: &str) -> Option<(u32, u32, u32)> {
    let rest = version.strip_prefix("go")?;
    let numeric: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').map(|p| p.parse::<u32>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

fn ensure_component(
    go: &Path,
    cache_root: &Path,
    component: Component,
    force: bool,
    progress: Progress<'_>,
) -> Result<BuildOutcome, BuildError> {
    let dir = cache_root.join(component.cache_dir_name());
    if !force && dir.join(COMPLETE_STAMP).is_file() {
        progress(&format!(
            "{} {}: cached at {}",
            component.name,
            component.version,
            dir.display()
        ));
        return Ok(BuildOutcome::Cached { component, dir });
    }
    let started = Instant::now();
    if let Err(err) = build_component(go, cache_root, &component, progress) {
        // The staged binaries are large and useless; the small work module stays for a look.
        let staging = staging_dir(cache_root, &component);
        let _ = std::fs::remove_dir_all(staging);
        return Err(err);
    }
    let elapsed = started.elapsed();
    progress(&format!(
        "{} {}: built in {:.0} s into {}",
        component.name,
        component.version,
        elapsed.as_secs_f64(),
        dir.display()
    ));
    Ok(BuildOutcome::Built {
        component,
        dir,
        elapsed,
    })
}

fn build_component(
    go: &Path,
    cache_root: &Path,
    component: &Component,
    progress: Progress<'_>,
) -> Result<(), BuildError> {
    let label = format!("{} {}", component.name, component.version);
    let pid = std::process::id();
    let work = cache_root
        .join(".build")
        .join(format!("{}-{pid}", component.cache_dir_name()));
    let staging = staging_dir(cache_root, component);
    let final_dir = cache_root.join(component.cache_dir_name());
    for dir in [&work, &staging] {
        remove_dir_if_present(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    }
    let go_cmd = GoCommand {
        go,
        dir: &work,
        component,
    };

    progress(&format!(
        "{label}: resolving {} from the Go module proxy",
        component.module
    ));
    go_cmd.run(&["mod", "init", &format!("local/ocm-rs-{}", component.name)])?;
    if !component.binaries.is_empty() {
        compile(&go_cmd, &staging, progress)?;
    }
    if !component.extra_files.is_empty() || !component.copied_files.is_empty() {
        let module_dir = go_cmd.download()?.dir;
        for extra in component.extra_files {
            let text = assemble_yaml(&module_dir, extra.sources)?;
            let path = staging.join(extra.name);
            std::fs::write(&path, text).map_err(|e| BuildError::io(&path, e))?;
        }
        if !component.copied_files.is_empty() {
            progress(&format!(
                "{label}: copying {} files from {}",
                component.copied_files.len(),
                module_dir.display()
            ));
        }
        for source in component.copied_files {
            let from = module_dir.join(source);
            let to = staging.join(copied_file_name(source));
            std::fs::copy(&from, &to).map_err(|e| BuildError::io(&from, e))?;
            // The module cache's files are read-only; the copy need not be.
            let writable = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(&to, writable).map_err(|e| BuildError::io(&to, e))?;
        }
    }
    let names: Vec<&str> = component.binaries.iter().map(|b| b.0).collect();
    let stamp = format!(
        "module={}\nversion={}\nbinaries={}\nfiles={}\n",
        component.module,
        component.version,
        names.join(","),
        component.extra_files.len() + component.copied_files.len()
    );
    std::fs::write(staging.join(COMPLETE_STAMP), stamp).map_err(|e| BuildError::io(&staging, e))?;
    remove_dir_if_present(&final_dir)?;
    std::fs::rename(&staging, &final_dir).map_err(|e| BuildError::io(&final_dir, e))?;
    remove_dir_if_present(&work)?;
    Ok(())
}

/// Compiles the component's binaries into `staging` and checks each reports its version.
fn compile(
    go_cmd: &GoCommand<'_>,
    staging: &Path,
    progress: Progress<'_>,
) -> Result<(), BuildError> {
    let component = go_cmd.component;
    let label = format!("{} {}", component.name, component.version);
    let mut edit = vec![format!(
        "-require={}@{}",
        component.module, component.version
    )];
    if component.module == KUBERNETES.module {
        let go_mod = go_cmd.download()?.go_mod;
        let replaces = staging_replaces(&go_mod, component.version);
        if replaces.is_empty() {
            return Err(BuildError::NoStagingModules {
                version: component.version,
            });
        }
        edit.extend(
            replaces
                .iter()
                .map(|(module, tag)| format!("-replace={module}={module}@{tag}")),
        );
    }
    let mut args = vec!["mod".to_owned(), "edit".to_owned()];
    args.extend(edit);
    go_cmd.run(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let tools = tools_go(component);
    let tools_path = go_cmd.dir.join("tools.go");
    std::fs::write(&tools_path, tools).map_err(|e| BuildError::io(&tools_path, e))?;
    go_cmd.run(&["mod", "tidy"])?;

    let names: Vec<&str> = component.binaries.iter().map(|b| b.0).collect();
    let expect = if component.module == KUBERNETES.module {
        " (about 5 min cold on 2 cores)"
    } else {
        ""
    };
    progress(&format!("{label}: compiling {}{expect}", names.join(", ")));
    // `-o dir/` names each binary after its package's last path element, which for a module
    // with a major-version suffix (etcd's `server/v3`) is not the name we want.
    let out = match component.binaries {
        [(name, _)] => staging.join(name).display().to_string(),
        _ => format!("{}/", staging.display()),
    };
    let mut build_args = vec!["build", "-trimpath", "-o", &out];
    let ldflags = ldflags(component);
    build_args.extend(["-ldflags", &ldflags]);
    build_args.extend(component.binaries.iter().map(|b| b.1));
    go_cmd.run(&build_args)?;

    for (binary, _) in component.binaries {
        verify_binary(&staging.join(binary), component)?;
    }
    Ok(())
}

/// Where a build puts its binaries until they are verified and moved into place (per process,
/// so two concurrent builds never write into each other's directory).
fn staging_dir(cache_root: &Path, component: &Component) -> PathBuf {
    cache_root.join(format!(
        ".{}.partial-{}",
        component.cache_dir_name(),
        std::process::id()
    ))
}

/// Joins YAML files into one multi-document stream.
fn assemble_yaml(module_dir: &Path, sources: &[&str]) -> Result<String, BuildError> {
    let mut out = String::new();
    for source in sources {
        let path = module_dir.join(source);
        let text = std::fs::read_to_string(&path).map_err(|e| BuildError::io(&path, e))?;
        let _ = writeln!(out, "---\n# from {source}");
        out.push_str(text.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// The `replace` directives Kubernetes' own go.mod points at `./staging/...`, mapped to the
/// published tag `v0.<minor>.<patch>` of each staging module.
fn staging_replaces(go_mod: &str, kubernetes_version: &str) -> Vec<(String, String)> {
    let staging_tag = format!("v0.{}", kubernetes_version.trim_start_matches("v1."));
    go_mod
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("replace").trim();
            let (module, target) = line.split_once("=>")?;
            let module = module.split_whitespace().next()?;
            target
                .trim()
                .starts_with("./staging/")
                .then(|| (module.to_owned(), staging_tag.clone()))
        })
        .collect()
}

/// A file that imports every binary's main package, so `go mod tidy` keeps what they need.
fn tools_go(component: &Component) -> String {
    let mut file = String::from("//go:build tools\n\npackage tools\n\nimport (\n");
    for (_, package) in component.binaries {
        let _ = writeln!(file, "\t_ \"{package}\"");
    }
    file.push_str(")\n");
    file
}

/// Version stamping: without it, Kubernetes binaries report `v0.0.0-master+$Format:%H$`.
fn ldflags(component: &Component) -> String {
    let mut flags = String::from("-s -w");
    if component.module == KUBERNETES.module {
        let minor = crate::components::kubernetes_minor();
        for package in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            let _ = write!(
                flags,
                " -X {package}.gitVersion={v} -X {package}.gitMajor=1 -X {package}.gitMinor={minor} \
                 -X {package}.gitTreeState=clean",
                v = component.version
            );
        }
    }
    if component.module == crate::components::KWOK.module {
        let _ = write!(
            flags,
            " -X sigs.k8s.io/kwok/pkg/consts.Version={}",
            component.version
        );
    }
    flags
}

/// Runs the new binary's version command; a binary that cannot say its version is not kept.
fn verify_binary(path: &Path, component: &Component) -> Result<(), BuildError> {
    let args: &[&str] = match path.file_name().and_then(|n| n.to_str()) {
        Some("kubectl") => &["version", "--client"],
        _ => &["--version"],
    };
    let output = Command::new(path)
        .args(args)
        .output()
        .map_err(|e| BuildError::io(path, e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let expected = component.version.trim_start_matches('v');
    if !output.status.success() || !text.contains(expected) {
        return Err(BuildError::Verification {
            binary: path.to_owned(),
            expected: component.version,
            output: format!("{text}{}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> Result<(), BuildError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        // Go's module cache marks files read-only; a stale work dir may hold none of them,
        // but report rather than guess.
        Err(err) => Err(BuildError::io(dir, err)),
    }
}

struct GoCommand<'a> {
    go: &'a Path,
    dir: &'a Path,
    component: &'a Component,
}

impl GoCommand<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.go);
        cmd.args(args)
            .current_dir(self.dir)
            // Never download another toolchain: a too-new requirement must fail here, clearly.
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", "0")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<String, BuildError> {
        let mut cmd = self.command(args);
        let output = cmd.output().map_err(|e| BuildError::io(self.go, e))?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(self.failure(args, &stderr))
    }

    fn failure(&self, args: &[&str], stderr: &str) -> BuildError {
        // Only module commands resolve modules (a compile error that says "not found" is not
        // one). Go reports a version the proxy refuses as `<module>@<version>: reading …: 403`
        // or `… unknown revision …`; an unreachable proxy as a dial or DNS error.
        let pinned = format!("{}@{}:", self.component.module, self.component.version);
        let unreachable = [
            "dial tcp",
            "no such host",
            "proxyconnect",
            "TLS handshake timeout",
        ];
        let is_module_command = args.first() == Some(&"mod");
        if is_module_command
            && (stderr.contains(&pinned) || unreachable.iter().any(|n| stderr.contains(n)))
        {
            return BuildError::ModuleDidNotResolve {
                module: self.component.module,
                version: self.component.version,
                detail: tail(stderr, 20),
            };
        }
        BuildError::GoFailed {
            component: format!("{} {}", self.component.module, self.component.version),
            command: format!("go {}", args.join(" ")),
            dir: self.dir.to_owned(),
            stderr_tail: tail(stderr, 40),
        }
    }

    /// Downloads the module (a no-op when Go's module cache has it) and says where it is.
    fn download(&self) -> Result<Downloaded, BuildError> {
        let target = format!("{}@{}", self.component.module, self.component.version);
        // `output()` drains stdout and stderr together, so neither pipe can fill and stall Go.
        let output = self
            .command(&["mod", "download", "-json", &target])
            .output()
            .map_err(|e| BuildError::io(self.go, e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let status = output.status;
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_default();
        // `go mod download -json` reports a resolution failure in the JSON's Error field.
        if let Some(error) = json.get("Error").and_then(|e| e.as_str()) {
            return Err(BuildError::ModuleDidNotResolve {
                module: self.component.module,
                version: self.component.version,
                detail: error.to_owned(),
            });
        }
        let field = |name: &str| {
            json.get(name)
                .and_then(|p| p.as_str())
                .filter(|_| status.success())
                .ok_or_else(|| BuildError::ModuleDidNotResolve {
                    module: self.component.module,
                    version: self.component.version,
                    detail: format!("`go mod download -json {target}` gave no {name}: {stdout}"),
                })
        };
        let go_mod = field("GoMod")?;
        let dir = field("Dir")?;
        Ok(Downloaded {
            go_mod: std::fs::read_to_string(go_mod)
                .map_err(|e| BuildError::io(Path::new(go_mod), e))?,
            dir: PathBuf::from(dir),
        })
    }
}

/// A module in Go's module cache.
struct Downloaded {
    /// The text of its go.mod.
    go_mod: String,
    /// Its extracted source tree (read-only).
    dir: PathBuf,
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a build failed. Each variant says what to install or fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "Go is not installed (could not run `{}`: {error}). The Kubernetes test binaries are \
         built from Go modules: install Go >= {}.{} (or any Go >= 1.21, through which `cargo \
         xtask` selects the pinned release) and put it on PATH, or set OCM_TEST_ASSETS to a \
         directory with prebuilt binaries.",
        go.display(), MIN_GO.0, MIN_GO.1
    )]
    GoMissing { go: PathBuf, error: std::io::Error },
    #[error("`{} env GOVERSION` failed: {detail}", go.display())]
    GoUnusable { go: PathBuf, detail: String },
    #[error(
        "{} is {found}, but building Kubernetes {} needs Go >= {}.{}.{}: install a newer Go \
         and put it first on PATH",
        go.display(), KUBERNETES.version, MIN_GO.0, MIN_GO.1, MIN_GO.2
    )]
    GoTooOld { go: PathBuf, found: String },
    #[error(
        "Go module {module}@{version} did not resolve (is the Go module proxy reachable? \
         GOPROXY is read from `go env GOPROXY`):\n{detail}"
    )]
    ModuleDidNotResolve {
        module: &'static str,
        version: &'static str,
        detail: String,
    },
    #[error("k8s.io/kubernetes@{version}'s go.mod has no ./staging replace lines to mirror")]
    NoStagingModules { version: &'static str },
    #[error("building {component}: `{command}` failed in {}:\n{stderr_tail}", dir.display())]
    GoFailed {
        component: String,
        command: String,
        dir: PathBuf,
        stderr_tail: String,
    },
    #[error("{} does not report version {expected}; its output was:\n{output}", binary.display())]
    Verification {
        binary: PathBuf,
        expected: &'static str,
        output: String,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("a build thread panicked")]
    Panicked,
}

impl BuildError {
    fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_replaces_map_every_local_replace_to_the_published_tag() {
        let go_mod = "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\
                      \tk8s.io/client-go => ./staging/src/k8s.io/client-go\n)\n\
                      replace k8s.io/kms => ./staging/src/k8s.io/kms\n\
                      replace github.com/other/mod => github.com/fork/mod v1.0.0\n";
        let replaces = staging_replaces(go_mod, "v1.36.3");
        assert_eq!(
            replaces,
            [
                ("k8s.io/api".to_owned(), "v0.36.3".to_owned()),
                ("k8s.io/client-go".to_owned(), "v0.36.3".to_owned()),
                ("k8s.io/kms".to_owned(), "v0.36.3".to_owned()),
            ]
        );
    }

    #[test]
    fn go_versions_parse_and_compare() {
        assert_eq!(parse_go_version("go1.26.8"), Some((1, 26, 8)));
        assert_eq!(parse_go_version("go1.26"), Some((1, 26, 0)));
        assert_eq!(parse_go_version("go1.27rc1"), Some((1, 27, 0)));
        assert_eq!(parse_go_version("devel +abc"), None);
        assert!(parse_go_version("go1.19.8").is_some_and(|v| v < MIN_GO));
    }

    #[test]
    fn missing_go_names_what_to_install() {
        let err = check_go(Path::new("/nonexistent/go")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("Go is not installed"), "{message}");
        assert!(message.contains("install Go >= 1.26"), "{message}");
    }

    #[test]
    fn too_old_go_is_refused_with_the_required_version() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake_go = dir.path().join("go");
        std::fs::write(&fake_go, "#!/bin/sh\necho go1.19.8\n").unwrap();
        std::fs::set_permissions(&fake_go, std::fs::Permissions::from_mode(0o755)).unwrap();
        let message = check_go(&fake_go).unwrap_err().to_string();
        assert!(message.contains("go1.19.8"), "{message}");
        assert!(message.contains("needs Go >= 1.26.0"), "{message}");
    }

    /// Asks the real Go module proxy for a version that does not exist.
    #[test]
    fn a_module_version_the_proxy_does_not_have_is_named_in_the_error() {
        let cache = tempfile::tempdir().unwrap();
        let phantom = Component {
            version: "v0.0.999",
            ..crate::components::KWOK
        };
        let err = build_component(Path::new("go"), cache.path(), &phantom, &|_| {}).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, BuildError::ModuleDidNotResolve { .. }),
            "{message}"
        );
        assert!(
            message.contains("sigs.k8s.io/kwok@v0.0.999 did not resolve"),
            "{message}"
        );
    }

    /// Fetches OCM's API module through the real Go module proxy (or Go's module cache) and
    /// checks each CRD arrived byte for byte under its flattened name.
    #[test]
    fn a_component_without_binaries_has_its_files_copied_verbatim() {
        let cache = tempfile::tempdir().unwrap();
        let component = crate::components::OCM_CRDS;
        build_component(Path::new("go"), cache.path(), &component, &|_| {}).unwrap();
        let dir = cache.path().join(component.cache_dir_name());
        let stamp = std::fs::read_to_string(dir.join(COMPLETE_STAMP)).unwrap();
        assert!(
            stamp.contains("version=v1.3.0\nbinaries=\nfiles=19\n"),
            "{stamp}"
        );
        let work = tempfile::tempdir().unwrap();
        let go_cmd = GoCommand {
            go: Path::new("go"),
            dir: work.path(),
            component: &component,
        };
        go_cmd.run(&["mod", "init", "local/check"]).unwrap();
        let module_dir = go_cmd.download().unwrap().dir;
        for source in component.copied_files {
            let copied = std::fs::read(dir.join(copied_file_name(source))).unwrap();
            assert_eq!(
                copied,
                std::fs::read(module_dir.join(source)).unwrap(),
                "{source}"
            );
        }
        let mut crds: Vec<String> = std::fs::read_dir(&module_dir)
            .unwrap()
            .filter_map(|group| std::fs::read_dir(group.ok()?.path()).ok())
            .flatten()
            .filter_map(|version| std::fs::read_dir(version.ok()?.path()).ok())
            .flatten()
            .filter_map(|file| {
                let path = file.ok()?.path();
                let relative = path.strip_prefix(&module_dir).ok()?.to_str()?.to_owned();
                relative.ends_with(".crd.yaml").then_some(relative)
            })
            .collect();
        crds.sort();
        assert_eq!(crds, component.copied_files, "the module's CRDs changed");
    }

    #[test]
    fn tools_file_imports_every_binary_package() {
        let file = tools_go(&KUBERNETES);
        assert!(file.starts_with("//go:build tools\n"));
        for (_, package) in KUBERNETES.binaries {
            assert!(file.contains(&format!("_ \"{package}\"")), "{file}");
        }
    }

    #[test]
    fn kubernetes_binaries_are_version_stamped() {
        let flags = ldflags(&KUBERNETES);
        assert!(
            flags.contains("k8s.io/component-base/version.gitVersion=v1.36.3"),
            "{flags}"
        );
        assert!(
            flags.contains("k8s.io/component-base/version.gitMinor=36"),
            "{flags}"
        );
    }
}
