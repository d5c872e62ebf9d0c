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
