//! `ocmctl accept --clusters a,b`: the hub administrator's half of the double opt-in, as
//! clusteradm does it — approve the cluster's pending certificate requests and set
//! `hubAcceptsClient`.

use std::time::Duration;

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::kube::api::{ListParams, Patch, PatchParams};
use ocm_api::kube::{Api, Client};

use ocm_api::registration::{CLUSTER_NAME_LABEL, SIGNER_NAME};

/// What accepting one cluster did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub cluster: String,
    /// Certificate requests approved now.
    pub approved: Vec<String>,
    /// It was accepted before.
    pub already: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(
        "cluster {0:?} has not joined this hub (no ManagedCluster): start its agent (`ocm-agent` or `ocmctl join`), or pass --wait"
    )]
    NotJoined(String),
    #[error("{what} for cluster {cluster:?}: {source}")]
    Kube {
        cluster: String,
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
}

/// Accepts `cluster`, waiting up to `wait` for it to join (its ManagedCluster and its first
/// certificate request).
pub async fn accept(
    client: &Client,
    cluster: &str,
    wait: Duration,
) -> Result<Accepted, AcceptError> {
    let err = |what: &'static str| {
        move |source| AcceptError::Kube {
            cluster: cluster.to_owned(),
            what,
            source: Box::new(source),
        }
    };
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + wait;
    let current = loop {
        if let Some(current) = clusters
            .get_opt(cluster)
            .await
            .map_err(err("reading its ManagedCluster"))?
        {
            break current;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AcceptError::NotJoined(cluster.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let labelled = ListParams::default().labels(&format!("{CLUSTER_NAME_LABEL}={cluster}"));
    // An agent creates its ManagedCluster just before its certificate request: when waiting,
    // wait for that request too (as clusteradm's `accept --wait`), so it is not left pending.
    let pending = loop {
        let listed = csrs
            .list(&labelled)
            .await
            .map_err(err("listing its certificate requests"))?;
        if !listed.items.is_empty()
            || current.spec.hub_accepts_client
            || tokio::time::Instant::now() >= deadline
        {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut approved = Vec::new();
    for csr in pending.items.iter().filter(|c| is_pending(c)) {
        let name = csr.metadata.name.clone().unwrap_or_default();
        let mut conditions = csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        conditions.push(
            ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition {
                type_: "Approved".to_owned(),
                status: "True".to_owned(),
                reason: Some("ApprovedByOcmctl".to_owned()),
                message: Some("approved by ocmctl accept".to_owned()),
                last_update_time: Some(
                    ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        jiff::Timestamp::now(),
                    ),
                ),
                ..Default::default()
            },
        );
        csrs.patch_subresource(
            "approval",
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})),
        )
        .await
        .map_err(err("approving a certificate request"))?;
        approved.push(name);
    }
    let already = current.spec.hub_accepts_client;
    if !already {
        clusters
            .patch(
                cluster,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"hubAcceptsClient": true}})),
            )
            .await
            .map_err(err("accepting it"))?;
    }
    Ok(Accepted {
        cluster: cluster.to_owned(),
        approved,
        already,
    })
}

/// Our signer's, neither approved nor denied yet.
fn is_pending(csr: &CertificateSigningRequest) -> bool {
    csr.spec.signer_name == SIGNER_NAME
        && !csr
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Approved" || c.type_ == "Denied")
            })
}
