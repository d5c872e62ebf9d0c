//! `ocm-hub` answers `--help` and `--version` like every ocm-rs binary.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ocm-hub"))
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
        format!("ocm-hub {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_describes_the_binary() {
    let (ok, stdout) = run(&["--help"]);
    assert!(ok);
    assert!(stdout.contains("Usage: ocm-hub"), "{stdout}");
}

#[test]
fn running_without_a_hub_implementation_says_so_and_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_ocm-hub"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not part of this build yet"));
}
