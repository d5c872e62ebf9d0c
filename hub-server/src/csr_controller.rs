//! The hub's CSR signer for `open-cluster-management.io/grpc`: watches those CSRs, approves the
//! ones the rules allow ([`crate::csr::auto_approval`]), and signs approved, well-formed ones with
//! the hub CA. A person approves the rest (`ocmctl accept`, `kubectl certificate approve`); an
//! approved request the hub will not sign gets a `Failed` condition saying why.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use ocm_api::cluster::v1::{CONDITION_JOINED, ManagedCluster};
use ocm_api::k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ocm_api::kube::api::{Patch, PatchParams};
use ocm_api::kube::runtime::controller::{Action, Controller};
use ocm_api::kube::runtime::{WatchStreamExt as _, reflector, watcher};
use ocm_api::kube::{Api, Client};
use ocm_transport::access::AccessRequest;
use ocm_transport::broker::{Authorizer, Identity};
use rcgen::{Issuer, KeyPair};
use tokio_util::sync::CancellationToken;

use crate::csr::{
    self, AgentRequest, AutoApproval, CSR_USER_ANNOTATION, CsrRefusal, MANAGED_CLUSTERS_GROUP,
    SIGNER_NAME,
};

/// How the signer behaves.
#[derive(Debug, Clone)]
pub struct SignerConfig {
    /// Lifetime of issued certificates (a request's shorter `expirationSeconds` wins).
    pub validity: Duration,
    /// Bootstrap users whose requests are approved without a person.
    pub auto_approved_users: Vec<String>,
    /// The hub's own user: CSRs it created on an agent's behalf carry the agent in the
    /// `csr-user` annotation, which is trusted only on those.
    pub hub_user: Option<String>,
}

/// What the reconciler needs.
pub struct Signer {
    client: Client,
    issuer: Issuer<'static, KeyPair>,
    authorizer: Arc<dyn Authorizer>,
    config: SignerConfig,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(
        client: Client,
        issuer: Issuer<'static, KeyPair>,
        authorizer: Arc<dyn Authorizer>,
        config: SignerConfig,
    ) -> Self {
        Self {
            client,
            issuer,
            authorizer,
            config,
        }
    }
}

/// Runs the signer until `cancel`.
pub async fn run(signer: Arc<Signer>, cancel: CancellationToken) {
    let api: Api<CertificateSigningRequest> = Api::all(signer.client.clone());
    let watched = watcher::Config::default().fields(&format!("spec.signerName={SIGNER_NAME}"));
    // The controller's own cache: every agent's CSR stays in it (until the apiserver's cleaner
    // deletes it an hour after issue), so it keeps what `plan` reads and no more.
    let (store, writer) = reflector::store();
    let csrs = watcher(api, watched)
        .default_backoff()
        .modify(slim)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(csrs, store)
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, signer)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(%err, "CSR reconcile");
            }
        })
        .await;
}

/// What the signer keeps of a CSR: no managed fields, and once it is issued (so `plan` says
/// Done whatever else it holds) not its request or certificate either, which are most of it.
fn slim(csr: &mut CertificateSigningRequest) {
    crate::slim::drop_managed_fields(csr);
    if let Some(certificate) = csr.status.as_mut().and_then(|s| s.certificate.as_mut()) {
        certificate.0 = Vec::new();
        csr.spec.request.0 = Vec::new();
    }
}

/// What to do with a CSR, from the CSR alone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Denied, failed or already issued: nothing left to do.
    Done,
    /// Not approved yet; may be approved automatically.
    ConsiderApproval {
        request: AgentRequest,
        requester: String,
    },
    /// Not approved yet and not well-formed: wait for a person (who will likely deny it).
    Pending(CsrRefusal),
    /// Approved: sign it.
    Sign,
    /// Approved but not signable.
    Fail(CsrRefusal),
}

fn plan(csr: &CertificateSigningRequest, hub_user: Option<&str>) -> Plan {
    let status = csr.status.as_ref();
    let conditions = status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if has("Denied") || has("Failed") || status.is_some_and(|s| s.certificate.is_some()) {
        return Plan::Done;
    }
    let checked = csr::check_request(csr);
    match (has("Approved"), checked) {
        (true, Ok(_)) => Plan::Sign,
        (true, Err(refusal)) => Plan::Fail(refusal),
        (false, Ok(request)) => Plan::ConsiderApproval {
            request,
            requester: requester(csr, hub_user),
        },
        (false, Err(refusal)) => Plan::Pending(refusal),
    }
}

/// Who asked: the `csr-user` annotation on CSRs the hub created for an agent, otherwise the
/// user the apiserver recorded.
fn requester(csr: &CertificateSigningRequest, hub_user: Option<&str>) -> String {
    let recorded = csr.spec.username.clone().unwrap_or_default();
    let on_behalf = csr
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CSR_USER_ANNOTATION));
    match (hub_user, on_behalf) {
        (Some(hub), Some(user)) if recorded == hub => user.clone(),
        _ => recorded,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("CSR {csr}: {source}")]
    Kube {
        csr: String,
        #[source]
        source: Box<ocm_api::kube::Error>,
    },
    #[error("CSR {csr}: renew permission check failed: {reason}")]
    Authorization { csr: String, reason: String },
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    signer: Arc<Signer>,
) -> Result<Action, SignerError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let api: Api<CertificateSigningRequest> = Api::all(signer.client.clone());
    let kube = |source| SignerError::Kube {
        csr: name.clone(),
        source: Box::new(source),
    };
    match plan(&csr, signer.config.hub_user.as_deref()) {
        Plan::Done => {}
        Plan::Pending(refusal) => {
            tracing::info!(csr = %name, %refusal, "CSR not well-formed; leaving it to a person");
        }
        Plan::ConsiderApproval { request, requester } => {
            let may_renew = if requester == request.common_name {
                may_renew(&signer, &request)
                    .await
                    .map_err(|reason| SignerError::Authorization {
                        csr: name.clone(),
                        reason,
                    })?
            } else {
                false
            };
            let listed = signer.config.auto_approved_users.contains(&requester);
            let cluster_joined = listed && !may_renew && joined(&signer, &request.cluster).await;
            match csr::auto_approval(
                &request,
                &requester,
                may_renew,
                &signer.config.auto_approved_users,
                cluster_joined,
            ) {
                Some(why) => {
                    let (reason, message) = match why {
                        AutoApproval::Renewal => (
                            "AutoApprovedByHubCSRApprovingController",
                            "renewal of the agent's own certificate",
                        ),
                        AutoApproval::ListedUser => (
                            "AutoApprovedByHubCSRApprovingController",
                            "requester is listed for auto-approval",
                        ),
                    };
                    let conditions = with_condition(&csr, "Approved", reason, message);
                    api.patch_subresource(
                        "approval",
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})),
                    )
                    .await
                    .map_err(kube)?;
                    tracing::info!(csr = %name, cluster = %request.cluster, %requester, ?why, "CSR approved");
                }
                None => {
                    tracing::info!(csr = %name, cluster = %request.cluster, %requester, cluster_joined, "CSR waits for approval");
                }
            }
        }
        Plan::Sign => match csr::issue(&csr, &signer.issuer, signer.config.validity) {
            Ok(certificate) => {
                let encoded = base64_encode(certificate.as_bytes());
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"status": {"certificate": encoded}})),
                )
                .await
                .map_err(kube)?;
                tracing::info!(csr = %name, "certificate issued");
            }
            Err(refusal) => fail(&api, &csr, &name, &refusal).await.map_err(kube)?,
        },
        Plan::Fail(refusal) => fail(&api, &csr, &name, &refusal).await.map_err(kube)?,
    }
    Ok(Action::await_change())
}

async fn fail(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    name: &str,
    refusal: &CsrRefusal,
) -> Result<(), ocm_api::kube::Error> {
    tracing::warn!(csr = %name, %refusal, "approved CSR refused by the signer");
    let conditions = with_condition(
        csr,
        "Failed",
        "SignerValidationFailure",
        &refusal.to_string(),
    );
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"conditions": conditions}})),
    )
    .await
    .map(|_| ())
}

/// The CSR's conditions plus a new one (merge patches replace lists whole).
fn with_condition(
    csr: &CertificateSigningRequest,
    type_: &str,
    reason: &str,
    message: &str,
) -> Vec<CertificateSigningRequestCondition> {
    let mut conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    conditions.push(CertificateSigningRequestCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
    conditions
}

/// Whether the agent may renew: `renew` on `managedclusters/clientcertificates` of its cluster,
/// which the hub grants only while the cluster is accepted.
async fn may_renew(signer: &Signer, request: &AgentRequest) -> Result<bool, String> {
    let who = Identity {
        user: request.common_name.clone(),
        groups: vec![
            format!("{}{}", csr::CLUSTER_GROUP_PREFIX, request.cluster),
            MANAGED_CLUSTERS_GROUP.to_owned(),
        ],
    };
    let renew = AccessRequest {
        verb: "renew",
        group: "register.open-cluster-management.io".to_owned(),
        resource: "managedclusters".to_owned(),
        subresource: Some("clientcertificates"),
        namespace: String::new(),
        name: Some(request.cluster.clone()),
    };
    signer.authorizer.authorize(&who, &renew).await
}

fn error_policy(csr: Arc<CertificateSigningRequest>, err: &SignerError, _: Arc<Signer>) -> Action {
    tracing::warn!(csr = ?csr.metadata.name, %err, "CSR reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether `cluster`'s agent has joined (its ManagedCluster says `ManagedClusterJoined`), or
/// cannot be known to have not: an unreadable cluster counts as joined, so a bootstrap request
/// then waits for a person rather than being approved blind.
async fn joined(signer: &Signer, cluster: &str) -> bool {
    match Api::<ManagedCluster>::all(signer.client.clone())
        .get_opt(cluster)
        .await
    {
        Ok(Some(managed)) => managed.status.as_ref().is_some_and(|status| {
            ocm_api::condition::find(&status.conditions, CONDITION_JOINED)
                .is_some_and(|c| c.status == ocm_api::condition::ConditionStatus::True)
        }),
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(cluster, %err, "cannot read the ManagedCluster; leaving its bootstrap request to a person");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ocm_api::k8s_openapi::ByteString;
    use ocm_api::k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestSpec, CertificateSigningRequestStatus,
    };
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn csr(username: &str, annotation: Option<&str>) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta {
                annotations: annotation
                    .map(|a| BTreeMap::from([(CSR_USER_ANNOTATION.to_owned(), a.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: CertificateSigningRequestSpec {
                username: Some(username.into()),
                signer_name: SIGNER_NAME.into(),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn an_issued_csr_is_cached_without_its_request_and_certificate_and_stays_done() {
        let mut issued = csr("agent", None);
        issued.spec.request.0 = b"-----BEGIN CERTIFICATE REQUEST-----".to_vec();
        issued.status = Some(CertificateSigningRequestStatus {
            certificate: Some(ByteString(b"-----BEGIN CERTIFICATE-----".to_vec())),
            ..CertificateSigningRequestStatus::default()
        });
        slim(&mut issued);
        assert!(issued.spec.request.0.is_empty());
        assert_eq!(
            issued.status.as_ref().and_then(|s| s.certificate.clone()),
            Some(ByteString(Vec::new()))
        );
        assert_eq!(plan(&issued, None), Plan::Done);

        // A CSR not issued yet keeps its request: the signer still has to read it.
        let mut pending = csr("agent", None);
        pending.spec.request.0 = b"-----BEGIN CERTIFICATE REQUEST-----".to_vec();
        slim(&mut pending);
        assert!(!pending.spec.request.0.is_empty());
    }

    #[test]
    fn the_csr_user_annotation_counts_only_on_csrs_the_hub_created() {
        let hub = "system:serviceaccount:open-cluster-management-hub:ocm-hub";
        let via_hub = csr(hub, Some("agent-user"));
        assert_eq!(requester(&via_hub, Some(hub)), "agent-user");
        // Anyone else writing the annotation does not become someone else.
        let forged = csr("mallory", Some("system:serviceaccount:x:bootstrap"));
        assert_eq!(requester(&forged, Some(hub)), "mallory");
        assert_eq!(requester(&via_hub, None), hub);
    }

    #[test]
    fn denied_failed_and_issued_csrs_are_done() {
        for (type_, certificate) in [("Denied", None), ("Failed", None), ("Approved", Some(()))] {
            let mut done = csr("u", None);
            done.status = Some(CertificateSigningRequestStatus {
                conditions: Some(vec![CertificateSigningRequestCondition {
                    type_: type_.into(),
                    status: "True".into(),
                    ..CertificateSigningRequestCondition::default()
                }]),
                certificate: certificate.map(|()| ocm_api::k8s_openapi::ByteString(b"x".to_vec())),
            });
            assert_eq!(plan(&done, None), Plan::Done, "{type_}");
        }
        // Approved and malformed: fail it, with the reason.
        let mut approved = csr("u", None);
        approved.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                ..CertificateSigningRequestCondition::default()
            }]),
            certificate: None,
        });
        assert_eq!(
            plan(&approved, None),
            Plan::Fail(CsrRefusal::NoClusterLabel)
        );
        assert_eq!(
            plan(&csr("u", None), None),
            Plan::Pending(CsrRefusal::NoClusterLabel)
        );
    }
}
