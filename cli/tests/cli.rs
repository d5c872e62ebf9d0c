//! `ocmctl` answers `--help` and `--version` like every ocm-rs binary.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ocmctl"))
        .args(args)
        .output()
        .expect("runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn version_prints_name_and_crate_version() {
    let (ok, stdout) = run(&["--version"]);
    assert!(ok);
    assert_eq!(
        stdout.trim(),
        format!("ocmctl {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_describes_the_binary() {
    let (ok, stdout) = run(&["--help"]);
    assert!(ok);
    assert!(stdout.contains("Usage: ocmctl"), "{stdout}");
}
