//! ManifestWorks on the wire (sdk-go's work clients): the four halves of OCM's two
//! manifestbundle codecs.
//!
//! - Hub → agent, [`encode_spec`]: `source` (OCM's hub: `kube`), `resourceid` = UID,
//!   `resourceversion` = generation (a 32-bit integer), `clustername` = namespace,
//!   `originalsource` = "", `metadata` = the ObjectMeta as JSON (without managed fields),
//!   `logtracing` = `{}`, and the ManifestBundle as data; a work being deleted travels as
//!   `deletiontimestamp` with no data.
//! - Agent, [`decode_spec`]: the ManifestWork the agent keeps — UID, name (from the metadata, else
//!   the resource ID), namespace = cluster, generation = resourceversion, no resourceVersion, the
//!   data-type annotation and original-source label, and OCM's finalizer when it is being
//!   deleted. Manifests are not validated here: what an invalid manifest means (the whole work
//!   refused, or that manifest failing) is the agent's decision (`ocm_api::work::validation`).
//! - Agent → hub, [`encode_status`]: `source` = the agent's ID, `originalsource` from the label,
//!   `sequenceid`, `statushash` of the status, `metadata`, data `{conditions, resourceStatus}`.
//! - Hub, [`decode_status`]: the work as OCM's source codec restores it (UID, name,
//!   resourceVersion = resourceversion, the `sequenceid` annotation, status — and the spec when a
//!   relay added the bundle), with what the hub acts on alongside: the generation the status is
//!   for, the sequence ID, the status hash, whether it reports `Deleted=True`.
//!
//! Receivers are as lenient as Go's (integers as decimal strings, times as RFC 3339 strings) and
//! as strict: an extension Go requires is required, and `metadata` must be ObjectMeta JSON.

use std::collections::BTreeMap;

use jiff::Timestamp;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use ocm_api::work::v1::{MANIFEST_WORK_FINALIZER, ManifestWork, ManifestWorkSpec};

use crate::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION, extension};
use crate::event_type::{DataType, EventAction, EventType, SubResource};
use crate::payload::{self, ManifestBundle, ManifestBundleStatus, PayloadError};
use crate::sequence_id::SequenceId;
use crate::status_hash::status_hash;

/// On a work an agent decoded: the data type it came as.
pub const DATA_TYPE_ANNOTATION: &str = "cloudevents.open-cluster-management.io/datatype";
/// On a work an agent decoded: the `source` of the spec event, which its status events name as
/// `originalsource`.
pub const ORIGINAL_SOURCE_LABEL: &str = "cloudevents.open-cluster-management.io/originalsource";
/// On a work a source decoded from a status event: the event's `sequenceid`.
pub const SEQUENCE_ID_ANNOTATION: &str = "cloudevents.open-cluster-management.io/sequenceid";
/// The `logtracing` OCM's codecs send when there is nothing to trace.
pub const EMPTY_LOG_TRACING: &str = "{}";

/// The hub's spec event for `work`: `<manifestbundles>.spec.<action>` from `source`, with event
/// ID `id` at time `now`.
pub fn encode_spec(
    work: &ManifestWork,
    source: &str,
    action: EventAction,
    id: String,
    now: Timestamp,
) -> Result<CloudEvent, WorkCodecError> {
    let meta = &work.metadata;
    let uid = uid_of(meta)?;
    let version = spec_version(meta)?;
    let mut event = new_event(SubResource::Spec, action, source, id, now);
    let string = |s: &str| ExtensionValue::String(s.to_owned());
    event.extensions.extend([
        (extension::RESOURCE_ID.to_owned(), string(uid)),
        (
            extension::RESOURCE_VERSION.to_owned(),
            ExtensionValue::Integer(version),
        ),
        (
            extension::CLUSTER_NAME.to_owned(),
            string(meta.namespace.as_deref().unwrap_or_default()),
        ),
        (extension::ORIGINAL_SOURCE.to_owned(), string("")),
        (
            extension::METADATA.to_owned(),
            string(&metadata_json(meta)?),
        ),
        (extension::LOG_TRACING.to_owned(), string(EMPTY_LOG_TRACING)),
    ]);
    if let Some(deleted) = &meta.deletion_timestamp {
        event.extensions.insert(
            extension::DELETION_TIMESTAMP.to_owned(),
            ExtensionValue::Timestamp(deleted.0),
        );
        return Ok(event);
    }
    event.data_content_type = Some(JSON.to_owned());
    event.data = Some(ManifestBundle::spec_json(&work.spec));
    Ok(event)
}

/// The work an agent keeps for a hub's spec event (what OCM's agent codec
/// decodes).
pub fn decode_spec(event: &CloudEvent) -> Result<ManifestWork, WorkCodecError> {
    let event_type = manifest_bundle_type(event, SubResource::Spec)?;
    let resource_id = required_str(event, extension::RESOURCE_ID, "")?.to_owned();
    let generation = required_integer(event, extension::RESOURCE_VERSION, &resource_id)?;
    let cluster = required_str(event, extension::CLUSTER_NAME, &resource_id)?.to_owned();
    let mut meta = metadata_of(event, &resource_id)?;
    meta.uid = Some(resource_id.clone());
    if meta.name.as_deref().is_none_or(str::is_empty) {
        meta.name = Some(resource_id.clone());
    }
    meta.namespace = Some(cluster);
    meta.resource_version = None;
    meta.generation = Some(generation);
    meta.annotations.get_or_insert_with(BTreeMap::new).insert(
        DATA_TYPE_ANNOTATION.to_owned(),
        event_type.data_type.to_string(),
    );
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(ORIGINAL_SOURCE_LABEL.to_owned(), event.source.clone());
    if let Some(deleted) = deletion_of(event, &resource_id)? {
        // An agent that restarted has lost the finalizer; it is put back so the work is
        // cleaned up before it is forgotten.
        meta.finalizers = Some(vec![MANIFEST_WORK_FINALIZER.to_owned()]);
        meta.deletion_timestamp = Some(Time(deleted));
        return Ok(ManifestWork {
            metadata: meta,
            spec: ManifestWorkSpec::default(),
            status: None,
        });
    }
    let data = data_of(event, &resource_id)?;
    let spec = ManifestBundle::spec_from_json(data).map_err(|source| WorkCodecError::Payload {
        resource_id: resource_id.clone(),
        source,
    })?;
    Ok(ManifestWork {
        metadata: meta,
        spec,
        status: None,
    })
}

/// An agent's status event for `work`: `<manifestbundles>.status.<action>` from the agent ID
/// `source`, numbered `sequence_id`, with event ID `id` at time `now`. The work must carry the
/// original-source label [`decode_spec`] put on it.
pub fn encode_status(
    work: &ManifestWork,
    source: &str,
    action: EventAction,
    sequence_id: SequenceId,
    id: String,
    now: Timestamp,
) -> Result<CloudEvent, WorkCodecError> {
    let meta = &work.metadata;
    let uid = uid_of(meta)?;
    let original_source = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(ORIGINAL_SOURCE_LABEL))
        .ok_or_else(|| WorkCodecError::NoOriginalSource {
            work: name_of(meta),
        })?;
    let generation = meta.generation.unwrap_or_default();
    let version = i32::try_from(generation).map_err(|_| WorkCodecError::VersionOutOfRange {
        work: name_of(meta),
        version: generation,
    })?;
    let status = work.status.clone().unwrap_or_default();
    let hash = status_hash(
        &serde_json::to_value(&status).map_err(|e| WorkCodecError::Json {
            work: name_of(meta),
            detail: e.to_string(),
        })?,
    );
    let mut event = new_event(SubResource::Status, action, source, id, now);
    let string = |s: &str| ExtensionValue::String(s.to_owned());
    event.extensions.extend([
        (extension::RESOURCE_ID.to_owned(), string(uid)),
        (
            extension::RESOURCE_VERSION.to_owned(),
            ExtensionValue::Integer(version),
        ),
        (
            extension::CLUSTER_NAME.to_owned(),
            string(meta.namespace.as_deref().unwrap_or_default()),
        ),
        (
            extension::ORIGINAL_SOURCE.to_owned(),
            string(original_source),
        ),
        (
            extension::SEQUENCE_ID.to_owned(),
            string(&sequence_id.to_string()),
        ),
        (extension::STATUS_HASH.to_owned(), string(&hash)),
        (
            extension::METADATA.to_owned(),
            string(&metadata_json(meta)?),
        ),
        (extension::LOG_TRACING.to_owned(), string(EMPTY_LOG_TRACING)),
    ]);
    event.data_content_type = Some(JSON.to_owned());
    event.data = Some(ManifestBundleStatus::status_json(&status));
    Ok(event)
}

/// A status event as the hub reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusEvent {
    /// The work as OCM's source codec restores it: UID, name (from the metadata, else the
    /// resource ID), namespace = `clustername`, resourceVersion = `resourceversion`, the
    /// `sequenceid` annotation, the status, and the spec if the bundle came along.
    pub work: ManifestWork,
    /// The generation the status was reported for (`resourceversion`).
    pub generation: i64,
    /// `sequenceid` exactly as received.
    pub sequence_id: String,
    /// `statushash` exactly as received, when sent.
    pub status_hash: Option<String>,
}

impl StatusEvent {
    pub fn resource_id(&self) -> &str {
        self.work.metadata.uid.as_deref().unwrap_or_default()
    }

    pub fn cluster(&self) -> &str {
        self.work.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.work.metadata.name.as_deref().unwrap_or_default()
    }

    /// `sequenceid` as a snowflake ID, when it is one.
    pub fn sequence(&self) -> Option<SequenceId> {
        self.sequence_id.parse().ok()
    }

    /// Whether the agent reports the work's resources deleted (`Deleted=True`): the hub may
    /// drop its finalizer (§5.4).
    pub fn is_deleted(&self) -> bool {
        self.work
            .status
            .as_ref()
            .is_some_and(payload::status_is_deleted)
    }
}

/// Reads an agent's status event as a hub does (OCM's source codec, plus `clustername`, which
/// OCM's hub service requires too).
pub fn decode_status(event: &CloudEvent) -> Result<StatusEvent, WorkCodecError> {
    manifest_bundle_type(event, SubResource::Status)?;
    let resource_id = required_str(event, extension::RESOURCE_ID, "")?.to_owned();
    let generation = required_integer(event, extension::RESOURCE_VERSION, &resource_id)?;
    let sequence_id = required_str(event, extension::SEQUENCE_ID, &resource_id)?.to_owned();
    let cluster = required_str(event, extension::CLUSTER_NAME, &resource_id)?.to_owned();
    let status_hash = match event.extensions.get(extension::STATUS_HASH) {
        None => None,
        Some(_) => Some(
            event
                .extension_str(extension::STATUS_HASH)
                .ok_or(WorkCodecError::InvalidExtension {
                    resource_id: resource_id.clone(),
                    name: extension::STATUS_HASH,
                    expected: "a string",
                })?
                .to_owned(),
        ),
    };
    let mut meta = metadata_of(event, &resource_id)?;
    meta.uid = Some(resource_id.clone());
    if meta.name.as_deref().is_none_or(str::is_empty) {
        meta.name = Some(resource_id.clone());
    }
    meta.namespace = Some(cluster);
    meta.resource_version = Some(generation.to_string());
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SEQUENCE_ID_ANNOTATION.to_owned(), sequence_id.clone());
    let data = data_of(event, &resource_id)?;
    let (status, spec) =
        ManifestBundleStatus::status_from_json(data).map_err(|source| WorkCodecError::Payload {
            resource_id: resource_id.clone(),
            source,
        })?;
    Ok(StatusEvent {
        work: ManifestWork {
            metadata: meta,
            spec: spec.unwrap_or_default(),
            status: Some(status),
        },
        generation,
        sequence_id,
        status_hash,
    })
}

fn new_event(
    sub_resource: SubResource,
    action: EventAction,
    source: &str,
    id: String,
    now: Timestamp,
) -> CloudEvent {
    CloudEvent {
        id,
        source: source.to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        event_type: DataType::manifest_bundles()
            .event_type(sub_resource, action)
            .to_string(),
        time: Some(now),
        ..CloudEvent::default()
    }
}

fn name_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn uid_of(meta: &ObjectMeta) -> Result<&str, WorkCodecError> {
    meta.uid
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| WorkCodecError::NoUid {
            work: name_of(meta),
        })
}

/// The version a hub sends: the generation, or (as OCM's source codec falls back) the decimal
/// resourceVersion of an object without one.
fn spec_version(meta: &ObjectMeta) -> Result<i32, WorkCodecError> {
    let version = match meta.generation.filter(|g| *g != 0) {
        Some(generation) => generation,
        None => meta
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| WorkCodecError::NoVersion {
                work: name_of(meta),
                resource_version: meta.resource_version.clone(),
            })?,
    };
    i32::try_from(version).map_err(|_| WorkCodecError::VersionOutOfRange {
        work: name_of(meta),
        version,
    })
}

/// The `metadata` extension: the ObjectMeta as JSON, without managed fields (bookkeeping of the
/// hub's apiserver that no agent reads).
fn metadata_json(meta: &ObjectMeta) -> Result<String, WorkCodecError> {
    let trimmed = ObjectMeta {
        managed_fields: None,
        ..meta.clone()
    };
    serde_json::to_string(&trimmed).map_err(|e| WorkCodecError::Json {
        work: name_of(meta),
        detail: e.to_string(),
    })
}

fn manifest_bundle_type(
    event: &CloudEvent,
    sub_resource: SubResource,
) -> Result<EventType, WorkCodecError> {
    let bad = |detail: String| WorkCodecError::EventType {
        event_type: event.event_type.clone(),
        detail,
    };
    let event_type: EventType = event.event_type.parse().map_err(|e| bad(format!("{e}")))?;
    if event_type.data_type != DataType::manifest_bundles() {
        return Err(bad(format!(
            "not of data type {}",
            DataType::manifest_bundles()
        )));
    }
    if event_type.sub_resource != sub_resource {
        return Err(bad(format!("not a {} event", sub_resource.as_str())));
    }
    Ok(event_type)
}

fn required_str<'e>(
    event: &'e CloudEvent,
    name: &'static str,
    resource_id: &str,
) -> Result<&'e str, WorkCodecError> {
    match event.extension_str(name) {
        Some(value) => Ok(value),
        None => Err(missing_or_invalid(event, name, resource_id, "a string")),
    }
}

fn required_integer(
    event: &CloudEvent,
    name: &'static str,
    resource_id: &str,
) -> Result<i64, WorkCodecError> {
    match event.extension_integer(name) {
        Some(value) => Ok(value),
        None => Err(missing_or_invalid(event, name, resource_id, "an integer")),
    }
}

fn missing_or_invalid(
    event: &CloudEvent,
    name: &'static str,
    resource_id: &str,
    expected: &'static str,
) -> WorkCodecError {
    let resource_id = resource_id.to_owned();
    if event.extensions.contains_key(name) {
        WorkCodecError::InvalidExtension {
            resource_id,
            name,
            expected,
        }
    } else {
        WorkCodecError::MissingExtension { resource_id, name }
    }
}

/// The `metadata` extension as ObjectMeta; empty when absent.
fn metadata_of(event: &CloudEvent, resource_id: &str) -> Result<ObjectMeta, WorkCodecError> {
    if !event.extensions.contains_key(extension::METADATA) {
        return Ok(ObjectMeta::default());
    }
    let json = required_str(event, extension::METADATA, resource_id)?;
    serde_json::from_str(json).map_err(|e| WorkCodecError::Metadata {
        resource_id: resource_id.to_owned(),
        detail: e.to_string(),
    })
}

fn deletion_of(event: &CloudEvent, resource_id: &str) -> Result<Option<Timestamp>, WorkCodecError> {
    if !event.extensions.contains_key(extension::DELETION_TIMESTAMP) {
        return Ok(None);
    }
    event
        .extension_timestamp(extension::DELETION_TIMESTAMP)
        .map(Some)
        .ok_or_else(|| WorkCodecError::InvalidExtension {
            resource_id: resource_id.to_owned(),
            name: extension::DELETION_TIMESTAMP,
            expected: "a timestamp",
        })
}

fn data_of<'e>(event: &'e CloudEvent, resource_id: &str) -> Result<&'e [u8], WorkCodecError> {
    event
        .data
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| WorkCodecError::NoData {
            resource_id: resource_id.to_owned(),
        })
}

/// A work that cannot be put on the wire, or an event that is not a work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkCodecError {
    #[error("event type {event_type:?}: {detail}")]
    EventType { event_type: String, detail: String },
    #[error("ManifestWork {work}: no metadata.uid to send as resourceid")]
    NoUid { work: String },
    #[error(
        "ManifestWork {work}: no generation and no decimal resourceVersion (found {resource_version:?}) to send as resourceversion"
    )]
    NoVersion {
        work: String,
        resource_version: Option<String>,
    },
    #[error(
        "ManifestWork {work}: version {version} does not fit the 32-bit resourceversion of manifestbundles"
    )]
    VersionOutOfRange { work: String, version: i64 },
    #[error(
        "ManifestWork {work}: no label {ORIGINAL_SOURCE_LABEL}, so its status cannot name the source it answers"
    )]
    NoOriginalSource { work: String },
    #[error("ManifestWork {work}: {detail}")]
    Json { work: String, detail: String },
    #[error("manifestbundle event of resource {resource_id:?}: no {name} extension")]
    MissingExtension {
        resource_id: String,
        name: &'static str,
    },
    #[error(
        "manifestbundle event of resource {resource_id:?}: the {name} extension is not {expected}"
    )]
    InvalidExtension {
        resource_id: String,
        name: &'static str,
        expected: &'static str,
    },
    #[error(
        "manifestbundle event of resource {resource_id:?}: the metadata extension is not ObjectMeta JSON: {detail}"
    )]
    Metadata { resource_id: String, detail: String },
    #[error("manifestbundle event of resource {resource_id:?}: no data and no deletiontimestamp")]
    NoData { resource_id: String },
    #[error("manifestbundle event of resource {resource_id:?}: {source}")]
    Payload {
        resource_id: String,
        #[source]
        source: PayloadError,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ocm_api::condition::{Condition, ConditionStatus};
    use ocm_api::work::v1::{
        DeleteOption, DeletePropagationPolicy, ExecutorSubjectType, Manifest, ManifestCondition,
        ManifestResourceMeta, ManifestResourceStatus, ManifestWorkExecutor,
        ManifestWorkExecutorSubject, ManifestWorkStatus, ManifestWorkSubjectServiceAccount,
        ManifestsTemplate,
    };
    use ocm_proto::CloudEvent as ProtoEvent;
    use ocm_proto::v1::cloud_event::Data;
    use ocm_proto::v1::cloud_event_attribute_value::Attr;

    use super::*;
    use crate::grpc_binding;

    fn time(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn string(s: &str) -> ocm_proto::CloudEventAttributeValue {
        ocm_proto::CloudEventAttributeValue {
            attr: Some(Attr::CeString(s.to_owned())),
        }
    }

    fn integer(i: i32) -> ocm_proto::CloudEventAttributeValue {
        ocm_proto::CloudEventAttributeValue {
            attr: Some(Attr::CeInteger(i)),
        }
    }

    fn stamp(seconds: i64, nanos: i32) -> ocm_proto::CloudEventAttributeValue {
        ocm_proto::CloudEventAttributeValue {
            attr: Some(Attr::CeTimestamp(prost_types::Timestamp { seconds, nanos })),
        }
    }

    /// A hub work: one ConfigMap, orphaned on delete, run as a service account.
    fn work() -> ManifestWork {
        ManifestWork {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("cluster1".into()),
                uid: Some("55c61e54-a3f6-563d-9fec-b1fe297bdfdb".into()),
                resource_version: Some("4711".into()),
                generation: Some(3),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            spec: ManifestWorkSpec {
                workload: ManifestsTemplate {
                    manifests: vec![Manifest(serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}
                    }))],
                },
                delete_option: Some(DeleteOption {
                    propagation_policy: DeletePropagationPolicy::Orphan,
                    ..DeleteOption::default()
                }),
                manifest_configs: Vec::new(),
                executor: Some(ManifestWorkExecutor {
                    subject: Some(ManifestWorkExecutorSubject {
                        r#type: ExecutorSubjectType::ServiceAccount,
                        service_account: Some(ManifestWorkSubjectServiceAccount {
                            namespace: "ns".into(),
                            name: "sa".into(),
                        }),
                    }),
                }),
            },
            status: None,
        }
    }

    fn hub_event(work: &ManifestWork) -> CloudEvent {
        encode_spec(
            work,
            "kube",
            EventAction::CreateRequest,
            "e1".into(),
            time("2025-12-16T06:00:17.5Z"),
        )
        .unwrap()
    }

    /// Through the gRPC wire and back, as the receiving side sees it.
    fn over_the_wire(event: &CloudEvent) -> CloudEvent {
        grpc_binding::decode(grpc_binding::encode(event)).unwrap()
    }

    #[test]
    fn a_hub_spec_event_is_what_ocms_source_codec_writes() {
        let wire = grpc_binding::encode(&hub_event(&work()));
        assert_eq!(wire.source, "kube");
        assert_eq!(
            wire.r#type,
            "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
        );
        let metadata = wire.attributes["ce-metadata"].clone();
        let mut attributes = wire.attributes.clone();
        attributes.remove("ce-metadata");
        assert_eq!(
            attributes,
            BTreeMap::from([
                ("contenttype".to_owned(), string("application/json")),
                ("ce-time".to_owned(), stamp(1_765_864_817, 500_000_000)),
                (
                    "ce-resourceid".to_owned(),
                    string("55c61e54-a3f6-563d-9fec-b1fe297bdfdb")
                ),
                ("ce-resourceversion".to_owned(), integer(3)),
                ("ce-clustername".to_owned(), string("cluster1")),
                ("ce-originalsource".to_owned(), string("")),
                ("ce-logtracing".to_owned(), string("{}")),
            ])
        );
        let Some(Attr::CeString(metadata)) = metadata.attr else {
            panic!("metadata is a string: {metadata:?}")
        };
        let metadata: ObjectMeta = serde_json::from_str(&metadata).unwrap();
        assert_eq!(metadata, work().metadata);
        assert_eq!(
            wire.data,
            Some(Data::BinaryData(
                br#"{"manifests":[{"apiVersion":"v1","data":{"k":"v"},"kind":"ConfigMap","metadata":{"name":"c","namespace":"default"}}],"deleteOption":{"propagationPolicy":"Orphan"},"executer":{"subject":{"type":"ServiceAccount","serviceAccount":{"namespace":"ns","name":"sa"}}}}"#
                    .to_vec()
            ))
        );
    }

    #[test]
    fn the_hub_sends_no_managed_fields_and_falls_back_to_the_resource_version() {
        let mut unversioned = work();
        unversioned.metadata.generation = None;
        unversioned.metadata.managed_fields = Some(vec![Default::default()]);
        let event = hub_event(&unversioned);
        assert_eq!(
            event.extensions[extension::RESOURCE_VERSION],
            ExtensionValue::Integer(4711)
        );
        assert!(
            !event
                .extension_str(extension::METADATA)
                .unwrap()
                .contains("managedFields")
        );
        unversioned.metadata.resource_version = Some("opaque".into());
        assert!(matches!(
            encode_spec(
                &unversioned,
                "kube",
                EventAction::UpdateRequest,
                "e".into(),
                Timestamp::UNIX_EPOCH
            ),
            Err(WorkCodecError::NoVersion { .. })
        ));
        let mut huge = work();
        huge.metadata.generation = Some(1 << 31);
        let err = encode_spec(
            &huge,
            "kube",
            EventAction::UpdateRequest,
            "e".into(),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ManifestWork cluster1/web: version 2147483648 does not fit the 32-bit resourceversion of manifestbundles"
        );
        let mut anonymous = work();
        anonymous.metadata.uid = None;
        assert!(matches!(
            encode_spec(
                &anonymous,
                "kube",
                EventAction::UpdateRequest,
                "e".into(),
                Timestamp::UNIX_EPOCH
            ),
            Err(WorkCodecError::NoUid { .. })
        ));
    }

    #[test]
    fn a_deleting_work_travels_as_deletiontimestamp_without_data() {
        let mut deleting = work();
        deleting.metadata.deletion_timestamp = Some(Time(time("2025-12-16T06:05:00Z")));
        let wire = grpc_binding::encode(
            &encode_spec(
                &deleting,
                "kube",
                EventAction::UpdateRequest,
                "e2".into(),
                time("2025-12-16T06:05:01Z"),
            )
            .unwrap(),
        );
        assert_eq!(
            wire.attributes["ce-deletiontimestamp"],
            stamp(1_765_865_100, 0)
        );
        assert_eq!(wire.attributes["ce-resourceversion"], integer(3));
        assert!(!wire.attributes.contains_key("contenttype"));
        assert_eq!(wire.data, None);

        let decoded = decode_spec(&grpc_binding::decode(wire).unwrap()).unwrap();
        assert_eq!(
            decoded.metadata.finalizers,
            Some(vec![MANIFEST_WORK_FINALIZER.to_owned()])
        );
        assert_eq!(
            decoded.metadata.deletion_timestamp,
            Some(Time(time("2025-12-16T06:05:00Z")))
        );
        assert!(decoded.spec.workload.manifests.is_empty());
    }

    #[test]
    fn the_agent_restores_the_work_as_ocms_agent_codec_does() {
        let hub = work();
        let decoded = decode_spec(&over_the_wire(&hub_event(&hub))).unwrap();
        assert_eq!(decoded.spec, hub.spec);
        let meta = &decoded.metadata;
        assert_eq!(meta.uid, hub.metadata.uid);
        assert_eq!(meta.name.as_deref(), Some("web"));
        assert_eq!(meta.namespace.as_deref(), Some("cluster1"));
        assert_eq!(meta.generation, Some(3));
        assert_eq!(meta.resource_version, None);
        assert_eq!(meta.finalizers, None);
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[ORIGINAL_SOURCE_LABEL], "kube");
        assert_eq!(
            meta.annotations.as_ref().unwrap()[DATA_TYPE_ANNOTATION],
            "io.open-cluster-management.works.v1alpha1.manifestbundles"
        );
    }

    #[test]
    fn an_event_without_metadata_is_named_by_its_resource_id() {
        let mut event = hub_event(&work());
        event.extensions.remove(extension::METADATA);
        // Go writes integers as decimal strings over MQTT.
        event.extensions.insert(
            extension::RESOURCE_VERSION.into(),
            ExtensionValue::String("7".into()),
        );
        let decoded = decode_spec(&event).unwrap();
        assert_eq!(
            decoded.metadata.name.as_deref(),
            Some("55c61e54-a3f6-563d-9fec-b1fe297bdfdb")
        );
        assert_eq!(decoded.metadata.generation, Some(7));
    }

    #[test]
    fn the_hubs_synthesized_resync_delete_decodes_but_the_go_brokers_would_not() {
        let ours = crate::resync::synthesized_delete(
            &DataType::manifest_bundles(),
            "kube",
            "cluster1",
            "uid-1",
            4,
            "e".into(),
            time("2025-12-16T06:05:00Z"),
        )
        .unwrap();
        let decoded = decode_spec(&over_the_wire(&ours)).unwrap();
        assert_eq!(decoded.metadata.name.as_deref(), Some("uid-1"));
        assert_eq!(decoded.metadata.generation, Some(4));
        assert!(decoded.metadata.deletion_timestamp.is_some());

        let mut gos = ours;
        gos.extensions.remove(extension::RESOURCE_VERSION);
        assert_eq!(
            decode_spec(&gos).unwrap_err().to_string(),
            "manifestbundle event of resource \"uid-1\": no resourceversion extension"
        );
    }

    #[test]
    fn malformed_spec_events_are_refused_with_the_reason() {
        let event = hub_event(&work());
        let mut bad_meta = event.clone();
        bad_meta.extensions.insert(
            extension::METADATA.into(),
            ExtensionValue::String("{\"name\": 5}".into()),
        );
        assert!(matches!(
            decode_spec(&bad_meta),
            Err(WorkCodecError::Metadata { .. })
        ));
        let mut bad_version = event.clone();
        bad_version.extensions.insert(
            extension::RESOURCE_VERSION.into(),
            ExtensionValue::Boolean(true),
        );
        assert_eq!(
            decode_spec(&bad_version).unwrap_err(),
            WorkCodecError::InvalidExtension {
                resource_id: "55c61e54-a3f6-563d-9fec-b1fe297bdfdb".into(),
                name: extension::RESOURCE_VERSION,
                expected: "an integer",
            }
        );
        let mut no_data = event.clone();
        no_data.data = None;
        assert!(matches!(
            decode_spec(&no_data),
            Err(WorkCodecError::NoData { .. })
        ));
        let mut bad_data = event.clone();
        bad_data.data = Some(b"{\"manifests\": 5}".to_vec());
        assert!(matches!(
            decode_spec(&bad_data),
            Err(WorkCodecError::Payload { .. })
        ));
        let mut status = event;
        status.event_type =
            "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
                .into();
        assert!(matches!(
            decode_spec(&status),
            Err(WorkCodecError::EventType { .. })
        ));
    }

    fn condition(r#type: &str, status: ConditionStatus, reason: &str) -> Condition {
        Condition {
            r#type: r#type.into(),
            status,
            observed_generation: Some(1),
            last_transition_time: Time(time("2025-12-16T06:00:17Z")),
            reason: reason.into(),
            message: String::new(),
        }
    }

    /// The agent's copy of the work of §4.6, applied.
    fn applied() -> ManifestWork {
        let mut agent = work();
        agent.metadata.name = Some("w".into());
        agent.metadata.generation = Some(1);
        agent.metadata.resource_version = None;
        agent.metadata.labels = Some(BTreeMap::from([(
            ORIGINAL_SOURCE_LABEL.to_owned(),
            "kube".to_owned(),
        )]));
        agent.status = Some(ManifestWorkStatus {
            conditions: vec![condition(
                "Applied",
                ConditionStatus::True,
                "AppliedManifestWorkComplete",
            )],
            resource_status: ManifestResourceStatus {
                manifests: vec![ManifestCondition {
                    resource_meta: ManifestResourceMeta {
                        ordinal: 0,
                        version: "v1".into(),
                        kind: "ConfigMap".into(),
                        resource: "configmaps".into(),
                        name: "c".into(),
                        namespace: "default".into(),
                        ..ManifestResourceMeta::default()
                    },
                    status_feedback: Default::default(),
                    conditions: vec![condition(
                        "Applied",
                        ConditionStatus::True,
                        "AppliedManifestComplete",
                    )],
                }],
            },
        });
        agent
    }

    fn status_update(work: &ManifestWork) -> Result<CloudEvent, WorkCodecError> {
        encode_status(
            work,
            "cluster1-work-agent",
            EventAction::UpdateRequest,
            "2000808179729960960".parse().unwrap(),
            "8a3993ab-1193-4d40-bc8c-6bc1fc098089".into(),
            time("2025-12-16T06:00:17.923Z"),
        )
    }

    #[test]
    fn an_agent_status_update_is_the_reference_example() {
        let work = applied();
        let wire = grpc_binding::encode(&status_update(&work).unwrap());
        assert_eq!(wire.id, "8a3993ab-1193-4d40-bc8c-6bc1fc098089");
        assert_eq!(wire.source, "cluster1-work-agent");
        assert_eq!(wire.spec_version, "1.0");
        assert_eq!(
            wire.r#type,
            "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
        );
        let hash = status_hash(&serde_json::to_value(work.status.as_ref().unwrap()).unwrap());
        let mut attributes = wire.attributes.clone();
        let metadata = attributes.remove("ce-metadata").unwrap();
        assert_eq!(
            attributes,
            BTreeMap::from([
                ("contenttype".to_owned(), string("application/json")),
                ("ce-time".to_owned(), stamp(1_765_864_817, 923_000_000)),
                ("ce-clustername".to_owned(), string("cluster1")),
                ("ce-originalsource".to_owned(), string("kube")),
                (
                    "ce-resourceid".to_owned(),
                    string("55c61e54-a3f6-563d-9fec-b1fe297bdfdb")
                ),
                ("ce-resourceversion".to_owned(), integer(1)),
                ("ce-sequenceid".to_owned(), string("2000808179729960960")),
                ("ce-statushash".to_owned(), string(&hash)),
                ("ce-logtracing".to_owned(), string("{}")),
            ])
        );
        let Some(Attr::CeString(metadata)) = metadata.attr else {
            panic!("{metadata:?}")
        };
        assert_eq!(
            serde_json::from_str::<ObjectMeta>(&metadata).unwrap(),
            work.metadata
        );
        assert_eq!(
            wire.data,
            Some(Data::BinaryData(
                br#"{"conditions":[{"type":"Applied","status":"True","observedGeneration":1,"lastTransitionTime":"2025-12-16T06:00:17Z","reason":"AppliedManifestWorkComplete","message":""}],"resourceStatus":[{"resourceMeta":{"ordinal":0,"version":"v1","kind":"ConfigMap","resource":"configmaps","name":"c","namespace":"default"},"statusFeedback":{},"conditions":[{"type":"Applied","status":"True","observedGeneration":1,"lastTransitionTime":"2025-12-16T06:00:17Z","reason":"AppliedManifestComplete","message":""}]}]}"#
                    .to_vec()
            ))
        );
    }

    /// §4.6 as OCM's Go agent puts it on the wire.
    fn go_status_update() -> ProtoEvent {
        ProtoEvent {
            id: "8a3993ab-1193-4d40-bc8c-6bc1fc098089".into(),
            source: "cluster1-work-agent".into(),
            spec_version: "1.0".into(),
            r#type:
                "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request"
                    .into(),
            attributes: BTreeMap::from([
                ("contenttype".into(), string("application/json")),
                ("ce-time".into(), stamp(1_765_864_817, 923_000_000)),
                ("ce-clustername".into(), string("cluster1")),
                ("ce-originalsource".into(), string("kube")),
                (
                    "ce-resourceid".into(),
                    string("55c61e54-a3f6-563d-9fec-b1fe297bdfdb"),
                ),
                ("ce-resourceversion".into(), integer(1)),
                ("ce-sequenceid".into(), string("2000808179729960960")),
                ("ce-statushash".into(), string("e3b23766")),
                (
                    "ce-metadata".into(),
                    string(r#"{"name":"w","namespace":"cluster1","uid":"55c61e54-a3f6-563d-9fec-b1fe297bdfdb","resourceVersion":"1","generation":1,"creationTimestamp":null,"labels":{"cloudevents.open-cluster-management.io/originalsource":"kube"}}"#),
                ),
                ("ce-logtracing".into(), string("{}")),
            ]),
            // Go writes a manifest's empty condition list as null.
            data: Some(Data::BinaryData(
                br#"{"conditions":[{"type":"Applied","status":"True","observedGeneration":1,"lastTransitionTime":"2025-12-16T06:00:17Z","reason":"AppliedManifestWorkComplete","message":"Apply manifest work complete"},{"type":"Deleted","status":"False","lastTransitionTime":"2025-12-16T06:00:17Z","reason":"Pending","message":""}],"resourceStatus":[{"resourceMeta":{"ordinal":0,"group":"","version":"v1","kind":"ConfigMap","resource":"configmaps","name":"c","namespace":"default"},"statusFeedback":{},"conditions":null}]}"#
                    .to_vec(),
            )),
        }
    }

    #[test]
    fn the_hub_reads_a_go_agents_status_update() {
        let event = grpc_binding::decode(go_status_update()).unwrap();
        let status = decode_status(&event).unwrap();
        assert_eq!(status.resource_id(), "55c61e54-a3f6-563d-9fec-b1fe297bdfdb");
        assert_eq!(status.cluster(), "cluster1");
        assert_eq!(status.name(), "w");
        assert_eq!(status.generation, 1);
        assert_eq!(status.sequence_id, "2000808179729960960");
        assert_eq!(status.sequence().unwrap().node(), 1);
        assert_eq!(status.status_hash.as_deref(), Some("e3b23766"));
        assert!(!status.is_deleted());
        let meta = &status.work.metadata;
        assert_eq!(meta.resource_version.as_deref(), Some("1"));
        assert_eq!(
            meta.annotations.as_ref().unwrap()[SEQUENCE_ID_ANNOTATION],
            "2000808179729960960"
        );
        let reported = status.work.status.as_ref().unwrap();
        assert_eq!(reported.conditions[0].reason, "AppliedManifestWorkComplete");
        let manifest = &reported.resource_status.manifests[0];
        assert_eq!(manifest.resource_meta.resource, "configmaps");
        assert!(manifest.conditions.is_empty());
    }

    #[test]
    fn deleted_true_is_the_cue_to_finalize() {
        let mut wire = go_status_update();
        wire.data = Some(Data::BinaryData(
            br#"{"conditions":[{"type":"Deleted","status":"True","lastTransitionTime":"2025-12-16T06:10:00Z","reason":"ManifestsDeleted","message":"The manifests are deleted from the cluster cluster1"}]}"#
                .to_vec(),
        ));
        let status = decode_status(&grpc_binding::decode(wire).unwrap()).unwrap();
        assert!(status.is_deleted());
    }

    #[test]
    fn the_agents_status_round_trips_to_the_hub() {
        let work = applied();
        let event = over_the_wire(&status_update(&work).unwrap());
        let status = decode_status(&event).unwrap();
        assert_eq!(status.work.status, work.status);
        assert_eq!(
            status.status_hash.as_deref(),
            event.extension_str(extension::STATUS_HASH)
        );
        assert_eq!(status.generation, 1);
    }

    #[test]
    fn a_status_needs_the_original_source_and_fitting_generation() {
        let mut unlabelled = applied();
        unlabelled.metadata.labels = None;
        assert_eq!(
            status_update(&unlabelled).unwrap_err(),
            WorkCodecError::NoOriginalSource {
                work: "cluster1/w".into()
            }
        );
        let mut huge = applied();
        huge.metadata.generation = Some(i64::from(i32::MAX) + 1);
        assert!(matches!(
            status_update(&huge),
            Err(WorkCodecError::VersionOutOfRange { .. })
        ));
    }

    #[test]
    fn malformed_status_events_are_refused_with_the_reason() {
        let event = grpc_binding::decode(go_status_update()).unwrap();
        let mut no_sequence = event.clone();
        no_sequence.extensions.remove(extension::SEQUENCE_ID);
        assert_eq!(
            decode_status(&no_sequence).unwrap_err().to_string(),
            "manifestbundle event of resource \"55c61e54-a3f6-563d-9fec-b1fe297bdfdb\": no sequenceid extension"
        );
        let mut no_cluster = event.clone();
        no_cluster.extensions.remove(extension::CLUSTER_NAME);
        assert!(matches!(
            decode_status(&no_cluster),
            Err(WorkCodecError::MissingExtension {
                name: "clustername",
                ..
            })
        ));
        let mut not_json = event.clone();
        not_json.data = Some(b"{\"conditions\": [}".to_vec());
        let err = decode_status(&not_json).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid ManifestBundleStatus payload at line 1"),
            "{err}"
        );
        let mut no_reason = event.clone();
        no_reason.data = Some(br#"{"conditions":[{"type":"Applied","status":"True"}]}"#.to_vec());
        let err = decode_status(&no_reason).unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
        let mut spec = event;
        spec.event_type =
            "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.update_request".into();
        assert!(matches!(
            decode_status(&spec),
            Err(WorkCodecError::EventType { .. })
        ));
    }
}
