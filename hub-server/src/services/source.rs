//! The hub as a source: watches its objects of a registration kind and sends every change, as
//! a spec event, to the subscribed agents of the object's cluster (deletions as data-less events
//! with `deletiontimestamp`).

use futures::StreamExt as _;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use ocm_api::kube::runtime::watcher;
use ocm_api::kube::{Api, Resource};
use ocm_transport::event_type::{EventAction, SubResource};
use ocm_transport::registration::{self, RegistrationKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::index::ClusterIndex;
use super::{HUB_SOURCE, Outbox};

/// Sends changes of `api`'s objects (narrowed by `config`) until `cancel`, keeping `index` up
/// to date first (so a resync racing a change never answers older than what was sent). The
/// watch restarts by itself after errors (with kube-runtime's backoff).
pub async fn publish_changes<K>(
    kind: RegistrationKind,
    api: Api<K>,
    config: watcher::Config,
    index: ClusterIndex<K>,
    outbox: Outbox,
    cancel: CancellationToken,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use ocm_api::kube::runtime::WatchStreamExt as _;
    let mut changes = std::pin::pin!(watcher(api, config).default_backoff());
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return,
            next = changes.next() => next,
        };
        let event = match next {
            None => return,
            Some(Err(err)) => {
                tracing::warn!(data_type = %kind.data_type(), %err, "watch failed; retrying");
                continue;
            }
            Some(Ok(event)) => event,
        };
        match event {
            watcher::Event::Init => index.relist_started(),
            watcher::Event::InitApply(object) => {
                index.relisted(&object);
                // Agents hear of what the first listing holds by their resync, answered once
                // it is complete; sending it too repeated every object to every agent that
                // reconnected to a restarted hub in its first seconds. Later relistings may
                // hold changes missed while the watch was down, so they are sent.
                if index.is_ready() {
                    send(kind, action_for(&object), &object, &outbox);
                }
            }
            watcher::Event::InitDone => index.relist_done(),
            watcher::Event::Apply(object) => {
                index.applied(&object);
                send(kind, action_for(&object), &object, &outbox);
            }
            watcher::Event::Delete(mut object) => {
                index.deleted(&object);
                object
                    .meta_mut()
                    .deletion_timestamp
                    .get_or_insert(Time(jiff::Timestamp::now()));
                send(kind, EventAction::DeleteRequest, &object, &outbox);
            }
        }
    }
}

/// An object being deleted (finalizers pending) goes out as a deletion, as OCM's server sends it.
fn action_for<K: Resource>(object: &K) -> EventAction {
    if object.meta().deletion_timestamp.is_some() {
        EventAction::DeleteRequest
    } else {
        EventAction::UpdateRequest
    }
}

fn send<K: Resource + Serialize>(
    kind: RegistrationKind,
    action: EventAction,
    object: &K,
    outbox: &Outbox,
) {
    match registration::encode(
        kind,
        SubResource::Spec,
        action,
        HUB_SOURCE,
        object,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    ) {
        Ok(event) => {
            outbox.send(&event);
        }
        Err(err) => {
            tracing::warn!(data_type = %kind.data_type(), %err, "object not sent to its agents");
        }
    }
}
