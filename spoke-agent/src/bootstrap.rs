//! Joining the hub with a bootstrap credential (OCM's gRPC registration driver): subscribe
//! to the cluster's ManagedCluster and CSR events, create the ManagedCluster (it may exist
//! already), send a certificate request, and wait until the hub has approved and signed it.
//! The result is the agent's own client identity; the bootstrap credential is not needed again
//! until that identity expires or is refused.

use std::time::Duration;

use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec};
use ocm_api::k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use ocm_transport::client::{self, InboxOptions, Interest, PublishError, Role, TransportConfig};
use ocm_transport::event_type::{DataType, EventAction, SubResource};
use ocm_transport::registration::{self, Decoded, RegistrationKind};
use ocm_transport::status_error;
use ocm_transport::tls::PemIdentity;
use tokio_util::sync::CancellationToken;

use crate::csr::{self, AgentName};

/// How to join.
#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    /// The hub's broker, with the bootstrap token.
    pub transport: TransportConfig,
    pub name: AgentName,
    /// Ask for certificates shorter than the hub's default.
    pub expiration_seconds: Option<i32>,
    /// How long to wait for a person to approve, in all.
    pub timeout: Duration,
    /// How often to say, in the log, that approval is awaited.
    pub waiting_notice: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("connecting to the hub: {0}")]
    Open(#[from] client::OpenError),
    #[error("{0}")]
    Csr(#[from] csr::CsrError),
    #[error("the hub refused {what}: {detail}")]
    Refused { what: &'static str, detail: String },
    #[error("the hub denied certificate request {csr}: {reason}")]
    Denied { csr: String, reason: String },
    #[error(
        "no certificate within {0:?}; approve the request on the hub (`ocmctl accept --clusters <cluster>`) or check the hub's signer"
    )]
    TimedOut(Duration),
    #[error("the hub issued a certificate that does not match the request: {0}")]
    Mismatch(String),
    #[error("stopped")]
    Cancelled,
}

/// Joins and returns the agent's signed client identity.
pub async fn bootstrap(
    config: &BootstrapConfig,
    cancel: &CancellationToken,
) -> Result<PemIdentity, BootstrapError> {
    obtain(config, config.transport.clone(), Purpose::Join, cancel).await
}

/// Renews `current` before it expires: a new key and request, sent over a connection that
/// authenticates with `current` itself (not the bootstrap token), which the hub approves
/// automatically when the requester is the certificate's own name and may `renew`.
pub async fn renew(
    config: &BootstrapConfig,
    current: &PemIdentity,
    cancel: &CancellationToken,
) -> Result<PemIdentity, BootstrapError> {
    let TransportConfig::Grpc(mut grpc) = config.transport.clone() else {
        return Err(BootstrapError::Refused {
            what: "a renewal over MQTT",
            detail: "registration needs the gRPC transport".to_owned(),
        });
    };
    grpc.token = None;
    grpc.client_identity = Some(current.clone());
    obtain(config, TransportConfig::Grpc(grpc), Purpose::Renew, cancel).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// First contact: the ManagedCluster is created (or found) before the request.
    Join,
    Renew,
}

async fn obtain(
    config: &BootstrapConfig,
    transport: TransportConfig,
    purpose: Purpose,
    cancel: &CancellationToken,
) -> Result<PemIdentity, BootstrapError> {
    let connection = cancel.child_token();
    // Dropped (and so disconnected) on every return.
    let _disconnect = connection.clone().drop_guard();
    let cluster = config.name.cluster.clone();
    let interest = Interest {
        role: Role::Agent {
            cluster: cluster.clone(),
        },
        data_types: vec![
            DataType::managed_clusters(),
            DataType::certificate_signing_requests(),
        ],
    };
    let (hub, mut inbox) = client::open(transport, interest, InboxOptions::default(), connection)?;
    // A token or certificate the hub refuses will not get better by waiting: say so at once.
    let mut refusal = match &hub {
        client::Publisher::Grpc(grpc) => Some(grpc.credential_refusal()),
        client::Publisher::Mqtt(_) => None,
    };
    let what = match purpose {
        Purpose::Join => "the bootstrap token",
        Purpose::Renew => "the current client certificate",
    };
    let deadline = tokio::time::Instant::now() + config.timeout;
    // Subscribed to both before asking, so the answer cannot be missed.
    for _ in 0..2 {
        tokio::select! {
            () = cancel.cancelled() => return Err(BootstrapError::Cancelled),
            () = tokio::time::sleep_until(deadline) => return Err(BootstrapError::TimedOut(config.timeout)),
            why = refused(refusal.as_mut()) => return Err(BootstrapError::Refused { what, detail: why }),
            cue = inbox.resync.recv() => { cue.ok_or(BootstrapError::Cancelled)?; }
        }
    }

    if purpose == Purpose::Join {
        let joining = ManagedCluster::new(&cluster, ManagedClusterSpec::default());
        match hub
            .publish(&event(
                RegistrationKind::ManagedCluster,
                EventAction::CreateRequest,
                &joining,
            )?)
            .await
        {
            Ok(()) => tracing::info!(%cluster, "ManagedCluster created on the hub"),
            Err(err) if already_exists(&err) => {
                tracing::info!(%cluster, "ManagedCluster exists on the hub")
            }
            Err(err) => {
                return Err(BootstrapError::Refused {
                    what: "the ManagedCluster",
                    detail: err.to_string(),
                });
            }
        }
    }
    let request = csr::new_request(&config.name, config.expiration_seconds)?;
    let csr_name = request.csr.metadata.name.clone().unwrap_or_default();
    hub.publish(&event(
        RegistrationKind::CertificateSigningRequest,
        EventAction::CreateRequest,
        &request.csr,
    )?)
    .await
    .map_err(|err| BootstrapError::Refused {
        what: "the certificate request",
        detail: err.to_string(),
    })?;
    match purpose {
        Purpose::Join => {
            tracing::info!(%cluster, csr = %csr_name, "certificate requested; waiting for the hub to approve and sign it")
        }
        Purpose::Renew => {
            tracing::info!(%cluster, csr = %csr_name, "certificate renewal requested")
        }
    }

    let mut notice = tokio::time::interval(config.waiting_notice);
    notice.tick().await;
    loop {
        let received = tokio::select! {
            () = cancel.cancelled() => return Err(BootstrapError::Cancelled),
            () = tokio::time::sleep_until(deadline) => return Err(BootstrapError::TimedOut(config.timeout)),
            why = refused(refusal.as_mut()) => return Err(BootstrapError::Refused { what, detail: why }),
            _ = notice.tick() => {
                tracing::info!(%cluster, csr = %csr_name, "still waiting for approval on the hub (ocmctl accept --clusters {cluster})");
                continue;
            }
            // After a reconnect, ask for the CSRs again: an update may have gone by unseen.
            cue = inbox.resync.recv() => {
                if let Some(data_type) = cue.filter(|d| *d == DataType::certificate_signing_requests()) {
                    let resync = ocm_transport::resync::spec_resync_request(
                        &data_type,
                        &cluster,
                        &cluster,
                        &ocm_transport::resync::ResourceVersionList::default(),
                        uuid::Uuid::new_v4().to_string(),
                        jiff::Timestamp::now(),
                    );
                    if let Err(err) = hub.publish(&resync).await {
                        tracing::warn!(%cluster, %err, "CSR resync not sent");
                    }
                }
                continue;
            }
            received = inbox.events.recv() => received.ok_or(BootstrapError::Cancelled)?,
        };
        if !received
            .event_type
            .starts_with(&DataType::certificate_signing_requests().to_string())
        {
            continue;
        }
        let Ok(Decoded::Object(csr)) = registration::decode::<CertificateSigningRequest>(
            RegistrationKind::CertificateSigningRequest,
            &received,
        ) else {
            continue;
        };
        if csr.metadata.name.as_deref() != Some(csr_name.as_str()) {
            continue;
        }
        let status = csr.status.unwrap_or_default();
        if let Some(refused) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
        {
            return Err(BootstrapError::Denied {
                csr: csr_name,
                reason: format!(
                    "{}: {}",
                    refused.reason.clone().unwrap_or_default(),
                    refused.message.clone().unwrap_or_default()
                ),
            });
        }
        if let Some(certificate) = status.certificate {
            let certificate = String::from_utf8(certificate.0).map_err(|_| {
                BootstrapError::Mismatch("the certificate is not PEM text".to_owned())
            })?;
            check_issued(&certificate, &request.key_pem, &config.name)?;
            tracing::info!(%cluster, csr = %csr_name, "client certificate issued");
            return Ok(PemIdentity {
                cert_chain: certificate,
                key: request.key_pem,
            });
        }
    }
}

/// Resolves with the reason once the broker refuses the credential; never without a watch.
async fn refused(refusal: Option<&mut tokio::sync::watch::Receiver<Option<String>>>) -> String {
    let Some(refusal) = refusal else {
        return std::future::pending().await;
    };
    // The borrow ends with this statement: it must not be held across an await.
    let why = refusal
        .wait_for(Option::is_some)
        .await
        .map(|why| why.clone().unwrap_or_default());
    match why {
        Ok(why) => why,
        Err(_) => std::future::pending().await,
    }
}

fn event<K: ocm_api::kube::Resource + serde::Serialize>(
    kind: RegistrationKind,
    action: EventAction,
    object: &K,
) -> Result<ocm_transport::CloudEvent, BootstrapError> {
    registration::encode(
        kind,
        SubResource::Spec,
        action,
        &object_source(object),
        object,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    )
    .map_err(|e| BootstrapError::Refused {
        what: "to encode the request",
        detail: e.to_string(),
    })
}

/// Registration clients send as their cluster (OCM's do).
fn object_source<K: ocm_api::kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    meta.labels
        .as_ref()
        .and_then(|l| l.get(ocm_transport::registration::CLUSTER_NAME_LABEL))
        .or(meta.name.as_ref())
        .cloned()
        .unwrap_or_default()
}

fn already_exists(err: &PublishError) -> bool {
    match err {
        PublishError::Grpc(status) if status.code() == tonic::Code::FailedPrecondition => {
            status_error::Status::from_grpc_message(status.message()).reason == "AlreadyExists"
        }
        _ => false,
    }
}

/// The certificate is for our key and our name.
fn check_issued(certificate: &str, key_pem: &str, name: &AgentName) -> Result<(), BootstrapError> {
    let der = x509_parser::pem::parse_x509_pem(certificate.as_bytes())
        .map_err(|e| BootstrapError::Mismatch(format!("not PEM: {e}")))?
        .1
        .contents;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| BootstrapError::Mismatch(format!("not a certificate: {e}")))?;
    let key = rcgen::KeyPair::from_pem(key_pem)
        .map_err(|e| BootstrapError::Mismatch(format!("our key: {e}")))?;
    if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(BootstrapError::Mismatch("it is for another key".to_owned()));
    }
    let identity = ocm_transport::tls::cert_identity(&der.clone().into())
        .map_err(|e| BootstrapError::Mismatch(e.to_string()))?;
    if identity.user != name.common_name() {
        return Err(BootstrapError::Mismatch(format!(
            "it names {:?}, not {:?}",
            identity.user,
            name.common_name()
        )));
    }
    Ok(())
}
