//! Registration objects on the wire (OCM's gRPC registration driver): ManagedCluster,
//! CertificateSigningRequest, Lease, Event, ManagedClusterAddOn and TokenRequest travel as the
//! whole Kubernetes object in JSON with `apiVersion` and `kind`, addressed by extensions:
//! `resourceid` = UID (only when set), `resourceversion` = the decimal `metadata.resourceVersion`
//! as a string (only when set), `clustername` = the object's cluster and `originalsource` = "".
//! An object being deleted travels as extensions alone, with `deletiontimestamp` and no data.
//!
//! Generic over the object type, so typed k8s-openapi objects, the OCM kinds in `ocm-api` and
//! `DynamicObject` all go through the same code.

use jiff::Timestamp;
use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ocm_api::kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::event::{CloudEvent, ExtensionValue, JSON, SPEC_VERSION, extension};
use crate::event_type::{DataType, EventAction, EventType, SubResource};

/// The label naming a CSR's cluster; a CSR's `clustername` extension is its value.
pub use ocm_api::registration::CLUSTER_NAME_LABEL;

/// The registration data types OCM's hub serves over gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistrationKind {
    ManagedCluster,
    CertificateSigningRequest,
    Lease,
    Event,
    ManagedClusterAddOnV1alpha1,
    /// The version OCM's current registration agent uses.
    ManagedClusterAddOnV1beta1,
    TokenRequest,
}

impl RegistrationKind {
    pub const ALL: [Self; 7] = [
        Self::ManagedCluster,
        Self::CertificateSigningRequest,
        Self::Lease,
        Self::Event,
        Self::ManagedClusterAddOnV1alpha1,
        Self::ManagedClusterAddOnV1beta1,
        Self::TokenRequest,
    ];

    pub fn data_type(self) -> DataType {
        match self {
            Self::ManagedCluster => DataType::managed_clusters(),
            Self::CertificateSigningRequest => DataType::certificate_signing_requests(),
            Self::Lease => DataType::leases(),
            Self::Event => DataType::events(),
            Self::ManagedClusterAddOnV1alpha1 => DataType::managed_cluster_addons_v1alpha1(),
            Self::ManagedClusterAddOnV1beta1 => DataType::managed_cluster_addons_v1beta1(),
            Self::TokenRequest => DataType::token_requests(),
        }
    }

    /// The kind registered for `data_type`, if it is a registration type.
    pub fn from_data_type(data_type: &DataType) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.data_type() == *data_type)
    }

    pub const fn api_version(self) -> &'static str {
        match self {
            Self::ManagedCluster => "cluster.open-cluster-management.io/v1",
            Self::CertificateSigningRequest => "certificates.k8s.io/v1",
            Self::Lease => "coordination.k8s.io/v1",
            Self::Event => "events.k8s.io/v1",
            Self::ManagedClusterAddOnV1alpha1 => "addon.open-cluster-management.io/v1alpha1",
            Self::ManagedClusterAddOnV1beta1 => "addon.open-cluster-management.io/v1beta1",
            Self::TokenRequest => "authentication.k8s.io/v1",
        }
    }

    pub const fn kind(self) -> &'static str {
        match self {
            Self::ManagedCluster => "ManagedCluster",
            Self::CertificateSigningRequest => "CertificateSigningRequest",
            Self::Lease => "Lease",
            Self::Event => "Event",
            Self::ManagedClusterAddOnV1alpha1 | Self::ManagedClusterAddOnV1beta1 => {
                "ManagedClusterAddOn"
            }
            Self::TokenRequest => "TokenRequest",
        }
    }

    /// OCM's codecs set `apiVersion` and `kind` on every registration object except
    /// TokenRequest, whose JSON carries whatever the object had.
    const fn forces_type_meta(self) -> bool {
        !matches!(self, Self::TokenRequest)
    }

    /// The `clustername` extension of an object of this kind: a ManagedCluster's name, a CSR's
    /// cluster-name label, otherwise the namespace (the cluster's namespace on the hub).
    pub fn cluster_name(self, meta: &ObjectMeta) -> String {
        let value = match self {
            Self::ManagedCluster => meta.name.as_ref(),
            Self::CertificateSigningRequest => {
                meta.labels.as_ref().and_then(|l| l.get(CLUSTER_NAME_LABEL))
            }
            _ => meta.namespace.as_ref(),
        };
        value.cloned().unwrap_or_default()
    }
}

impl std::fmt::Display for RegistrationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind())
    }
}

/// A decoded registration event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<K> {
    Object(K),
    /// A deletion sent as extensions only: all that is known is the UID and when. (OCM's Go
    /// decoder builds an object holding just these two; an enum says it plainly.)
    Deleted {
        uid: String,
        deletion_timestamp: Timestamp,
    },
}

/// Encodes `object` as a `<data type>.<sub_resource>.<action>` event from `source`, with event
/// ID `id` at time `now`.
pub fn encode<K: Resource + Serialize>(
    kind: RegistrationKind,
    sub_resource: SubResource,
    action: EventAction,
    source: &str,
    object: &K,
    id: String,
    now: Timestamp,
) -> Result<CloudEvent, RegistrationError> {
    let meta = object.meta();
    let context = || Context::of(kind, meta);
    let mut event = CloudEvent {
        id,
        source: source.to_owned(),
        spec_version: SPEC_VERSION.to_owned(),
        event_type: kind
            .data_type()
            .event_type(sub_resource, action)
            .to_string(),
        time: Some(now),
        ..CloudEvent::default()
    };
    let string = |s: &str| ExtensionValue::String(s.to_owned());
    if let Some(uid) = meta.uid.as_deref().filter(|u| !u.is_empty()) {
        event
            .extensions
            .insert(extension::RESOURCE_ID.to_owned(), string(uid));
    }
    if let Some(version) = meta.resource_version.as_deref().filter(|v| !v.is_empty()) {
        decimal_resource_version(version).map_err(|()| RegistrationError::ResourceVersion {
            object: context(),
            value: version.to_owned(),
        })?;
        event
            .extensions
            .insert(extension::RESOURCE_VERSION.to_owned(), string(version));
    }
    event.extensions.insert(
        extension::CLUSTER_NAME.to_owned(),
        ExtensionValue::String(kind.cluster_name(meta)),
    );
    event
        .extensions
        .insert(extension::ORIGINAL_SOURCE.to_owned(), string(""));
    if let Some(deleted) = &meta.deletion_timestamp {
        event.extensions.insert(
            extension::DELETION_TIMESTAMP.to_owned(),
            ExtensionValue::Timestamp(deleted.0),
        );
        return Ok(event);
    }
    let mut json = serde_json::to_value(object).map_err(|e| RegistrationError::Json {
        object: context(),
        detail: e.to_string(),
    })?;
    check_type_meta(kind, &mut json, kind.forces_type_meta()).map_err(|found| {
        RegistrationError::WrongKind {
            object: context(),
            found,
        }
    })?;
    let data = serde_json::to_vec(&json).map_err(|e| RegistrationError::Json {
        object: context(),
        detail: e.to_string(),
    })?;
    event.data_content_type = Some(JSON.to_owned());
    event.data = Some(data);
    Ok(event)
}

/// Decodes a registration event of `kind`: the object from its data, or — for a data-less
/// event with `deletiontimestamp` — the deletion it announces.
pub fn decode<K: DeserializeOwned>(
    kind: RegistrationKind,
    event: &CloudEvent,
) -> Result<Decoded<K>, RegistrationError> {
    let event_type: EventType =
        event
            .event_type
            .parse()
            .map_err(|e| RegistrationError::EventType {
                kind,
                detail: format!("{e}"),
            })?;
    if event_type.data_type != kind.data_type() {
        return Err(RegistrationError::EventType {
            kind,
            detail: format!(
                "event type {} is not of data type {}",
                event.event_type,
                kind.data_type()
            ),
        });
    }
    let context = || Context {
        kind,
        name: event
            .extension_str(extension::RESOURCE_ID)
            .unwrap_or_default()
            .to_owned(),
        cluster: event.cluster_name().unwrap_or_default().to_owned(),
    };
    match event.data.as_deref() {
        Some(data) if !data.is_empty() => {
            let mut json: Value =
                serde_json::from_slice(data).map_err(|e| RegistrationError::Json {
                    object: context(),
                    detail: e.to_string(),
                })?;
            // Go's TokenRequest may come without TypeMeta; fill it in so typed decoding works.
            check_type_meta(kind, &mut json, true).map_err(|found| {
                RegistrationError::WrongKind {
                    object: context(),
                    found,
                }
            })?;
            let object = serde_json::from_value(json).map_err(|e| RegistrationError::Json {
                object: context(),
                detail: e.to_string(),
            })?;
            Ok(Decoded::Object(object))
        }
        _ => {
            let Some(deletion_timestamp) = event.extension_timestamp(extension::DELETION_TIMESTAMP)
            else {
                return Err(RegistrationError::NoData { object: context() });
            };
            let uid = event
                .extension_str(extension::RESOURCE_ID)
                .filter(|u| !u.is_empty())
                .ok_or_else(|| RegistrationError::DeletionWithoutId { object: context() })?;
            Ok(Decoded::Deleted {
                uid: uid.to_owned(),
                deletion_timestamp,
            })
        }
    }
}

/// `metadata.resourceVersion` as the number OCM's agents resync with; `None` when unset.
pub fn resource_version_number(
    kind: RegistrationKind,
    meta: &ObjectMeta,
) -> Result<Option<i64>, RegistrationError> {
    match meta.resource_version.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(version) => decimal_resource_version(version).map(Some).map_err(|()| {
            RegistrationError::ResourceVersion {
                object: Context::of(kind, meta),
                value: version.to_owned(),
            }
        }),
    }
}

/// Kubernetes resourceVersions are opaque strings, but OCM's Go agent parses them as decimal
/// integers when it resyncs, and one that does not parse aborts its whole resync.
fn decimal_resource_version(version: &str) -> Result<i64, ()> {
    if version.bytes().all(|b| b.is_ascii_digit()) {
        version.parse().map_err(|_| ())
    } else {
        Err(())
    }
}

/// Checks `apiVersion`/`kind` of `json` against `kind`; a missing one is filled in when `fill`.
/// Returns what was found instead when they name another kind.
fn check_type_meta(kind: RegistrationKind, json: &mut Value, fill: bool) -> Result<(), String> {
    let Value::Object(fields) = json else {
        return Err("not a JSON object".to_owned());
    };
    for (key, expected) in [("apiVersion", kind.api_version()), ("kind", kind.kind())] {
        match fields.get(key) {
            Some(Value::String(found)) if found == expected => {}
            None | Some(Value::Null) => {
                if fill {
                    fields.insert(key.to_owned(), Value::String(expected.to_owned()));
                }
            }
            Some(Value::String(found)) if found.is_empty() => {
                if fill {
                    fields.insert(key.to_owned(), Value::String(expected.to_owned()));
                }
            }
            Some(other) => return Err(format!("{key} {other}")),
        }
    }
    Ok(())
}

/// Which object an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub kind: RegistrationKind,
    /// Namespace/name when encoding; the `resourceid` when decoding.
    pub name: String,
    pub cluster: String,
}

impl Context {
    fn of(kind: RegistrationKind, meta: &ObjectMeta) -> Self {
        let name = meta.name.clone().unwrap_or_default();
        let name = match &meta.namespace {
            Some(namespace) if !namespace.is_empty() => format!("{namespace}/{name}"),
            _ => name,
        };
        Self {
            kind,
            name,
            cluster: kind.cluster_name(meta),
        }
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} (cluster {:?})",
            self.kind.kind(),
            self.name,
            self.cluster
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error(
        "{object}: metadata.resourceVersion {value:?} is not a decimal integer, which OCM's agents need to resync"
    )]
    ResourceVersion { object: Context, value: String },
    #[error("{object}: {detail}")]
    Json { object: Context, detail: String },
    #[error("{object}: expected apiVersion {} kind {}, found {found}", object.kind.api_version(), object.kind.kind())]
    WrongKind { object: Context, found: String },
    #[error("{kind}: {detail}")]
    EventType {
        kind: RegistrationKind,
        detail: String,
    },
    #[error("{object}: the event has no data and no deletiontimestamp")]
    NoData { object: Context },
    #[error("{object}: a deletion without data must carry resourceid")]
    DeletionWithoutId { object: Context },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use ocm_api::k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use ocm_api::k8s_openapi::api::certificates::v1::{
        CertificateSigningRequest, CertificateSigningRequestSpec,
    };
    use ocm_api::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    use ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use ocm_api::k8s_openapi::{ByteString, api::events::v1::Event};
    use ocm_api::kube::core::{ApiResource, DynamicObject, GroupVersionKind};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn lease() -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("managed-cluster-lease".into()),
                namespace: Some("cluster1".into()),
                uid: Some("6f1c2c8e-2b1e-4c37-9d55-0c8d1f1e2a11".into()),
                resource_version: Some("4711".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                lease_duration_seconds: Some(60),
                renew_time: Some(
                    ocm_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(at(
                        "2026-11-23T10:00:00.123456Z",
                    )),
                ),
                ..LeaseSpec::default()
            }),
        }
    }

    /// `lease` as the agent's `spec.update_request`.
    fn lease_update(lease: &Lease) -> Result<CloudEvent, RegistrationError> {
        encode(
            RegistrationKind::Lease,
            SubResource::Spec,
            EventAction::UpdateRequest,
            "cluster1",
            lease,
            "e1".into(),
            at("2026-11-23T10:00:01Z"),
        )
    }

    fn strings(event: &CloudEvent) -> BTreeMap<&str, String> {
        event
            .extensions
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    ExtensionValue::String(s) => format!("string {s}"),
                    ExtensionValue::Integer(i) => format!("integer {i}"),
                    ExtensionValue::Timestamp(t) => format!("timestamp {t}"),
                    other => format!("{other:?}"),
                };
                (k.as_str(), shown)
            })
            .collect()
    }

    #[test]
    fn lease_update_is_the_whole_object_with_string_resource_version_and_namespace_as_cluster() {
        let event = lease_update(&lease()).unwrap();
        assert_eq!(
            event.event_type,
            "coordination.k8s.io.v1.leases.spec.update_request"
        );
        assert_eq!(event.source, "cluster1");
        assert_eq!(event.data_content_type.as_deref(), Some(JSON));
        assert_eq!(
            strings(&event),
            BTreeMap::from([
                ("clustername", "string cluster1".to_owned()),
                ("originalsource", "string ".to_owned()),
                (
                    "resourceid",
                    "string 6f1c2c8e-2b1e-4c37-9d55-0c8d1f1e2a11".to_owned()
                ),
                ("resourceversion", "string 4711".to_owned()),
            ])
        );
        assert_eq!(
            String::from_utf8(event.data.clone().unwrap()).unwrap(),
            r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"managed-cluster-lease","namespace":"cluster1","resourceVersion":"4711","uid":"6f1c2c8e-2b1e-4c37-9d55-0c8d1f1e2a11"},"spec":{"leaseDurationSeconds":60,"renewTime":"2026-11-23T10:00:00.123456Z"}}"#
        );
        let decoded: Decoded<Lease> = decode(RegistrationKind::Lease, &event).unwrap();
        assert_eq!(decoded, Decoded::Object(lease()));
    }

    #[test]
    fn resource_version_travels_as_ce_string_on_grpc() {
        let event = lease_update(&lease()).unwrap();
        let wire = crate::grpc_binding::encode(&event);
        let value = wire.attributes["ce-resourceversion"].attr.clone();
        assert_eq!(
            value,
            Some(ocm_proto::v1::cloud_event_attribute_value::Attr::CeString(
                "4711".into()
            ))
        );
    }

    #[test]
    fn csr_is_addressed_by_its_cluster_name_label() {
        let csr = CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some("cluster1-x7k2p".into()),
                labels: Some(BTreeMap::from([(
                    CLUSTER_NAME_LABEL.to_owned(),
                    "cluster1".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(b"-----BEGIN CERTIFICATE REQUEST-----\n".to_vec()),
                signer_name: "open-cluster-management.io/grpc".into(),
                usages: Some(vec![
                    "digital signature".into(),
                    "key encipherment".into(),
                    "client auth".into(),
                ]),
                ..CertificateSigningRequestSpec::default()
            },
            status: None,
        };
        let event = encode(
            RegistrationKind::CertificateSigningRequest,
            SubResource::Spec,
            EventAction::CreateRequest,
            "cluster1",
            &csr,
            "e2".into(),
            at("2026-11-23T10:00:01Z"),
        )
        .unwrap();
        assert_eq!(event.cluster_name(), Some("cluster1"));
        // A new object has neither UID nor resourceVersion yet, so neither extension is set.
        assert!(!event.extensions.contains_key(extension::RESOURCE_ID));
        assert!(!event.extensions.contains_key(extension::RESOURCE_VERSION));
        let decoded: Decoded<CertificateSigningRequest> =
            decode(RegistrationKind::CertificateSigningRequest, &event).unwrap();
        assert_eq!(decoded, Decoded::Object(csr));
    }

    fn managed_cluster_resource() -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "cluster.open-cluster-management.io",
            "v1",
            "ManagedCluster",
        ))
    }

    #[test]
    fn managed_cluster_gets_type_meta_forced_and_its_name_as_cluster() {
        // As a joining agent sends it: no UID, no resourceVersion, and no TypeMeta set.
        let mut cluster = DynamicObject::new("cluster1", &managed_cluster_resource()).data(
            serde_json::json!({"spec": {"hubAcceptsClient": false, "leaseDurationSeconds": 60}}),
        );
        cluster.types = None;
        let event = encode(
            RegistrationKind::ManagedCluster,
            SubResource::Spec,
            EventAction::CreateRequest,
            "cluster1",
            &cluster,
            "e3".into(),
            at("2026-11-23T10:00:01Z"),
        )
        .unwrap();
        assert_eq!(
            event.event_type,
            "cluster.open-cluster-management.io.v1.managedclusters.spec.create_request"
        );
        assert_eq!(event.cluster_name(), Some("cluster1"));
        assert_eq!(
            String::from_utf8(event.data.clone().unwrap()).unwrap(),
            r#"{"apiVersion":"cluster.open-cluster-management.io/v1","kind":"ManagedCluster","metadata":{"name":"cluster1"},"spec":{"hubAcceptsClient":false,"leaseDurationSeconds":60}}"#
        );
        let Decoded::Object(back) =
            decode::<DynamicObject>(RegistrationKind::ManagedCluster, &event).unwrap()
        else {
            panic!("expected an object")
        };
        assert_eq!(back.metadata.name.as_deref(), Some("cluster1"));
        assert_eq!(back.data["spec"]["leaseDurationSeconds"], 60);
    }

    #[test]
    fn a_typed_managed_cluster_round_trips_with_its_status() {
        use ocm_api::cluster::v1::{ManagedCluster, ManagedClusterSpec, ManagedClusterStatus};
        let mut cluster = ManagedCluster::new(
            "cluster1",
            ManagedClusterSpec {
                hub_accepts_client: true,
                lease_duration_seconds: 60,
                ..ManagedClusterSpec::default()
            },
        );
        cluster.metadata.uid = Some("0b7c3c0e-6a4e-4f4e-9a53-1f1d3f2e9b10".into());
        cluster.metadata.resource_version = Some("12".into());
        cluster.status = Some(ManagedClusterStatus {
            version: Some(ocm_api::cluster::v1::ManagedClusterVersion {
                kubernetes: "v1.33.2".into(),
            }),
            ..ManagedClusterStatus::default()
        });
        let event = encode(
            RegistrationKind::ManagedCluster,
            SubResource::Status,
            EventAction::UpdateRequest,
            "cluster1",
            &cluster,
            "e9".into(),
            at("2026-11-23T10:00:01Z"),
        )
        .unwrap();
        assert_eq!(
            event.event_type,
            "cluster.open-cluster-management.io.v1.managedclusters.status.update_request"
        );
        assert_eq!(event.cluster_name(), Some("cluster1"));
        let decoded: Decoded<ManagedCluster> =
            decode(RegistrationKind::ManagedCluster, &event).unwrap();
        assert_eq!(decoded, Decoded::Object(cluster));
    }

    #[test]
    fn an_object_being_deleted_travels_as_extensions_only_and_decodes_to_a_deletion() {
        let mut deleting = lease();
        deleting.metadata.deletion_timestamp = Some(Time(at("2026-11-23T10:05:00Z")));
        let event = encode(
            RegistrationKind::Lease,
            SubResource::Spec,
            EventAction::DeleteRequest,
            "kube",
            &deleting,
            "e4".into(),
            at("2026-11-23T10:05:01Z"),
        )
        .unwrap();
        assert_eq!(event.data, None);
        assert_eq!(event.data_content_type, None);
        assert_eq!(
            event.extension_timestamp(extension::DELETION_TIMESTAMP),
            Some(at("2026-11-23T10:05:00Z"))
        );
        let decoded: Decoded<Lease> = decode(RegistrationKind::Lease, &event).unwrap();
        assert_eq!(
            decoded,
            Decoded::Deleted {
                uid: "6f1c2c8e-2b1e-4c37-9d55-0c8d1f1e2a11".into(),
                deletion_timestamp: at("2026-11-23T10:05:00Z"),
            }
        );
    }

    #[test]
    fn token_request_from_go_without_type_meta_decodes_and_is_matched_by_uid() {
        // What OCM's hub sends back: the request's UID restored, status.token filled, and no
        // TypeMeta (its codec does not force it).
        let event = CloudEvent {
            id: "e5".into(),
            source: "kube".into(),
            spec_version: SPEC_VERSION.into(),
            event_type: "authentication.k8s.io.v1.tokenrequests.spec.create_request".into(),
            data_content_type: Some(JSON.into()),
            extensions: BTreeMap::from([
                (
                    extension::CLUSTER_NAME.to_owned(),
                    ExtensionValue::String("cluster1".into()),
                ),
                (
                    extension::RESOURCE_ID.to_owned(),
                    ExtensionValue::String("req-42".into()),
                ),
            ]),
            data: Some(br#"{"metadata":{"name":"addon-agent","namespace":"cluster1","uid":"req-42","creationTimestamp":null},"spec":{"audiences":null,"expirationSeconds":3600,"boundObjectRef":null},"status":{"token":"tok","expirationTimestamp":"2026-11-23T11:00:00Z"}}"#.to_vec()),
            ..CloudEvent::default()
        };
        let Decoded::Object(response) =
            decode::<TokenRequest>(RegistrationKind::TokenRequest, &event).unwrap()
        else {
            panic!("expected an object")
        };
        assert_eq!(response.metadata.uid.as_deref(), Some("req-42"));
        assert_eq!(response.status.unwrap().token, "tok");

        let request = TokenRequest {
            metadata: ObjectMeta {
                name: Some("addon-agent".into()),
                namespace: Some("cluster1".into()),
                uid: Some("req-43".into()),
                ..ObjectMeta::default()
            },
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            status: None,
        };
        let event = encode(
            RegistrationKind::TokenRequest,
            SubResource::Spec,
            EventAction::CreateRequest,
            "cluster1",
            &request,
            "e6".into(),
            at("2026-11-23T10:00:01Z"),
        )
        .unwrap();
        assert_eq!(event.cluster_name(), Some("cluster1"));
        assert_eq!(event.extension_str(extension::RESOURCE_ID), Some("req-43"));
    }

    #[test]
    fn a_non_decimal_resource_version_is_refused_naming_the_object() {
        let mut odd = lease();
        odd.metadata.resource_version = Some("a1b2".into());
        let err = lease_update(&odd).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Lease \"cluster1/managed-cluster-lease\" (cluster \"cluster1\"): metadata.resourceVersion \"a1b2\" is not a decimal integer, which OCM's agents need to resync"
        );
        assert_eq!(
            resource_version_number(RegistrationKind::Lease, &lease().metadata),
            Ok(Some(4711))
        );
        assert!(resource_version_number(RegistrationKind::Lease, &odd.metadata).is_err());
    }

    #[test]
    fn malformed_events_are_refused_with_the_reason() {
        let good = lease_update(&lease()).unwrap();

        let err = decode::<Event>(RegistrationKind::Event, &good).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not of data type events.k8s.io.v1.events"),
            "{err}"
        );

        let mut not_json = good.clone();
        not_json.data = Some(b"{not json".to_vec());
        let err = decode::<Lease>(RegistrationKind::Lease, &not_json).unwrap_err();
        assert!(matches!(err, RegistrationError::Json { .. }), "{err}");

        let mut other_kind = good.clone();
        other_kind.data = Some(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#.to_vec());
        let err = decode::<Lease>(RegistrationKind::Lease, &other_kind).unwrap_err();
        assert!(err.to_string().contains("found apiVersion \"v1\""), "{err}");

        let mut empty = good.clone();
        empty.data = None;
        let err = decode::<Lease>(RegistrationKind::Lease, &empty).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Lease \"6f1c2c8e-2b1e-4c37-9d55-0c8d1f1e2a11\" (cluster \"cluster1\"): the event has no data and no deletiontimestamp"
        );

        let mut deletion_without_id = empty;
        deletion_without_id
            .extensions
            .remove(extension::RESOURCE_ID);
        deletion_without_id.extensions.insert(
            extension::DELETION_TIMESTAMP.to_owned(),
            ExtensionValue::Timestamp(at("2026-11-23T10:05:00Z")),
        );
        let err = decode::<Lease>(RegistrationKind::Lease, &deletion_without_id).unwrap_err();
        assert!(
            matches!(err, RegistrationError::DeletionWithoutId { .. }),
            "{err}"
        );
    }

    #[test]
    fn every_kind_maps_to_its_data_type_and_back() {
        for kind in RegistrationKind::ALL {
            assert_eq!(
                RegistrationKind::from_data_type(&kind.data_type()),
                Some(kind)
            );
            let (group, version) = kind
                .api_version()
                .rsplit_once('/')
                .unwrap_or(("", kind.api_version()));
            assert_eq!(kind.data_type().group, group);
            assert_eq!(kind.data_type().version, version);
        }
        assert_eq!(
            RegistrationKind::from_data_type(&DataType::manifest_bundles()),
            None
        );
    }
}
