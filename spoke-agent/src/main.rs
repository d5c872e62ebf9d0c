//! `ocm-agent`: the ocm-rs spoke agent. It registers its cluster with the hub over one outbound
//! CloudEvents stream, applies delivered ManifestWorks to its own cluster and reports status.
//!
//! Today it answers `--help` and `--version`; registration and work delivery arrive with
//! issues 4 and 5, and it refuses to pretend before then.

#![allow(clippy::print_stderr)] // the binary's edge reports on the terminal

use clap::Parser;

/// The ocm-rs agent: registration, work delivery and status for one managed cluster.
#[derive(Debug, Parser)]
#[command(name = "ocm-agent", version, about, long_about = None)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let Cli {} = Cli::parse();
    eprintln!(
        "ocm-agent {}: registration and work delivery are not part of this build yet; \
         see `ocm-agent --help`",
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
            format!("ocm-agent {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(cli.render_help().to_string().contains("Usage: ocm-agent"));
    }
}
