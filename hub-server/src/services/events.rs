//! `events.k8s.io.v1.events`: agents record events in their cluster's namespace. Publish only,
//! as in OCM: creating an event, and updating only its `series` (a repeated event).

use ocm_api::k8s_openapi::api::events::v1::Event;
use ocm_api::kube::api::{Patch, PatchParams, PostParams};
use ocm_api::kube::{Api, Client};
use ocm_transport::broker::Identity;
use ocm_transport::registration::RegistrationKind;
use tonic::Status;

use super::{KindOps, for_create, kube_status};

#[derive(Clone)]
pub struct EventOps {
    client: Client,
}

impl std::fmt::Debug for EventOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventOps").finish_non_exhaustive()
    }
}

impl EventOps {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, event: &Event) -> Api<Event> {
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        Api::namespaced(self.client.clone(), &namespace)
    }
}

#[tonic::async_trait]
impl KindOps for EventOps {
    type Object = Event;
    const KIND: RegistrationKind = RegistrationKind::Event;

    /// The hub does not list events to agents (OCM's does not either).
    async fn list(&self, _cluster: &str) -> Result<Vec<std::sync::Arc<Event>>, Status> {
        Ok(Vec::new())
    }

    async fn create(&self, _who: &Identity, event: Event) -> Result<(), Status> {
        let api = self.api(&event);
        api.create(&PostParams::default(), &for_create(event))
            .await
            .map(|_| ())
            .map_err(kube_status)
    }

    async fn update(&self, event: Event) -> Result<(), Status> {
        let name = event.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({"series": event.series});
        self.api(&event)
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(kube_status)
    }
}
