//! The hub as the source of ManifestWorks: a reflector over the works of every cluster
//! namespace, and a spec event to that cluster's subscribers whenever an agent must hear of a
//! change — as OCM's hub sends them over gRPC: a work seen for the
//! first time (`spec.create_request`), a new generation, other labels or annotations, the start
//! of its deletion (`spec.update_request`, with `deletiontimestamp` and no data), and its
//! removal (`spec.delete_request`, with `deletiontimestamp`). Status writes and finalizer changes
//! send nothing, so the hub's own writes never echo back.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt as _;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use ocm_api::kube::Api;
use ocm_api::kube::runtime::reflector::store::Writer;
use ocm_api::kube::runtime::{WatchStreamExt as _, watcher};
use ocm_api::work::v1::ManifestWork;
use ocm_transport::event_type::EventAction;
use ocm_transport::work;
use tokio_util::sync::CancellationToken;

use super::status::StatusWriter;
use crate::services::{HUB_SOURCE, Outbox};

/// What the publisher remembers of a work: its metadata as last sent (no managed fields).
type Seen = HashMap<String, ObjectMeta>;

/// The spec event `now` calls for, given what was sent of the work before (`None`: nothing).
pub fn spec_change(before: Option<&ObjectMeta>, now: &ObjectMeta) -> Option<EventAction> {
    let Some(before) = before else {
        return Some(EventAction::CreateRequest);
    };
    fn map(m: &Option<BTreeMap<String, String>>) -> Option<&BTreeMap<String, String>> {
        m.as_ref().filter(|m| !m.is_empty())
    }
    let started_deleting = before.deletion_timestamp.is_none() && now.deletion_timestamp.is_some();
    let changed = before.generation != now.generation
        || map(&before.labels) != map(&now.labels)
        || map(&before.annotations) != map(&now.annotations);
    (started_deleting || changed).then_some(EventAction::UpdateRequest)
}

/// Watches every ManifestWork into `store` and sends what agents must hear through `outbox`
/// until `cancel`. Works that are gone are forgotten by `statuses` too. The watch restarts by
/// itself after errors (kube-runtime's backoff); after a re-list, works that vanished meanwhile
/// are announced as deleted.
///
/// The first listing goes to no gRPC agent: they learn of the works there are by their spec
/// resync on (re)connecting, which is answered only once `listed` is true (set when the first
/// listing is in `store`). Sending it to them too re-applied most works after a hub restart at
/// 10,000 spokes, since agents reconnecting in the first seconds heard every work again at a
/// generation they held. Agents on MQTT stay connected to their broker through a hub restart
/// and do not resync, so the listing still goes to their topics, as OCM's hub sends it.
pub async fn run(
    api: Api<ManifestWork>,
    store: Writer<ManifestWork>,
    outbox: Outbox,
    statuses: StatusWriter,
    listed: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut events = std::pin::pin!(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(store)
    );
    let mut seen = Seen::new();
    let mut relisted: Option<HashSet<String>> = None;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return,
            next = events.next() => next,
        };
        let event = match next {
            None => return,
            Some(Err(err)) => {
                tracing::warn!(%err, "watching ManifestWorks failed; retrying");
                continue;
            }
            Some(Ok(event)) => event,
        };
        match event {
            watcher::Event::Init => relisted = Some(HashSet::new()),
            watcher::Event::InitApply(work) => {
                if let (Some(relisted), Some(uid)) = (relisted.as_mut(), &work.metadata.uid) {
                    relisted.insert(uid.clone());
                }
                let to = if *listed.borrow() {
                    Delivery::Everyone
                } else {
                    Delivery::MqttOnly
                };
                changed(&mut seen, &work, &outbox, to);
            }
            watcher::Event::Apply(work) => changed(&mut seen, &work, &outbox, Delivery::Everyone),
            watcher::Event::InitDone => {
                listed.send_replace(true);
                let Some(listed) = relisted.take() else {
                    continue;
                };
                let vanished: Vec<String> = seen
                    .keys()
                    .filter(|uid| !listed.contains(*uid))
                    .cloned()
                    .collect();
                for uid in vanished {
                    if let Some(meta) = seen.remove(&uid) {
                        removed(meta, &outbox, &statuses);
                    }
                }
            }
            watcher::Event::Delete(work) => {
                let Some(uid) = work.metadata.uid.clone() else {
                    continue;
                };
                seen.remove(&uid);
                removed(work.metadata, &outbox, &statuses);
            }
        }
    }
}

/// Who hears of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Everyone,
    /// Only agents on MQTT (see [`run`]).
    MqttOnly,
}

fn changed(seen: &mut Seen, work: &ManifestWork, outbox: &Outbox, to: Delivery) {
    let Some(uid) = work.metadata.uid.clone() else {
        return;
    };
    let Some(action) = spec_change(seen.get(&uid), &work.metadata) else {
        return;
    };
    send(work, action, outbox, to);
    remember(seen, work);
}

/// Keeps what agents now know of the work.
fn remember(seen: &mut Seen, work: &ManifestWork) {
    let Some(uid) = work.metadata.uid.clone() else {
        return;
    };
    seen.insert(
        uid,
        ObjectMeta {
            managed_fields: None,
            ..work.metadata.clone()
        },
    );
}

/// The work is gone from the hub: its agents delete it (OCM sends `spec.delete_request` with
/// `deletiontimestamp`, a no-op for an agent that already finished).
fn removed(mut meta: ObjectMeta, outbox: &Outbox, statuses: &StatusWriter) {
    if let Some(uid) = &meta.uid {
        statuses.forget(uid);
    }
    meta.deletion_timestamp
        .get_or_insert(Time(jiff::Timestamp::now()));
    let gone = ManifestWork {
        metadata: meta,
        ..ManifestWork::default()
    };
    send(
        &gone,
        EventAction::DeleteRequest,
        outbox,
        Delivery::Everyone,
    );
}

fn send(work: &ManifestWork, action: EventAction, outbox: &Outbox, to: Delivery) {
    let cluster = work.metadata.namespace.as_deref().unwrap_or_default();
    let name = work.metadata.name.as_deref().unwrap_or_default();
    match work::encode_spec(
        work,
        HUB_SOURCE,
        action,
        uuid::Uuid::new_v4().to_string(),
        jiff::Timestamp::now(),
    ) {
        Ok(event) => {
            let delivered = match to {
                Delivery::Everyone => outbox.send(&event),
                Delivery::MqttOnly => {
                    outbox.send_to_mqtt(&event);
                    0
                }
            };
            tracing::debug!(
                cluster,
                work = name,
                action = action.as_str(),
                delivered,
                "spec event sent"
            );
        }
        Err(err) => {
            tracing::warn!(cluster, work = name, %err, "work not sent to its agents");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(generation: i64, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            namespace: Some("cluster1".into()),
            uid: Some("uid-1".into()),
            generation: Some(generation),
            resource_version: Some("1".into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_new_work_is_created_and_spec_label_and_annotation_changes_are_updates() {
        let first = meta(1, &[]);
        assert_eq!(spec_change(None, &first), Some(EventAction::CreateRequest));
        assert_eq!(
            spec_change(Some(&first), &meta(2, &[])),
            Some(EventAction::UpdateRequest)
        );
        assert_eq!(
            spec_change(Some(&first), &meta(1, &[("app", "web")])),
            Some(EventAction::UpdateRequest)
        );
        let annotated = ObjectMeta {
            annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
            ..first.clone()
        };
        assert_eq!(
            spec_change(Some(&first), &annotated),
            Some(EventAction::UpdateRequest)
        );
    }

    #[test]
    fn status_and_finalizer_writes_send_nothing() {
        let first = meta(1, &[]);
        let written = ObjectMeta {
            resource_version: Some("2".into()),
            finalizers: Some(vec!["x".into()]),
            // No labels and an empty map are the same thing.
            labels: Some(BTreeMap::new()),
            ..first.clone()
        };
        assert_eq!(spec_change(Some(&first), &written), None);
    }

    #[test]
    fn the_start_of_deletion_is_sent_once() {
        let first = meta(1, &[]);
        let deleting = ObjectMeta {
            deletion_timestamp: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
            ..first.clone()
        };
        assert_eq!(
            spec_change(Some(&first), &deleting),
            Some(EventAction::UpdateRequest)
        );
        let finalizer_removed = ObjectMeta {
            finalizers: None,
            resource_version: Some("3".into()),
            ..deleting.clone()
        };
        assert_eq!(spec_change(Some(&deleting), &finalizer_removed), None);
    }
}
