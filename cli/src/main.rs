//! `ocmctl`: clusteradm-style verbs for an ocm-rs hub (`init`, `join`, `accept`, `get`, …).
//!
//! Today it answers `--help` and `--version`; its verbs arrive with the issues that build the
//! behaviour behind them (registration: issue 4, work: issue 5).

use clap::Parser;

/// ocmctl: manage an ocm-rs hub and its managed clusters.
#[derive(Debug, Parser)]
#[command(name = "ocmctl", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
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
