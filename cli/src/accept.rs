//! `ocmctl accept --clusters a,b`: the hub administrator's half of the double opt-in, as
//! clusteradm does it — approve the cluster's pending certificate request and set
//! `hubAcceptsClient`.
//!
//! Only a joining agent's request is approved: one asked for by a bootstrap identity (or by the
//! cluster's own agent), and only when it is the one such request waiting. Several waiting
//! requests mean someone else asked for the cluster's identity too — every holder of the
//! bootstrap token can — so the command refuses and lists them (requester, common name, age),
//! unless `--requesters` narrows whose requests count or `--skip-approve-check` approves them
//! all, as clusteradm's flags do.

use std::time::Duration;

use ocm_api::cluster::v1::ManagedCluster;
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_api::kube::api::{ListParams, Patch, PatchParams};
use ocm_api::kube::{Api, Client};

use ocm_api::registration::{CLUSTER_NAME_LABEL, CSR_USER_ANNOTATION, SIGNER_NAME};

use crate::names::{BOOTSTRAP_NAMESPACE, BOOTSTRAP_SERVICE_ACCOUNT};

/// How requests are chosen for approval.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptOptions {
    /// Wait this long for a cluster that has not asked to join yet.
    pub wait: Duration,
    /// Requesters whose requests count; empty means the bootstrap identities (`ocmctl init`'s
    /// ServiceAccount, `system:bootstrap:*` token users) and the cluster's own agents.
    pub requesters: Vec<String>,
    /// Approve every waiting request of the cluster, whoever asked (clusteradm's flag).
    pub skip_approve_check: bool,
}

/// A certificate request as the administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    /// Who asked: the hub's `csr-user` record of the agent, else the CSR's own requester.
    pub requester: String,
    /// The common name asked for (`system:open-cluster-management:<cluster>:<agent>`).
    pub common_name: String,
    pub created: Option<jiff::Timestamp>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let created = self
            .created
            .map_or_else(|| "unknown".to_owned(), |t| t.to_string());
        write!(
            f,
            "{} (requester {}, common name {}, created {created})",
            self.name, self.requester, self.common_name
        )
    }
}

/// What accepting one cluster did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub cluster: String,
    /// Certificate requests approved now.
    pub approved: Vec<String>,
    /// Waiting requests left alone: their requester does not count.
    pub skipped: Vec<Request>,
    /// It was accepted before.
    pub already: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(
        "cluster {0:?} has not joined this hub (no ManagedCluster): start its agent (`ocm-agent` or `ocmctl join`), or pass --wait"
    )]
    NotJoined(String),
    #[error(
        "cluster {cluster:?} has {} certificate requests waiting, so not only its agent asked for its identity; nothing was approved:\n{}\nCheck which one its agent made (its log names it), delete the others (`kubectl delete csr <name>`) and accept again, or pass --requesters or --skip-approve-check",
        .requests.len(),
        .requests.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n")
    )]
    SeveralRequests {
        cluster: String,
        requests: Vec<Request>,
    },
    #[error("{what} for cluster {cluster:?}: {source}")]
    Kube {
        cluster: String,
        what: &'static str,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
}

/// Accepts `cluster`, waiting up to `options.wait` for it to join (its ManagedCluster and its
/// first certificate request).
pub async fn accept(
    client: &Client,
    cluster: &str,
    options: &AcceptOptions,
) -> Result<Accepted, AcceptError> {
    let err = |what: &'static str| {
        move |source| AcceptError::Kube {
            cluster: cluster.to_owned(),
            what,
            source: Box::new(source),
        }
    };
    let clusters: Api<ManagedCluster> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + options.wait;
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
    let listed = loop {
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
    let waiting: Vec<Request> = listed
        .items
        .iter()
        .filter(|c| is_pending(c))
        .map(request)
        .collect();
    let (chosen, skipped) = choose(cluster, waiting, options)?;
    let mut approved = Vec::new();
    for request in &chosen {
        let Some(csr) = listed
            .items
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(request.name.as_str()))
        else {
            continue;
        };
        approve(&csrs, csr)
            .await
            .map_err(err("approving a certificate request"))?;
        approved.push(request.name.clone());
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
        skipped,
        already,
    })
}

/// The waiting requests to approve, and those left alone. Pure.
pub fn choose(
    cluster: &str,
    waiting: Vec<Request>,
    options: &AcceptOptions,
) -> Result<(Vec<Request>, Vec<Request>), AcceptError> {
    if options.skip_approve_check {
        return Ok((waiting, Vec::new()));
    }
    let (chosen, skipped): (Vec<Request>, Vec<Request>) = waiting
        .into_iter()
        .partition(|r| counts(cluster, &r.requester, &options.requesters));
    if chosen.len() > 1 {
        return Err(AcceptError::SeveralRequests {
            cluster: cluster.to_owned(),
            requests: chosen,
        });
    }
    Ok((chosen, skipped))
}

/// Whether a request by `requester` may be approved for `cluster` without
/// `--skip-approve-check`.
fn counts(cluster: &str, requester: &str, requesters: &[String]) -> bool {
    if !requesters.is_empty() {
        return requesters.iter().any(|r| r == requester);
    }
    let bootstrap_account =
        format!("system:serviceaccount:{BOOTSTRAP_NAMESPACE}:{BOOTSTRAP_SERVICE_ACCOUNT}");
    requester == bootstrap_account
        || requester.starts_with("system:bootstrap:")
        || ocm_api::registration::agent_user_cluster(requester) == Some(cluster)
}

fn request(csr: &CertificateSigningRequest) -> Request {
    let requester = csr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CSR_USER_ANNOTATION))
        .or(csr.spec.username.as_ref())
        .cloned()
        .unwrap_or_default();
    let common_name = ocm_hub_server::csr::requested_common_name(&csr.spec.request.0)
        .unwrap_or_else(|e| format!("<unreadable: {e}>"));
    Request {
        name: csr.metadata.name.clone().unwrap_or_default(),
        requester,
        common_name,
        created: csr.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

async fn approve(
    csrs: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
) -> Result<(), ocm_api::kube::Error> {
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
    .map(|_| ())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, requester: &str) -> Request {
        Request {
            name: name.into(),
            requester: requester.into(),
            common_name: "system:open-cluster-management:c1:agent".into(),
            created: None,
        }
    }

    const BOOTSTRAP: &str =
        "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";

    #[test]
    fn the_one_joining_request_is_approved_and_strangers_are_skipped() {
        let waiting = vec![req("a", BOOTSTRAP), req("b", "alice")];
        let (chosen, skipped) = choose("c1", waiting, &AcceptOptions::default()).unwrap();
        assert_eq!(chosen, vec![req("a", BOOTSTRAP)]);
        assert_eq!(skipped, vec![req("b", "alice")]);
    }

    #[test]
    fn several_joining_requests_are_refused_unless_told() {
        let waiting = vec![
            req("a", BOOTSTRAP),
            req("b", "system:bootstrap:abcdef"),
            req("c", "system:open-cluster-management:c2:agent"),
        ];
        let err = choose("c1", waiting.clone(), &AcceptOptions::default()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("  a (requester") && message.contains("  b (requester"));
        assert!(
            !message.contains("  c (requester"),
            "another cluster's agent does not count"
        );
        let narrowed = AcceptOptions {
            requesters: vec!["system:bootstrap:abcdef".into()],
            ..AcceptOptions::default()
        };
        let (chosen, _) = choose("c1", waiting.clone(), &narrowed).unwrap();
        assert_eq!(chosen, vec![req("b", "system:bootstrap:abcdef")]);
        let all = AcceptOptions {
            skip_approve_check: true,
            ..AcceptOptions::default()
        };
        assert_eq!(choose("c1", waiting, &all).unwrap().0.len(), 3);
    }
}
