//! `ocmctl get clusters`: the ManagedClusters as a table with OCM's printer columns (NAME, HUB
//! ACCEPTED, MANAGED CLUSTER URLS, JOINED, AVAILABLE, AGE), or as YAML or JSON.

use ocm_api::cluster::v1::{CONDITION_AVAILABLE, CONDITION_JOINED, ManagedCluster};
use ocm_api::condition;

/// One table row per cluster, columns aligned.
pub fn table(clusters: &[ManagedCluster], now: jiff::Timestamp) -> String {
    let mut rows = vec![[
        "NAME".to_owned(),
        "HUB ACCEPTED".to_owned(),
        "MANAGED CLUSTER URLS".to_owned(),
        "JOINED".to_owned(),
        "AVAILABLE".to_owned(),
        "AGE".to_owned(),
    ]];
    for cluster in clusters {
        let conditions = cluster
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let status = |type_: &str| {
            condition::find(conditions, type_)
                .map(|c| c.status.as_str().to_owned())
                .unwrap_or_default()
        };
        let urls: Vec<&str> = cluster
            .spec
            .managed_cluster_client_configs
            .iter()
            .map(|c| c.url.as_str())
            .collect();
        rows.push([
            cluster.metadata.name.clone().unwrap_or_default(),
            cluster.spec.hub_accepts_client.to_string(),
            urls.join(","),
            status(CONDITION_JOINED),
            status(CONDITION_AVAILABLE),
            cluster
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(now.duration_since(t.0)))
                .unwrap_or_default(),
        ]);
    }
    crate::table::render(&rows)
}

/// kubectl's short age: `45s`, `3m`, `5h`, `2d`.
pub fn age(elapsed: jiff::SignedDuration) -> String {
    let seconds = elapsed.as_secs().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use ocm_api::cluster::v1::{ManagedClusterSpec, ManagedClusterStatus};
    use ocm_api::condition::ConditionStatus;
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn at(second: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(second).unwrap_or_default()
    }

    #[test]
    fn the_table_has_ocms_columns_and_kubectls_ages() {
        let mut joined = ManagedCluster::new(
            "cluster1",
            ManagedClusterSpec {
                hub_accepts_client: true,
                ..ManagedClusterSpec::default()
            },
        );
        joined.metadata.creation_timestamp = Some(Time(at(0)));
        let mut conditions = Vec::new();
        for type_ in [CONDITION_JOINED, CONDITION_AVAILABLE] {
            condition::set(
                &mut conditions,
                type_,
                ConditionStatus::True,
                "r",
                "m",
                at(0),
            );
        }
        joined.status = Some(ManagedClusterStatus {
            conditions,
            ..ManagedClusterStatus::default()
        });
        let mut pending = ManagedCluster::new("cluster-two", ManagedClusterSpec::default());
        pending.metadata.creation_timestamp = Some(Time(at(3000)));
        let table = table(&[joined, pending], at(3600));
        assert_eq!(
            table,
            "NAME          HUB ACCEPTED   MANAGED CLUSTER URLS   JOINED   AVAILABLE   AGE\n\
             cluster1      true                                  True     True        60m\n\
             cluster-two   false                                                      10m\n"
        );
        assert_eq!(age(jiff::SignedDuration::from_secs(3 * 86_400)), "3d");
    }
}
