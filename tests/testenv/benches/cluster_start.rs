//! How fast a local cluster is ready and how much memory it holds.
//!
//! `cargo bench -p ocm-testenv --bench cluster_start [-- --runs N --settle SECS]`
//!
//! - one cluster, started N times in a row: time from `Cluster::start` to ready (apiserver
//!   ready, kwok node Ready, `default` ServiceAccount created);
//! - the local environment's case, a hub and two managed clusters started together;
//! - resident memory (VmRSS) per component of one cluster, right after ready and after
//!   `--settle` seconds idle.
//!
//! Prints a Markdown table for BENCHMARKS.md. Under `cargo test` (no `--bench` argument) it makes
//! one quick pass instead, so the suite keeps it working without paying for a full run.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)] // a benchmark report

use std::time::{Duration, Instant};

use ocm_testenv::{Cluster, ClusterConfig};

struct Options {
    runs: usize,
    settle: u64,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then one quick
    // pass checks that the benchmark still works, as criterion does in test mode.
    if !args.iter().any(|a| a == "--bench") {
        return Options { runs: 1, settle: 0 };
    }
    let mut options = Options {
        runs: 5,
        settle: 20,
    };
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--runs" => options.runs = pair[1].parse().unwrap_or(options.runs),
            "--settle" => options.settle = pair[1].parse().unwrap_or(options.settle),
            _ => {}
        }
    }
    options
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn memory(cluster: &Cluster) -> Vec<(&'static str, u64)> {
    cluster
        .components()
        .into_iter()
        .map(|(name, pid)| (name, rss_kib(pid)))
        .collect()
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let secs = |d: Duration| d.as_secs_f64();
    format!(
        "median {:.2} s (min {:.2}, max {:.2}, n={})",
        secs(samples[samples.len() / 2]),
        secs(samples[0]),
        secs(samples[samples.len() - 1]),
        samples.len()
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = options();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores; runs: {}", options.runs);

    let mut single = Vec::new();
    for run in 0..options.runs {
        let started = Instant::now();
        let cluster = Cluster::start_with(ClusterConfig::new(format!("bench-{run}")))
            .await
            .unwrap();
        single.push(started.elapsed());
        cluster.stop();
    }
    println!("one cluster ready: {}", summary(single));

    let mut trio = Vec::new();
    for run in 0..options.runs {
        let started = Instant::now();
        let names = ["hub", "cluster1", "cluster2"].map(|n| format!("{n}-{run}"));
        let clusters = futures::future::try_join_all(names.iter().map(|n| Cluster::start(n)))
            .await
            .unwrap();
        trio.push(started.elapsed());
        for cluster in clusters {
            cluster.stop();
        }
    }
    println!(
        "hub + 2 managed clusters ready (started together): {}",
        summary(trio)
    );

    let cluster = Cluster::start("bench-memory").await.unwrap();
    let at_ready = memory(&cluster);
    tokio::time::sleep(Duration::from_secs(options.settle)).await;
    let settled = memory(&cluster);
    println!(
        "\n| component | RSS at ready (MiB) | RSS after {} s idle (MiB) |",
        options.settle
    );
    println!("|---|---:|---:|");
    for ((name, ready), (_, idle)) in at_ready.iter().zip(&settled) {
        println!(
            "| {name} | {:.0} | {:.0} |",
            *ready as f64 / 1024.0,
            *idle as f64 / 1024.0
        );
    }
    let total = |m: &[(&str, u64)]| m.iter().map(|(_, kib)| kib).sum::<u64>() as f64 / 1024.0;
    println!(
        "| **cluster total** | **{:.0}** | **{:.0}** |",
        total(&at_ready),
        total(&settled)
    );
    cluster.stop();
}
