//! The in-memory managed cluster a simulated spoke reports on, in place of a spoke apiserver:
//! what the agent would observe (`/livez`, version, nodes), handed to the agent's own status
//! code. Issue 6's simulator will grow the applied bundles here.

use std::collections::BTreeMap;

use ocm_api::k8s_openapi::api::core::v1::{Node, NodeStatus};
use ocm_api::k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_spoke_agent::agent::Observed;

/// A managed cluster that exists only in memory.
#[derive(Debug, Clone)]
pub struct ClusterModel {
    pub live: bool,
    pub kubernetes_version: String,
    pub nodes: Vec<Node>,
}

impl ClusterModel {
    /// A live cluster of `nodes` nodes sized as the test environment's kwok nodes (32 CPUs,
    /// 256 GiB, 110 pods), at the Kubernetes version the test environment runs.
    pub fn kwok_like(nodes: usize) -> Self {
        let resources: BTreeMap<String, Quantity> =
            [("cpu", "32"), ("memory", "256Gi"), ("pods", "110")]
                .into_iter()
                .map(|(name, value)| (name.to_owned(), Quantity(value.to_owned())))
                .collect();
        Self {
            live: true,
            kubernetes_version: "v1.36.3".to_owned(),
            nodes: (0..nodes)
                .map(|i| Node {
                    metadata: ObjectMeta {
                        name: Some(format!("node-{i}")),
                        ..ObjectMeta::default()
                    },
                    status: Some(NodeStatus {
                        capacity: Some(resources.clone()),
                        allocatable: Some(resources.clone()),
                        ..NodeStatus::default()
                    }),
                    ..Node::default()
                })
                .collect(),
        }
    }

    /// What the agent would observe of this cluster.
    pub fn observed(&self) -> Observed {
        Observed {
            live: self.live,
            version: Some(self.kubernetes_version.clone()),
            nodes: Some(self.nodes.clone()),
            // No ClusterClaims on a simulated cluster.
            claims: Some(Vec::new()),
            ..Observed::default()
        }
    }
}
