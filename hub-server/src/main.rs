//! `ocm-hub`: the ocm-rs hub. It runs against the hub cluster's kube-apiserver, keeps OCM's API
//! objects there as CRDs, runs the controllers (registration, leases, CSR signing, work status,
//! placement, add-ons) and serves the CloudEvents broker that spoke agents connect to.
//!
//! Today it answers `--help` and `--version`; serving arrives with the transport (issue 3) and
//! registration (issue 4) work, and refuses to pretend before then.

#![allow(clippy::print_stderr)] // the binary's edge reports on the terminal

use clap::Parser;

/// The ocm-rs hub: OCM's controllers and CloudEvents broker.
#[derive(Debug, Parser)]
#[command(name = "ocm-hub", version, about, long_about = None)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let Cli {} = Cli::parse();
    eprintln!(
        "ocm-hub {}: the hub's broker and controllers are not part of this build yet; \
         see `ocm-hub --help`",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
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
}
