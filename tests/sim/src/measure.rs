//! What a benchmark reads: a process's resident memory and CPU time (from `/proc`), and the
//! hub apiserver's request and storage counters (from its `/metrics`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ocm_api::kube::Client;

use crate::SimError;

/// Request verbs that change something (`APPLY` is server-side apply, which the apiserver counts
/// apart from other patches).
pub const WRITE_VERBS: &[&str] = &[
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Resources whose POST is a question, not a write: nothing is stored.
pub const REVIEW_RESOURCES: &[&str] = &[
    "subjectaccessreviews",
    "localsubjectaccessreviews",
    "selfsubjectaccessreviews",
    "selfsubjectreviews",
    "tokenreviews",
];

/// Resident memory (VmRSS) of `pid`, KiB.
pub fn rss_kib(pid: u32) -> Result<u64, SimError> {
    let path = format!("/proc/{pid}/status");
    let status = read(&path)?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| SimError::ProcFormat {
            path,
            detail: "no VmRSS line".to_owned(),
        })
}

/// User + system CPU time `pid` has used so far (its threads included, not its children).
pub fn cpu_time(pid: u32) -> Result<Duration, SimError> {
    let path = format!("/proc/{pid}/stat");
    let stat = read(&path)?;
    let format = |detail: &str| SimError::ProcFormat {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    // The fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat
        .rfind(')')
        .and_then(|at| stat.get(at + 2..))
        .ok_or_else(|| format("no command name"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64, SimError> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format("no utime/stime"))
    };
    let ticks = tick(11)? + tick(12)?;
    // CLK_TCK is 100 on Linux for every architecture we run on.
    Ok(Duration::from_millis(ticks * 10))
}

fn read(path: &str) -> Result<String, SimError> {
    std::fs::read_to_string(path).map_err(|source| SimError::Proc {
        path: path.to_owned(),
        source,
    })
}

/// One sample of a Prometheus counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// The samples of some metrics, by metric name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub samples: BTreeMap<String, Vec<Sample>>,
}

impl Metrics {
    /// Reads the apiserver's `/metrics` and keeps the metrics named in `names`.
    pub async fn scrape(client: &Client, names: &[&str]) -> Result<Self, SimError> {
        let request = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| SimError::Hub(format!("building GET /metrics: {e}")))?;
        let text = client
            .request_text(request)
            .await
            .map_err(SimError::kube("reading /metrics"))?;
        Ok(Self::parse(&text, names))
    }

    /// Parses the Prometheus text format, keeping the metrics named in `names`; lines it does
    /// not understand are skipped.
    pub fn parse(text: &str, names: &[&str]) -> Self {
        let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = match line.rsplit_once(' ') {
                Some((series, value)) => (series.trim(), value.trim()),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            if names.contains(&name) {
                samples
                    .entry(name.to_owned())
                    .or_default()
                    .push(Sample { labels, value });
            }
        }
        Self { samples }
    }

    /// Sums `name`'s samples that `keep` selects, grouped by `key`.
    pub fn grouped(
        &self,
        name: &str,
        keep: impl Fn(&Sample) -> bool,
        key: impl Fn(&Sample) -> String,
    ) -> BTreeMap<String, f64> {
        let mut groups = BTreeMap::new();
        for sample in self.samples.get(name).into_iter().flatten() {
            if keep(sample) {
                *groups.entry(key(sample)).or_insert(0.0) += sample.value;
            }
        }
        groups
    }

    /// Sums `name`'s samples that `keep` selects.
    pub fn sum(&self, name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
        self.grouped(name, keep, |_| String::new()).values().sum()
    }
}

/// `later − earlier` per group, leaving out groups that did not grow.
pub fn growth(
    earlier: &BTreeMap<String, f64>,
    later: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    later
        .iter()
        .map(|(key, value)| {
            (
                key.clone(),
                value - earlier.get(key).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, grew)| *grew > 0.0)
        .collect()
}

/// Whether an `apiserver_request_total` sample counts a write that can reach storage (a
/// write verb, and not a review, whose POST stores nothing).
pub fn is_stored_write(sample: &Sample) -> bool {
    WRITE_VERBS.contains(&sample.label("verb"))
        && !REVIEW_RESOURCES.contains(&sample.label("resource"))
        && !(sample.label("resource") == "serviceaccounts"
            && sample.label("subresource") == "token")
}

/// Whether an `apiserver_request_total` sample counts an access or token review.
pub fn is_review(sample: &Sample) -> bool {
    REVIEW_RESOURCES.contains(&sample.label("resource"))
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_owned(), value);
        rest = after.get(end..).unwrap_or_default();
    }
    labels
}

/// The `p`th percentile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Seconds with one decimal.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// CPU time of each watched process.
#[derive(Debug)]
pub struct CpuReading {
    pub at: Instant,
    times: Vec<(String, u32, Duration)>,
}

impl CpuReading {
    pub fn take(pids: &[(String, u32)]) -> Result<Self, SimError> {
        let at = Instant::now();
        let times = pids
            .iter()
            .map(|(name, pid)| Ok((name.clone(), *pid, cpu_time(*pid)?)))
            .collect::<Result<Vec<_>, SimError>>()?;
        Ok(Self { at, times })
    }

    /// % of one core each process used since `earlier`.
    pub fn since(&self, earlier: &Self) -> Vec<(String, f64)> {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        self.times
            .iter()
            .zip(&earlier.times)
            .map(|((name, _, now), (_, _, then))| {
                (
                    name.clone(),
                    now.saturating_sub(*then).as_secs_f64() / wall * 100.0,
                )
            })
            .collect()
    }
}

/// `VERB resource[/subresource]` of an `apiserver_request_total` sample.
pub fn request_key(sample: &Sample) -> String {
    let resource = match sample.label("subresource") {
        "" => sample.label("resource").to_owned(),
        sub => format!("{}/{sub}", sample.label("resource")),
    };
    format!("{} {resource}", sample.label("verb"))
}

/// An `etcd_requests_total` sample of a create, update or delete.
pub fn is_storage_write(sample: &Sample) -> bool {
    matches!(sample.label("operation"), "create" | "update" | "delete")
}

/// `operation resource` of an `etcd_requests_total` sample.
pub fn storage_key(sample: &Sample) -> String {
    format!("{} {}", sample.label("operation"), sample.label("resource"))
}

/// The largest `n` groups as `key rate/s` items.
pub fn top(groups: &BTreeMap<String, f64>, seconds: f64, n: usize) -> String {
    largest(groups, n, |key, count| {
        format!("{key} {:.1}/s", count / seconds)
    })
}

/// The `n` largest groups each divided by `items`: `verb resource 1.00, …` (requests per item).
pub fn per_item(groups: &BTreeMap<String, f64>, items: usize, n: usize) -> String {
    let items = items.max(1) as f64;
    largest(groups, n, |key, count| {
        format!("{key} {:.2}", count / items)
    })
}

/// The `n` largest groups, each shown by `show`, joined with commas.
fn largest(groups: &BTreeMap<String, f64>, n: usize, show: impl Fn(&str, f64) -> String) -> String {
    let mut sorted: Vec<(&String, &f64)> = groups.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(a.1));
    sorted
        .into_iter()
        .take(n)
        .map(|(key, count)| show(key, *count))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_item_lists_the_largest_groups_divided_by_the_items() {
        let groups: BTreeMap<String, f64> = [
            ("POST manifestworks".to_owned(), 1000.0),
            ("PATCH manifestworks/status".to_owned(), 1500.0),
            ("PATCH leases".to_owned(), 10.0),
        ]
        .into();
        assert_eq!(
            per_item(&groups, 1000, 2),
            "PATCH manifestworks/status 1.50, POST manifestworks 1.00"
        );
        assert_eq!(
            per_item(&groups, 0, 1),
            "PATCH manifestworks/status 1500.00"
        );
    }

    #[test]
    fn parses_counters_with_labels_and_sums_them_by_group() {
        let text = r#"# HELP apiserver_request_total x
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 12
apiserver_request_total{code="409",component="apiserver",group="",resource="namespaces",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",group="authorization.k8s.io",resource="subjectaccessreviews",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 4e+00
other_metric{a="b \"quoted\""} 1
"#;
        let metrics = Metrics::parse(text, &["apiserver_request_total", "other_metric"]);
        assert_eq!(
            metrics.sum("apiserver_request_total", is_stored_write),
            15.0
        );
        assert_eq!(metrics.sum("apiserver_request_total", is_review), 7.0);
        assert_eq!(metrics.sum("apiserver_request_total", |_| true), 26.0);
        let by_code = metrics.grouped(
            "apiserver_request_total",
            |s| s.label("resource") == "namespaces",
            |s| s.label("code").to_owned(),
        );
        assert_eq!(by_code.get("409"), Some(&3.0));
        assert_eq!(
            metrics.samples["other_metric"][0].label("a"),
            "b \"quoted\""
        );
        let later = BTreeMap::from([("a".to_owned(), 5.0), ("b".to_owned(), 1.0)]);
        let earlier = BTreeMap::from([("a".to_owned(), 2.0), ("b".to_owned(), 1.0)]);
        assert_eq!(
            growth(&earlier, &later),
            BTreeMap::from([("a".to_owned(), 3.0)])
        );
    }

    #[test]
    fn reads_its_own_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(rss_kib(me).is_ok_and(|kib| kib > 0));
        assert!(cpu_time(me).is_ok());
    }
}
