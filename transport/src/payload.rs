//! The JSON payloads of manifestbundle events (ocm-wire-protocol.md §4.1, §4.2): the spec a hub
//! sends (`ManifestBundle`) and the status an agent reports (`ManifestBundleStatus`).
//!
//! The sub-objects — delete option, manifest configs, executor, conditions, resource status —
//! are exactly OCM's `work.open-cluster-management.io/v1` API JSON. They stay JSON values here,
//! carried through untouched (unknown fields included), until the work API types exist
//! (issue 5); this module pins the envelope: key names (note `executer`), which keys are always
//! present, and that Go's `null` for an empty list is accepted.

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
            c.get("type") == Some(&"Deleted".into()) && c.get("status") == Some(&"True".into())
        })
    }
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
