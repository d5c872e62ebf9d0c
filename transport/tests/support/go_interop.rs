//! `tests/go-interop`: OCM's own Go CloudEvents transports (sdk-go v1.1.0), built with the
//! machine's Go for the interop tests.

/// Builds `tests/go-interop` (OCM's own Go transport, sdk-go v1.1.0) with the machine's Go.
pub(crate) fn build() -> std::path::PathBuf {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/go-interop");
    let binary = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ocm-go-interop");
    let output = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&source)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOWORK", "off")
        .output()
        .expect("Go is required for the interop test: install Go >= 1.26 (`cargo xtask test` selects it through any Go >= 1.21)");
    assert!(
        output.status.success(),
        "building the Go interop client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}
