//! Hand-written schemas where the derived ones lack validation OCM's CRDs carry, and the last
//! touches that make a generated CRD say what OCM's says.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use schemars::{Schema, SchemaGenerator, json_schema};

/// A resource quantity, as Kubernetes validates it.
const QUANTITY: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// `map[ResourceName]resource.Quantity` (capacity, allocatable).
pub(crate) fn resource_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,
            "x-kubernetes-int-or-string": true
        }
    })
}

/// `metav1.LabelSelector` with its merge semantics (atomic map and lists).
pub(crate) fn label_selector(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchExpressions": {
                "type": "array",
                "x-kubernetes-list-type": "atomic",
                "items": {
                    "type": "object",
                    "required": ["key", "operator"],
                    "properties": {
                        "key": {"type": "string"},
                        "operator": {"type": "string"},
                        "values": {
                            "type": "array",
                            "x-kubernetes-list-type": "atomic",
                            "items": {"type": "string"}
                        }
                    }
                }
            },
            "matchLabels": {
                "type": "object",
                "additionalProperties": {"type": "string"}
            }
        }
    })
}

/// What kube-derive leaves out and OCM's CRDs say, applied to every version:
/// - `spec` is not required (OCM admits an object without one) and defaults to `{}`, so every
///   stored object has one and our typed clients can always read it;
/// - `apiVersion`, `kind` and `metadata` are listed, as `kubectl explain` shows them;
/// - `listKind` is spelled out (the apiserver would default it to the same).
pub(crate) fn as_ocm_publishes(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        if let Some(required) = &mut root.required {
            required.retain(|field| field != "spec");
            if required.is_empty() {
                root.required = None;
            }
        }
        let properties = root.properties.get_or_insert_with(Default::default);
        if let Some(spec) = properties.get_mut("spec")
            && spec.default.is_none()
        {
            spec.default = Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                    serde_json::json!({}),
                ),
            );
        }
        for (name, schema_type, description) in [
            (
                "apiVersion",
                "string",
                "APIVersion defines the versioned schema of this representation of an object.",
            ),
            (
                "kind",
                "string",
                "Kind is a string value representing the REST resource this object represents.",
            ),
            ("metadata", "object", ""),
        ] {
            properties
                .entry(name.to_owned())
                .or_insert_with(|| JSONSchemaProps {
                    type_: Some(schema_type.to_owned()),
                    description: (!description.is_empty()).then(|| description.to_owned()),
                    ..JSONSchemaProps::default()
                });
        }
    }
    crd
}
