//! Resync (sdk-go's spec and status resync): the request payloads, and the pure decisions
//! of who resends what.
//!
//! - Spec resync: after every (re)subscribe the agent sends the versions it holds; the hub
//!   resends what is newer or deleting, and synthesizes deletions for what it no longer has —
//!   with `resourceversion`, which the Go work agent requires (the Go SDK broker omits it).
//! - Status resync: a source sends the status hashes it holds; the agent resends what differs.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::{CloudEvent, ExtensionValue, SPEC_VERSION, extension};
use crate::event_type::{DataType, EventAction, EventType, SubResource};

/// `*.spec.resync_request` data: the versions an agent holds. Empty means "send everything".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceVersionList {
    #[serde(
        rename = "resourceVersions",
        default,
        deserialize_with = "crate::payload::null_as_empty"
    )]
    pub resource_versions: Vec<ResourceVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceVersion {
    #[serde(rename = "resourceID")]
    pub resource_id: String,
    #[serde(rename = "resourceVersion")]
    pub resource_version: i64,
}

/// `*.status.resync_request` data: the status hashes a source holds. Empty means "send every
/// status".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusHashList {
    #[serde(
        rename = "statusHashes",
        default,
        deserialize_with = "crate::payload::null_as_empty"
    )]
    pub status_hashes: Vec<StatusHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusHash {
    #[serde(rename = "resourceID")]
    pub resource_id: String,
    #[serde(rename = "statusHash")]
    pub status_hash: String,
}

/// What the hub knows of one resource when answering a spec resync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubResource {
    pub resource_id: String,
    /// Generation (manifestbundles) or resourceVersion (registration types).
    pub version: i64,
    pub deleting: bool,
}

/// One step of the hub's answer to a spec resync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecResyncStep {
    /// Send this resource as a `spec.resync_response`.
    Send { resource_id: String },
    /// The agent holds a resource the hub does not: tell it to delete it.
    Delete {
        resource_id: String,
        resource_version: i64,
    },
}

/// The hub's answer to an agent's versions, as OCM's broker computes it: every deleting
/// resource, every resource whose version is 0 or newer than the agent's, and a deletion for
/// every resource the agent holds and the hub does not. Hub order first, then agent order.
pub fn plan_spec_resync(hub: &[HubResource], agent: &ResourceVersionList) -> Vec<SpecResyncStep> {
    let held: HashMap<&str, i64> = agent
        .resource_versions
        .iter()
        .map(|v| (v.resource_id.as_str(), v.resource_version))
        .collect();
    let known: HashSet<&str> = hub.iter().map(|r| r.resource_id.as_str()).collect();
    let sends = hub.iter().filter(|r| {
        r.deleting
            || r.version == 0
            || held
                .get(r.resource_id.as_str())
                .is_none_or(|v| r.version > *v)
    });
    let deletes = agent
        .resource_versions
        .iter()
        .filter(|v| !known.contains(v.resource_id.as_str()));
    sends
        .map(|r| SpecResyncStep::Send {
            resource_id: r.resource_id.clone(),
        })
        .chain(deletes.map(|v| SpecResyncStep::Delete {
            resource_id: v.resource_id.clone(),
            resource_version: v.resource_version,
        }))
        .collect()
}

/// The agent's answer to a source's status hashes: everything when the list is empty, else only
/// listed resources whose hash differs (unlisted ones wait for the source to delete them).
pub fn plan_status_resync<'a>(
    held: impl IntoIterator<Item = (&'a str, &'a str)>,
    source: &StatusHashList,
) -> Vec<&'a str> {
    let listed: HashMap<&str, &str> = source
        .status_hashes
        .iter()
        .map(|h| (h.resource_id.as_str(), h.status_hash.as_str()))
        .collect();
    held.into_iter()
        .filter(|(id, hash)| {
            listed.is_empty() || listed.get(id).is_some_and(|listed| listed != hash)
        })
        .map(|(id, _)| id)
        .collect()
}

/// The `resourceversion` extension as the data type carries it: a 32-bit integer for
/// manifestbundles, a decimal string for every registration type.
pub fn resource_version_value(
    data_type: &DataType,
    version: i64,
) -> Result<ExtensionValue, ResyncError> {
    if *data_type == DataType::manifest_bundles() {
        let narrow = i32::try_from(version).map_err(|_| ResyncError::VersionOutOfRange(version))?;
        Ok(ExtensionValue::Integer(narrow))
    } else {
        Ok(ExtensionValue::String(version.to_string()))
    }
}

/// An agent's `spec.resync_request` for `data_type`: the versions it holds (an empty list asks
/// for everything), from `source` for `cluster`, with `originalsource` empty (all sources).
pub fn spec_resync_request(
    data_type: &DataType,
    source: &str,
    cluster: &str,
    held: &ResourceVersionList,
    id: String,
    now: Timestamp,
) -> CloudEvent {
    let mut event = resync_request(
        data_type.event_type(SubResource::Spec, EventAction::ResyncRequest),
        source,
        cluster,
        // Two plain fields: serialising them cannot fail.
        serde_json::to_vec(held).unwrap_or_default(),
        (id, now),
    );
    event.extensions.insert(
        extension::ORIGINAL_SOURCE.to_owned(),
        ExtensionValue::String(String::new()),
    );
    event
}

/// A source's `status.resync_request` for `data_type` to `cluster`: the status hashes it holds
/// (§5.2; an empty list asks for every status). Sent after the source (re)subscribes to a broker
/// that kept nothing for it (MQTT with clean start).
pub fn status_resync_request(
    data_type: &DataType,
    source: &str,
    cluster: &str,
    held: &StatusHashList,
    id: String,
    now: Timestamp,
) -> CloudEvent {
    resync_request(
        data_type.event_type(SubResource::Status, EventAction::ResyncRequest),
        source,
        cluster,
        // Plain string fields: serialising them cannot fail.
        serde_json::to_vec(held).unwrap_or_default(),
        (id, now),
    )
}

fn resync_request(
    event_type: EventType,
    source: &str,
    cluster: &str,
    data: Vec<u8>,
    (id, now): (String, Timestamp),
) -> CloudEvent {
    let mut event = CloudEvent {
        id,
        source: source.to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        event_type: event_type.to_string(),
        time: Some(now),
        data_content_type: Some(crate::event::JSON.to_owned()),
        data: Some(data),
        ..CloudEvent::default()
    };
    event.extensions.insert(
        extension::CLUSTER_NAME.to_owned(),
        ExtensionValue::String(cluster.to_owned()),
    );
    event
}

/// The deletion a hub synthesizes for a resource only the agent still holds: a data-less
/// `spec.resync_response` carrying `deletiontimestamp` and `resourceversion`.
pub fn synthesized_delete(
    data_type: &DataType,
    source: &str,
    cluster: &str,
    resource_id: &str,
    resource_version: i64,
    id: String,
    now: Timestamp,
) -> Result<CloudEvent, ResyncError> {
    let event_type = data_type.event_type(SubResource::Spec, EventAction::ResyncResponse);
    let mut event = CloudEvent {
        id,
        source: source.to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        event_type: event_type.to_string(),
        time: Some(now),
        ..CloudEvent::default()
    };
    let string = |s: &str| ExtensionValue::String(s.to_owned());
    event.extensions.extend([
        (extension::RESOURCE_ID.to_owned(), string(resource_id)),
        (extension::CLUSTER_NAME.to_owned(), string(cluster)),
        (extension::ORIGINAL_SOURCE.to_owned(), string("")),
        (
            extension::DELETION_TIMESTAMP.to_owned(),
            ExtensionValue::Timestamp(now),
        ),
        (
            extension::RESOURCE_VERSION.to_owned(),
            resource_version_value(data_type, resource_version)?,
        ),
    ]);
    Ok(event)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResyncError {
    #[error("resource version {0} does not fit the 32-bit resourceversion of manifestbundles")]
    VersionOutOfRange(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(id: &str, version: i64, deleting: bool) -> HubResource {
        HubResource {
            resource_id: id.into(),
            version,
            deleting,
        }
    }

    fn held(pairs: &[(&str, i64)]) -> ResourceVersionList {
        ResourceVersionList {
            resource_versions: pairs
                .iter()
                .map(|(id, v)| ResourceVersion {
                    resource_id: (*id).into(),
                    resource_version: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn payloads_use_ocms_json_names_and_accept_gos_null_lists() {
        let versions = held(&[("a", 3)]);
        assert_eq!(
            serde_json::to_string(&versions).unwrap(),
            r#"{"resourceVersions":[{"resourceID":"a","resourceVersion":3}]}"#
        );
        let hashes = StatusHashList {
            status_hashes: vec![StatusHash {
                resource_id: "a".into(),
                status_hash: "ff".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&hashes).unwrap(),
            r#"{"statusHashes":[{"resourceID":"a","statusHash":"ff"}]}"#
        );
        let from_go: ResourceVersionList =
            serde_json::from_str(r#"{"resourceVersions":null}"#).unwrap();
        assert!(from_go.resource_versions.is_empty());
        let empty: StatusHashList = serde_json::from_str("{}").unwrap();
        assert!(empty.status_hashes.is_empty());
    }

    #[test]
    fn spec_resync_sends_newer_deleting_and_unversioned_and_deletes_what_the_hub_lacks() {
        let hub_state = [
            hub("same", 2, false),
            hub("newer", 5, false),
            hub("older-at-hub", 1, false),
            hub("unversioned", 0, false),
            hub("deleting", 2, true),
            hub("new-to-agent", 1, false),
        ];
        let agent = held(&[
            ("same", 2),
            ("newer", 4),
            ("older-at-hub", 3),
            ("unversioned", 9),
            ("deleting", 2),
            ("gone", 7),
        ]);
        let send = |id: &str| SpecResyncStep::Send {
            resource_id: id.into(),
        };
        assert_eq!(
            plan_spec_resync(&hub_state, &agent),
            [
                send("newer"),
                send("unversioned"),
                send("deleting"),
                send("new-to-agent"),
                SpecResyncStep::Delete {
                    resource_id: "gone".into(),
                    resource_version: 7
                },
            ]
        );
    }

    #[test]
    fn an_agent_holding_nothing_gets_everything() {
        let hub_state = [hub("a", 1, false), hub("b", 2, false)];
        assert_eq!(
            plan_spec_resync(&hub_state, &ResourceVersionList::default()).len(),
            2
        );
    }

    #[test]
    fn status_resync_resends_only_listed_resources_whose_hash_changed() {
        let agent = [("changed", "new"), ("same", "h"), ("unlisted", "x")];
        let source = StatusHashList {
            status_hashes: vec![
                StatusHash {
                    resource_id: "changed".into(),
                    status_hash: "old".into(),
                },
                StatusHash {
                    resource_id: "same".into(),
                    status_hash: "h".into(),
                },
            ],
        };
        assert_eq!(plan_status_resync(agent, &source), ["changed"]);
        assert_eq!(
            plan_status_resync(agent, &StatusHashList::default()),
            ["changed", "same", "unlisted"]
        );
    }

    #[test]
    fn an_agents_spec_resync_request_asks_all_sources_with_its_versions() {
        let request = spec_resync_request(
            &DataType::leases(),
            "cluster1",
            "cluster1",
            &held(&[("uid-1", 7)]),
            "e1".into(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            request.event_type,
            "coordination.k8s.io.v1.leases.spec.resync_request"
        );
        assert_eq!(request.cluster_name(), Some("cluster1"));
        assert_eq!(request.extension_str(extension::ORIGINAL_SOURCE), Some(""));
        assert_eq!(
            request.data.as_deref(),
            Some(&br#"{"resourceVersions":[{"resourceID":"uid-1","resourceVersion":7}]}"#[..])
        );
        let everything = spec_resync_request(
            &DataType::leases(),
            "cluster1",
            "cluster1",
            &ResourceVersionList::default(),
            "e2".into(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            everything.data.as_deref(),
            Some(&br#"{"resourceVersions":[]}"#[..])
        );
    }

    #[test]
    fn synthesized_delete_carries_resourceversion_typed_by_data_type() {
        let now: Timestamp = "2025-12-16T06:05:00Z".parse().unwrap();
        let work = synthesized_delete(
            &DataType::manifest_bundles(),
            "kube",
            "cluster1",
            "uid-1",
            7,
            "e".into(),
            now,
        )
        .unwrap();
        assert_eq!(
            work.event_type,
            "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.resync_response"
        );
        assert_eq!(
            work.extensions["resourceversion"],
            ExtensionValue::Integer(7)
        );
        assert_eq!(work.extension_timestamp("deletiontimestamp"), Some(now));
        assert_eq!(work.extension_str("originalsource"), Some(""));
        assert_eq!(work.cluster_name(), Some("cluster1"));
        assert_eq!((work.data, work.data_content_type), (None, None));

        let lease = synthesized_delete(
            &DataType::leases(),
            "kube",
            "cluster1",
            "uid-2",
            12345,
            "f".into(),
            now,
        )
        .unwrap();
        assert_eq!(
            lease.extensions["resourceversion"],
            ExtensionValue::String("12345".into())
        );

        let too_big = synthesized_delete(
            &DataType::manifest_bundles(),
            "kube",
            "c",
            "u",
            1 << 40,
            "g".into(),
            now,
        );
        assert_eq!(
            too_big.unwrap_err(),
            ResyncError::VersionOutOfRange(1 << 40)
        );
    }
}
