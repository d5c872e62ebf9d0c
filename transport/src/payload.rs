//! The JSON payloads of manifestbundle events (sdk-go's work payload): the spec a hub
//! sends (`ManifestBundle`) and the status an agent reports (`ManifestBundleStatus`).
//!
//! Two views of the same bytes. [`ManifestBundle`] and [`ManifestBundleStatus`] are the envelopes
//! with their sub-objects (delete option, manifest configs, executor, conditions, resource status)
//! kept as JSON values, carried through untouched, unknown fields included — what a relay needs.
//! The typed functions ([`ManifestBundle::spec_json`], [`ManifestBundle::spec_from_json`],
//! [`ManifestBundleStatus::status_json`], [`ManifestBundleStatus::status_from_json`]) read and
//! write the same envelopes straight from and to `ocm_api::work::v1`'s types — what the hub and
//! the agent use (ocm_transport::work), without copying manifests into JSON values first. Both
//! pin the envelope: key names (note `executer`), which keys are always present, and that Go's
//! `null` for an empty list is accepted.

use ocm_api::condition::{self, Condition, ConditionStatus};
use ocm_api::work::v1::{
    CONDITION_DELETED, DeleteOption, Manifest, ManifestCondition, ManifestConfigOption,
    ManifestResourceStatus, ManifestWorkExecutor, ManifestWorkSpec, ManifestWorkStatus,
    ManifestsTemplate,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `*.manifestbundles.spec.*` data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBundle {
    /// The raw Kubernetes objects of `spec.workload.manifests`. Always written (OCM's key has no
    /// `omitempty`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub manifests: Vec<Value>,
    /// `spec.deleteOption`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_option: Option<Value>,
    /// `spec.manifestConfigs`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub manifest_configs: Vec<Value>,
    /// `spec.executor` — spelled `executer` in the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executer: Option<Value>,
}

/// `*.manifestbundles.status.*` data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestBundleStatus {
    /// Added by Maestro when relaying status to its sources; OCM agents never send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_bundle: Option<ManifestBundle>,
    /// Work-level conditions (`Applied`, `Available`, `Progressing`, `Degraded`, `Deleted`).
    /// Always written.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub conditions: Vec<Value>,
    /// `status.resourceStatus.manifests`, flattened.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub resource_status: Vec<Value>,
}

/// Go marshals an empty (nil) slice as `null`; read it as an empty list.
pub(crate) fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl ManifestBundle {
    pub fn from_json(bytes: &[u8]) -> Result<Self, PayloadError> {
        serde_json::from_slice(bytes).map_err(|e| PayloadError::new("ManifestBundle", &e))
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Values and strings only: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `spec` as the bundle a hub sends: the same bytes as the envelope built from it.
    pub fn spec_json(spec: &ManifestWorkSpec) -> Vec<u8> {
        let bundle = SpecBundleRef {
            manifests: &spec.workload.manifests,
            delete_option: spec.delete_option.as_ref(),
            manifest_configs: &spec.manifest_configs,
            executer: spec.executor.as_ref(),
        };
        // Typed values, strings and JSON values only: serialisation cannot fail.
        serde_json::to_vec(&bundle).unwrap_or_default()
    }

    /// The spec a bundle carries, read as the work API's types (fields the API does not know
    /// are dropped, as Go's decoder drops them).
    pub fn spec_from_json(bytes: &[u8]) -> Result<ManifestWorkSpec, PayloadError> {
        serde_json::from_slice::<SpecBundle>(bytes)
            .map(SpecBundle::into_spec)
            .map_err(|e| PayloadError::new("ManifestBundle", &e))
    }
}

/// The spec of a work as bundle JSON, borrowing its parts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpecBundleRef<'a> {
    manifests: &'a [Manifest],
    #[serde(skip_serializing_if = "Option::is_none")]
    delete_option: Option<&'a DeleteOption>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    manifest_configs: &'a [ManifestConfigOption],
    #[serde(skip_serializing_if = "Option::is_none")]
    executer: Option<&'a ManifestWorkExecutor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecBundle {
    #[serde(default, deserialize_with = "null_as_empty")]
    manifests: Vec<Manifest>,
    #[serde(default)]
    delete_option: Option<DeleteOption>,
    #[serde(default, deserialize_with = "null_as_empty")]
    manifest_configs: Vec<ManifestConfigOption>,
    #[serde(default)]
    executer: Option<ManifestWorkExecutor>,
}

impl SpecBundle {
    fn into_spec(self) -> ManifestWorkSpec {
        ManifestWorkSpec {
            workload: ManifestsTemplate {
                manifests: self.manifests,
            },
            delete_option: self.delete_option,
            manifest_configs: self.manifest_configs,
            executor: self.executer,
        }
    }
}

impl ManifestBundleStatus {
    pub fn from_json(bytes: &[u8]) -> Result<Self, PayloadError> {
        serde_json::from_slice(bytes).map_err(|e| PayloadError::new("ManifestBundleStatus", &e))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Whether the agent reports the work's resources deleted (`Deleted=True`), the hub's cue
    /// to remove its finalizer (§5.4).
    pub fn is_deleted(&self) -> bool {
        self.conditions.iter().any(|c| {
            c.get("type") == Some(&CONDITION_DELETED.into())
                && c.get("status") == Some(&"True".into())
        })
    }

    /// `status` as the data of an agent's status event: `{conditions, resourceStatus}` with
    /// `status.resourceStatus.manifests` flattened — the same bytes as the envelope built from it.
    pub fn status_json(status: &ManifestWorkStatus) -> Vec<u8> {
        let bundle = StatusBundleRef {
            conditions: &status.conditions,
            resource_status: &status.resource_status.manifests,
        };
        serde_json::to_vec(&bundle).unwrap_or_default()
    }

    /// The status a status event carries, read as the work API's types, and the spec when a
    /// relaying source added the bundle (Maestro does; OCM's agents never send it).
    pub fn status_from_json(
        bytes: &[u8],
    ) -> Result<(ManifestWorkStatus, Option<ManifestWorkSpec>), PayloadError> {
        let bundle: StatusBundle = serde_json::from_slice(bytes)
            .map_err(|e| PayloadError::new("ManifestBundleStatus", &e))?;
        let status = ManifestWorkStatus {
            conditions: bundle.conditions,
            resource_status: ManifestResourceStatus {
                manifests: bundle.resource_status,
            },
        };
        Ok((status, bundle.manifest_bundle.map(SpecBundle::into_spec)))
    }
}

/// Whether a typed status reports the work's resources deleted (`Deleted=True`).
pub fn status_is_deleted(status: &ManifestWorkStatus) -> bool {
    condition::find(&status.conditions, CONDITION_DELETED)
        .is_some_and(|c| c.status == ConditionStatus::True)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBundleRef<'a> {
    conditions: &'a [Condition],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    resource_status: &'a [ManifestCondition],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusBundle {
    #[serde(default)]
    manifest_bundle: Option<SpecBundle>,
    #[serde(default, deserialize_with = "null_as_empty")]
    conditions: Vec<Condition>,
    #[serde(default, deserialize_with = "null_as_empty")]
    resource_status: Vec<ManifestCondition>,
}

/// A payload that is not the JSON it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} payload at line {line}, column {column}: {detail}")]
pub struct PayloadError {
    pub kind: &'static str,
    pub line: usize,
    pub column: usize,
    pub detail: String,
}

impl PayloadError {
    fn new(kind: &'static str, error: &serde_json::Error) -> Self {
        Self {
            kind,
            line: error.line(),
            column: error.column(),
            detail: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ocm_bundle_decodes_and_keeps_every_field_of_its_sub_objects() {
        let json = br#"{
          "manifests": [{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"default"},"data":{"k":"v"}}],
          "deleteOption": {"propagationPolicy":"SelectivelyOrphan","selectivelyOrphans":{"orphaningRules":[{"group":"","resource":"configmaps","name":"c","namespace":"default"}]}},
          "manifestConfigs": [{"resourceIdentifier":{"group":"apps","resource":"deployments","name":"web","namespace":"default"},
                               "feedbackRules":[{"type":"WellKnownStatus"}],"updateStrategy":{"type":"ServerSideApply","serverSideApply":{"force":true,"fieldManager":"x"}},
                               "someFutureField": 1}],
          "executer": {"subject":{"type":"ServiceAccount","serviceAccount":{"namespace":"ns","name":"sa"}}}
        }"#;
        let bundle = ManifestBundle::from_json(json).unwrap();
        assert_eq!(bundle.manifests[0]["kind"], "ConfigMap");
        assert_eq!(
            bundle.delete_option.as_ref().unwrap()["selectivelyOrphans"]["orphaningRules"][0]["name"],
            "c"
        );
        assert_eq!(bundle.manifest_configs[0]["someFutureField"], 1);
        assert_eq!(
            bundle.executer.as_ref().unwrap()["subject"]["serviceAccount"]["name"],
            "sa"
        );
        assert_eq!(
            ManifestBundle::from_json(&bundle.to_json()).unwrap(),
            bundle
        );
    }

    #[test]
    fn empty_lists_are_written_as_ocm_writes_them_and_gos_nulls_are_read() {
        assert_eq!(ManifestBundle::default().to_json(), br#"{"manifests":[]}"#);
        assert_eq!(
            ManifestBundleStatus::default().to_json(),
            br#"{"conditions":[]}"#
        );
        let from_go =
            ManifestBundleStatus::from_json(br#"{"conditions":null,"resourceStatus":null}"#)
                .unwrap();
        assert_eq!(from_go, ManifestBundleStatus::default());
        assert!(
            ManifestBundle::from_json(br#"{"manifests":null}"#)
                .unwrap()
                .manifests
                .is_empty()
        );
    }

    #[test]
    fn deleted_condition_is_recognised() {
        let status = ManifestBundleStatus::from_json(
            br#"{"conditions":[{"type":"Applied","status":"True"},{"type":"Deleted","status":"True","reason":"ManifestsDeleted"}]}"#,
        )
        .unwrap();
        assert!(status.is_deleted());
        let applied = ManifestBundleStatus::from_json(
            br#"{"conditions":[{"type":"Deleted","status":"False"}]}"#,
        )
        .unwrap();
        assert!(!applied.is_deleted());
    }

    #[test]
    fn the_typed_spec_is_written_as_the_envelope_and_read_back() {
        let json = br#"{"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}],"deleteOption":{"propagationPolicy":"SelectivelyOrphan","selectivelyOrphans":{"orphaningRules":[{"resource":"configmaps","name":"c"}]}},"manifestConfigs":[{"resourceIdentifier":{"group":"apps","resource":"deployments","name":"web","namespace":"default"},"feedbackRules":[{"type":"WellKnownStatus"}],"feedbackScrapeType":"Poll","updateStrategy":{"type":"ServerSideApply","serverSideApply":{"force":true,"fieldManager":"work-agent"}}}],"executer":{"subject":{"type":"ServiceAccount","serviceAccount":{"namespace":"ns","name":"sa"}}}}"#;
        let spec = ManifestBundle::spec_from_json(json).unwrap();
        assert_eq!(spec.workload.manifests.len(), 1);
        assert_eq!(
            spec.executor
                .as_ref()
                .unwrap()
                .subject
                .as_ref()
                .unwrap()
                .service_account
                .as_ref()
                .unwrap()
                .name,
            "sa"
        );
        assert_eq!(ManifestBundle::spec_json(&spec), json.to_vec());
        // The envelope reads the typed bytes to the same values (it writes JSON values with
        // their keys sorted; the typed bytes keep Go's field order).
        let envelope = ManifestBundle::from_json(&ManifestBundle::spec_json(&spec)).unwrap();
        assert_eq!(envelope, ManifestBundle::from_json(json).unwrap());
        assert_eq!(
            ManifestBundle::spec_json(&ManifestWorkSpec::default()),
            br#"{"manifests":[]}"#
        );
        let from_go = ManifestBundle::spec_from_json(
            br#"{"manifests":null,"deleteOption":null,"manifestConfigs":null}"#,
        )
        .unwrap();
        assert_eq!(from_go, ManifestWorkSpec::default());
    }

    #[test]
    fn the_typed_status_is_flattened_and_read_back_with_gos_nulls() {
        let json = br#"{"conditions":[{"type":"Applied","status":"True","lastTransitionTime":"2025-12-16T06:00:17Z","reason":"AppliedManifestWorkComplete","message":""}],"resourceStatus":[{"resourceMeta":{"ordinal":0,"version":"v1","kind":"ConfigMap","resource":"configmaps","name":"c","namespace":"default"},"statusFeedback":{"values":[{"name":"replicas","fieldValue":{"type":"Integer","integer":3}}]},"conditions":[]}]}"#;
        let (status, spec) = ManifestBundleStatus::status_from_json(json).unwrap();
        assert_eq!(spec, None);
        assert_eq!(
            status.resource_status.manifests[0].status_feedback.values[0].name,
            "replicas"
        );
        assert_eq!(ManifestBundleStatus::status_json(&status), json.to_vec());
        assert!(!status_is_deleted(&status));
        assert_eq!(
            ManifestBundleStatus::status_json(&ManifestWorkStatus::default()),
            br#"{"conditions":[]}"#
        );
        let (from_go, _) =
            ManifestBundleStatus::status_from_json(br#"{"conditions":null,"resourceStatus":null}"#)
                .unwrap();
        assert_eq!(from_go, ManifestWorkStatus::default());
        let (_, relayed) = ManifestBundleStatus::status_from_json(
            br#"{"manifestBundle":{"manifests":[{"kind":"ConfigMap"}]},"conditions":[]}"#,
        )
        .unwrap();
        assert_eq!(relayed.unwrap().workload.manifests.len(), 1);
        let (deleted, _) = ManifestBundleStatus::status_from_json(
            br#"{"conditions":[{"type":"Deleted","status":"True","lastTransitionTime":"2025-12-16T06:00:17Z","reason":"ManifestsDeleted","message":""}]}"#,
        )
        .unwrap();
        assert!(status_is_deleted(&deleted));
    }

    #[test]
    fn typed_reads_say_what_is_wrong_and_where() {
        let err = ManifestBundleStatus::status_from_json(
            b"{\"conditions\":[{\"type\":\"Applied\",\"status\":\"Maybe\"}]}",
        )
        .unwrap_err();
        assert_eq!((err.kind, err.line), ("ManifestBundleStatus", 1));
        assert!(err.detail.contains("Maybe"), "{err}");
        let err =
            ManifestBundle::spec_from_json(b"{\"deleteOption\":{\"propagationPolicy\":\"Never\"}}")
                .unwrap_err();
        assert!(err.detail.contains("Never"), "{err}");
    }

    #[test]
    fn malformed_payloads_say_where() {
        let err = ManifestBundle::from_json(b"{\n \"manifests\": 5}").unwrap_err();
        assert_eq!((err.kind, err.line), ("ManifestBundle", 2));
        assert!(
            err.to_string()
                .starts_with("invalid ManifestBundle payload at line 2"),
            "{err}"
        );
        assert!(ManifestBundleStatus::from_json(b"not json").is_err());
    }
}
