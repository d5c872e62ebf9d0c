//! What the agent reports about its cluster (OCM's agent status controller): the
//! Kubernetes version, capacity and allocatable summed over the nodes (allocatable over the
//! schedulable ones), whether the apiserver answers `/livez`, and its ClusterClaims. Pure: nodes,
//! claims and answers in, status fields out.

use std::collections::BTreeMap;

use ocm_api::cluster::v1::ManagedClusterClaim;
use ocm_api::cluster::v1alpha1::ClusterClaim;
use ocm_api::k8s_openapi::api::core::v1::Node;
use ocm_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Sums each resource over the nodes' `status.capacity` (or `allocatable`). Values that do not
/// parse as quantities are left out of the sum (and logged).
pub fn sum_resources(nodes: &[Node], allocatable: bool) -> BTreeMap<String, Quantity> {
    let mut totals: BTreeMap<String, i128> = BTreeMap::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let Some(status) = &node.status else { continue };
        let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
        if allocatable && unschedulable {
            continue;
        }
        let resources = if allocatable {
            &status.allocatable
        } else {
            &status.capacity
        };
        for (resource, quantity) in resources.iter().flatten() {
            match milli_units(&quantity.0) {
                Some(value) => *totals.entry(resource.clone()).or_default() += value,
                None => {
                    tracing::warn!(node = name, %resource, value = %quantity.0, "unparsable quantity left out of the cluster's sum")
                }
            }
        }
    }
    totals
        .into_iter()
        .map(|(resource, milli)| (resource, Quantity(format_milli(milli))))
        .collect()
}

/// Claims OCM always reports, sorted first (besides names ending in a configured suffix).
pub const RESERVED_CLAIMS: [&str; 4] = [
    "id.k8s.io",
    "kubeversion.open-cluster-management.io",
    "platform.open-cluster-management.io",
    "product.open-cluster-management.io",
];
/// Claims with this label stay on the managed cluster.
pub const SPOKE_ONLY_LABEL: &str = "open-cluster-management.io/spoke-only";

/// Which claims to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// Custom (not reserved) claims beyond this many, by name, are left out (OCM: 20).
    pub max_custom: usize,
    /// Names ending in one of these count as reserved.
    pub reserved_suffixes: Vec<String>,
}

impl Default for ClaimPolicy {
    fn default() -> Self {
        Self {
            max_custom: 20,
            reserved_suffixes: Vec::new(),
        }
    }
}

/// The claims for `status.clusterClaims` as OCM reports them: spoke-only claims left out,
/// reserved ones first, then custom ones, each sorted by name, custom ones cut at the limit.
pub fn cluster_claims(claims: &[ClusterClaim], policy: &ClaimPolicy) -> Vec<ManagedClusterClaim> {
    let reserved = |name: &str| {
        RESERVED_CLAIMS.contains(&name)
            || policy
                .reserved_suffixes
                .iter()
                .any(|suffix| !suffix.is_empty() && name.ends_with(suffix.as_str()))
    };
    let mut synced: Vec<ManagedClusterClaim> = claims
        .iter()
        .filter(|c| {
            !c.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(SPOKE_ONLY_LABEL))
        })
        .map(|c| ManagedClusterClaim {
            name: c.metadata.name.clone().unwrap_or_default(),
            value: c.spec.value.clone(),
        })
        .filter(|c| !c.name.is_empty())
        .collect();
    synced.sort_by(|a, b| a.name.cmp(&b.name));
    let (mut first, custom): (Vec<_>, Vec<_>) = synced.into_iter().partition(|c| reserved(&c.name));
    if custom.len() > policy.max_custom {
        tracing::warn!(
            claims = custom.len(),
            limit = policy.max_custom,
            "more custom ClusterClaims than reported; the rest by name are left out"
        );
    }
    first.extend(custom.into_iter().take(policy.max_custom));
    first
}

/// A quantity in thousandths of its unit (`1500m` → 1500, `2Gi` → 2 147 483 648 000).
pub fn milli_units(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier_milli: i128 = match suffix {
        "" => 1000,
        "m" => 1,
        "k" => 1000 * 1000,
        "M" => 1000 * 1_000_000,
        "G" => 1000 * 1_000_000_000,
        "T" => 1000 * 1_000_000_000_000,
        "P" => 1000 * 1_000_000_000_000_000,
        "Ki" => 1000 << 10,
        "Mi" => 1000 << 20,
        "Gi" => 1000 << 30,
        "Ti" => 1000 << 40,
        "Pi" => 1000 << 50,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: i128 = if whole.is_empty() || whole == "+" || whole == "-" {
        0
    } else {
        whole.parse().ok()?
    };
    let negative = number.starts_with('-');
    let mut value = whole.checked_mul(multiplier_milli)?;
    if !fraction.is_empty() {
        let digits: u32 = fraction.len().try_into().ok()?;
        let fraction_value: i128 = fraction.parse().ok()?;
        let scaled = fraction_value.checked_mul(multiplier_milli)? / 10_i128.checked_pow(digits)?;
        value = if negative {
            value - scaled
        } else {
            value + scaled
        };
    }
    Some(value)
}

/// Whole units when exact (`64`, `274877906944`), thousandths otherwise (`1500m`).
pub fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

#[cfg(test)]
mod tests {
    use ocm_api::k8s_openapi::api::core::v1::NodeStatus;
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn node(cpu: &str, memory: &str) -> Node {
        let resources = BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.to_owned())),
            ("memory".to_owned(), Quantity(memory.to_owned())),
            ("pods".to_owned(), Quantity("110".to_owned())),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                capacity: Some(resources.clone()),
                allocatable: Some(resources),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn claim(name: &str, value: &str, spoke_only: bool) -> ClusterClaim {
        let mut claim = ClusterClaim::new(
            name,
            ocm_api::cluster::v1alpha1::ClusterClaimSpec {
                value: value.to_owned(),
            },
        );
        if spoke_only {
            claim.metadata.labels = Some([(SPOKE_ONLY_LABEL.to_owned(), "true".to_owned())].into());
        }
        claim
    }

    #[test]
    fn claims_are_reported_reserved_first_sorted_and_custom_ones_capped() {
        let claims = [
            claim("zone.example.com", "eu-1", false),
            claim("secret.example.com", "x", true),
            claim("product.open-cluster-management.io", "kwok", false),
            claim("id.k8s.io", "c1-uid", false),
            claim("a.example.com", "1", false),
            claim("tier.mycorp.io", "gold", false),
            claim("b.example.com", "2", false),
        ];
        let names = |policy: &ClaimPolicy| {
            cluster_claims(&claims, policy)
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&ClaimPolicy::default()),
            [
                "id.k8s.io",
                "product.open-cluster-management.io",
                "a.example.com",
                "b.example.com",
                "tier.mycorp.io",
                "zone.example.com"
            ]
        );
        let policy = ClaimPolicy {
            max_custom: 2,
            reserved_suffixes: vec![".mycorp.io".to_owned()],
        };
        assert_eq!(
            names(&policy),
            [
                "id.k8s.io",
                "product.open-cluster-management.io",
                "tier.mycorp.io",
                "a.example.com",
                "b.example.com"
            ]
        );
        assert_eq!(
            cluster_claims(&claims, &ClaimPolicy::default())[0].value,
            "c1-uid"
        );
    }

    #[test]
    fn allocatable_leaves_out_unschedulable_nodes() {
        let mut cordoned = node("2", "1Gi");
        cordoned.spec = Some(ocm_api::k8s_openapi::api::core::v1::NodeSpec {
            unschedulable: Some(true),
            ..Default::default()
        });
        let nodes = [node("4", "1Gi"), cordoned];
        assert_eq!(sum_resources(&nodes, false)["cpu"].0, "6");
        assert_eq!(sum_resources(&nodes, true)["cpu"].0, "4");
    }

    #[test]
    fn quantities_parse_in_every_suffix_kubernetes_writes() {
        assert_eq!(milli_units("1500m"), Some(1500));
        assert_eq!(milli_units("2"), Some(2000));
        assert_eq!(milli_units("1.5"), Some(1500));
        assert_eq!(milli_units("2Gi"), Some(2_147_483_648_000));
        assert_eq!(milli_units("1k"), Some(1_000_000));
        assert_eq!(milli_units("0.5Ki"), Some(512_000));
        assert_eq!(milli_units("12x"), None);
        assert_eq!(format_milli(64_000), "64");
        assert_eq!(format_milli(1500), "1500m");
    }

    #[test]
    fn capacity_is_summed_over_the_nodes() {
        let nodes = [
            node("32", "256Gi"),
            node("500m", "1024Mi"),
            node("bad", "1Gi"),
        ];
        let capacity = sum_resources(&nodes, false);
        assert_eq!(capacity["cpu"].0, "32500m");
        assert_eq!(capacity["memory"].0, (258_u128 << 30).to_string());
        assert_eq!(capacity["pods"].0, "330");
    }
}
