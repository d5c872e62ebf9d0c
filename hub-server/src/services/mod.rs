//! The hub's broker services for the registration data types, as OCM's gRPC server handles
//! them (its gRPC registration driver): what agents publish is applied to the hub's Kubernetes, and
//! changes of the hub's objects go back to the subscribed agents of their cluster.
//!
//! One generic service ([`RegistrationService`]) does the event handling — decoding, checking
//! that the object belongs to the cluster the caller was authorized for, spec resync — over a
//! small [`KindOps`] per kind that says what create, update and list mean there. [`source`]
//! watches the objects and publishes their changes.

mod clusters;
mod csrs;
mod events;
pub mod index;
pub mod leases;
pub mod outbox;
pub mod source;

use std::fmt::Debug;
use std::sync::Arc;

use ocm_api::kube::Resource;
use ocm_transport::CloudEvent;
use ocm_transport::broker::{EventHandler, Identity};
use ocm_transport::event::extension;
use ocm_transport::event_type::{EventAction, EventType, SubResource};
use ocm_transport::registration::{self, Decoded, RegistrationKind};
use ocm_transport::resync::{self, HubResource, ResourceVersionList, SpecResyncStep};
use ocm_transport::status_error;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;

pub use clusters::ManagedClusterOps;
pub use csrs::CsrOps;
pub use events::EventOps;
pub use index::ClusterIndex;
pub use leases::LeaseOps;
pub use outbox::Outbox;

/// The source ID the hub sends as (OCM's gRPC server: `kube`).
pub const HUB_SOURCE: &str = "kube";

/// What one registration kind's operations are on the hub's Kubernetes.
#[tonic::async_trait]
pub trait KindOps: Send + Sync + 'static {
    type Object: Resource<DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    const KIND: RegistrationKind;

    /// The objects of `cluster` its agents hold (what a spec resync compares against).
    async fn list(&self, cluster: &str) -> Result<Vec<Arc<Self::Object>>, Status>;

    async fn create(&self, _who: &Identity, _object: Self::Object) -> Result<(), Status> {
        Err(unsupported(Self::KIND, "spec.create_request"))
    }

    async fn update(&self, _object: Self::Object) -> Result<(), Status> {
        Err(unsupported(Self::KIND, "spec.update_request"))
    }

    async fn update_status(&self, _object: Self::Object) -> Result<(), Status> {
        Err(unsupported(Self::KIND, "status.update_request"))
    }
}

fn unsupported(kind: RegistrationKind, what: &str) -> Status {
    Status::invalid_argument(format!("{} does not accept {what}", kind.data_type()))
}

/// The broker's handler for one registration kind.
pub struct RegistrationService<O: KindOps> {
    ops: O,
    outbox: Outbox,
}

impl<O: KindOps> std::fmt::Debug for RegistrationService<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationService")
            .field("data_type", &O::KIND.data_type())
            .finish_non_exhaustive()
    }
}

impl<O: KindOps> RegistrationService<O> {
    pub fn new(ops: O, outbox: Outbox) -> Self {
        Self { ops, outbox }
    }

    /// Answers an agent's spec resync: every object it lacks or holds in an older version,
    /// and a deletion for every object it holds that the hub no longer has.
    async fn resync(&self, cluster: &str, event: &CloudEvent) -> Result<(), Status> {
        let held: ResourceVersionList = match event.data.as_deref() {
            Some(data) if !data.is_empty() => serde_json::from_slice(data).map_err(|e| {
                Status::invalid_argument(format!("resync request of {cluster}: {e}"))
            })?,
            _ => ResourceVersionList::default(),
        };
        let objects = self.ops.list(cluster).await?;
        let mut hub = Vec::with_capacity(objects.len());
        for object in &objects {
            let meta = object.meta();
            let version = registration::resource_version_number(O::KIND, meta)
                .map_err(|e| Status::internal(e.to_string()))?
                .unwrap_or(0);
            hub.push(HubResource {
                resource_id: meta.uid.clone().unwrap_or_default(),
                version,
                deleting: meta.deletion_timestamp.is_some(),
            });
        }
        let data_type = O::KIND.data_type();
        for step in resync::plan_spec_resync(&hub, &held) {
            let event = match step {
                SpecResyncStep::Send { resource_id } => {
                    let Some(object) = objects
                        .iter()
                        .find(|o| o.meta().uid.as_deref() == Some(resource_id.as_str()))
                    else {
                        continue;
                    };
                    registration::encode(
                        O::KIND,
                        SubResource::Spec,
                        EventAction::ResyncResponse,
                        HUB_SOURCE,
                        object.as_ref(),
                        uuid::Uuid::new_v4().to_string(),
                        jiff::Timestamp::now(),
                    )
                    .map_err(|e| Status::internal(e.to_string()))?
                }
                SpecResyncStep::Delete {
                    resource_id,
                    resource_version,
                } => resync::synthesized_delete(
                    &data_type,
                    HUB_SOURCE,
                    cluster,
                    &resource_id,
                    resource_version,
                    uuid::Uuid::new_v4().to_string(),
                    jiff::Timestamp::now(),
                )
                .map_err(|e| Status::internal(e.to_string()))?,
            };
            self.outbox.send(&event);
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl<O: KindOps> EventHandler for RegistrationService<O> {
    async fn handle(&self, who: &Identity, event: CloudEvent) -> Result<(), Status> {
        let event_type: EventType = event
            .event_type
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        // The broker authorized the caller for this cluster (namespace = clustername).
        let cluster = event.cluster_name().unwrap_or_default().to_owned();
        if (event_type.sub_resource, event_type.action)
            == (SubResource::Spec, EventAction::ResyncRequest)
        {
            return self.resync(&cluster, &event).await;
        }
        let object = match registration::decode::<O::Object>(O::KIND, &event) {
            Ok(Decoded::Object(object)) => object,
            Ok(Decoded::Deleted { .. }) => {
                return Err(Status::invalid_argument(format!(
                    "{}: agents do not delete objects on the hub",
                    O::KIND.data_type()
                )));
            }
            Err(err) => return Err(Status::invalid_argument(err.to_string())),
        };
        let belongs_to = O::KIND.cluster_name(object.meta());
        if belongs_to != cluster {
            tracing::warn!(%cluster, user = %who.user, object_cluster = %belongs_to, data_type = %O::KIND.data_type(), "refused an object of another cluster");
            return Err(Status::permission_denied(format!(
                "{} {:?} belongs to cluster {belongs_to:?}, not {cluster:?}",
                O::KIND.kind(),
                object.meta().name.clone().unwrap_or_default()
            )));
        }
        let resource_id = event
            .extension_str(extension::RESOURCE_ID)
            .unwrap_or_default()
            .to_owned();
        let result = match (event_type.sub_resource, event_type.action) {
            (SubResource::Spec, EventAction::CreateRequest) => self.ops.create(who, object).await,
            (SubResource::Spec, EventAction::UpdateRequest) => self.ops.update(object).await,
            (SubResource::Status, EventAction::UpdateRequest) => {
                self.ops.update_status(object).await
            }
            (sub, action) => Err(unsupported(
                O::KIND,
                &format!("{}.{}", sub.as_str(), action.as_str()),
            )),
        };
        if let Err(status) = &result {
            tracing::info!(%cluster, user = %who.user, %resource_id, data_type = %O::KIND.data_type(), error = %status.message(), "publish refused");
        }
        result
    }
}

/// A Kubernetes API failure as OCM's clients expect it: `FailedPrecondition` carrying the
/// `{"ErrStatus":{…}}` of the apiserver's Status (reason and code intact).
pub(crate) fn kube_status(err: ocm_api::kube::Error) -> Status {
    let status = match &err {
        ocm_api::kube::Error::Api(response) => status_error::Status::failure(
            &response.reason,
            i32::from(response.code),
            response.message.clone(),
            None,
        ),
        other => status_error::Status::failure("InternalError", 500, other.to_string(), None),
    };
    Status::failed_precondition(status.to_grpc_message())
}

/// The object as the apiserver wants it created: no UID or resourceVersion from the agent.
pub(crate) fn for_create<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.uid = None;
    meta.resource_version = None;
    meta.creation_timestamp = None;
    meta.managed_fields = None;
    object
}
