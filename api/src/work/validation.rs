//! The rules OCM's work webhook enforces on a ManifestWork, as a pure function the hub's
//! admission webhook (and an agent receiving a bundle) can call: at least one manifest, the
//! manifests' total size within a limit, each manifest an object with `apiVersion`, `kind` and
//! `metadata.name` and without `metadata.generateName`, and an executor service account when
//! the executor's type asks for one. Beyond OCM, two manifests naming the same resource
//! (group, kind, namespace, name) are refused, since one would silently overwrite the other.
//!
//! Every problem is reported, not only the first, each with its Kubernetes field path
//! (`spec.workload.manifests[2].metadata.name`).

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use super::v1::{ExecutorSubjectType, Manifest, ManifestWork, ManifestWorkSpec};

/// OCM's default limit on the manifests' total size: 500 KiB.
pub const DEFAULT_MAX_MANIFESTS_SIZE: usize = 500 * 1024;

/// The configurable bounds of validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most [`manifests_size`] may be, in bytes.
    pub max_manifests_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_manifests_size: DEFAULT_MAX_MANIFESTS_SIZE,
        }
    }
}

/// What is wrong with a field, in Kubernetes' terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorType {
    Required,
    Invalid,
    Forbidden,
    Duplicate,
    TooLong,
}

impl FieldErrorType {
    /// As a Kubernetes error message words it (`Required value`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Forbidden => "Forbidden",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
        }
    }

    /// The `reason` of a Kubernetes `StatusCause` (`FieldValueRequired`).
    pub const fn cause_type(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Forbidden => "FieldValueForbidden",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
        }
    }
}

impl fmt::Display for FieldErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one field: `spec.workload.manifests[2].metadata.name: Required value: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {kind}: {detail}")]
pub struct FieldError {
    /// The Kubernetes field path.
    pub field: String,
    pub kind: FieldErrorType,
    pub detail: String,
}

impl FieldError {
    fn new(field: impl Into<String>, kind: FieldErrorType, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind,
            detail: detail.into(),
        }
    }
}

/// Checks `work` as OCM's webhook does on create and update (the executor's `execute-as`
/// permission, which needs the API, aside).
pub fn validate(work: &ManifestWork, limits: &Limits) -> Result<(), Vec<FieldError>> {
    validate_spec(&work.spec, limits)
}

/// [`validate`] for a spec alone (a ManifestBundle an agent received carries no more).
pub fn validate_spec(spec: &ManifestWorkSpec, limits: &Limits) -> Result<(), Vec<FieldError>> {
    let mut errors = validate_manifests(&spec.workload.manifests, limits);
    if let Some(executor) = &spec.executor {
        match &executor.subject {
            None => errors.push(FieldError::new(
                "spec.executor.subject",
                FieldErrorType::Required,
                "an executor needs a subject",
            )),
            Some(subject)
                if subject.r#type == ExecutorSubjectType::ServiceAccount
                    && subject.service_account.is_none() =>
            {
                errors.push(FieldError::new(
                    "spec.executor.subject.serviceAccount",
                    FieldErrorType::Required,
                    "executor service account can not be nil",
                ));
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The problems of `spec.workload.manifests`, in field order: emptiness, total size, then each
/// manifest's own problems and duplicates by index.
pub fn validate_manifests(manifests: &[Manifest], limits: &Limits) -> Vec<FieldError> {
    const FIELD: &str = "spec.workload.manifests";
    let mut errors = Vec::new();
    if manifests.is_empty() {
        errors.push(FieldError::new(
            FIELD,
            FieldErrorType::Required,
            "workload manifests should not be empty",
        ));
        return errors;
    }
    let size = manifests_size(manifests);
    if size > limits.max_manifests_size {
        errors.push(FieldError::new(
            FIELD,
            FieldErrorType::TooLong,
            format!(
                "the size of manifests is {size} bytes which exceeds the {} limit",
                limits.max_manifests_size
            ),
        ));
    }
    let mut seen: HashMap<ResourceKey<'_>, usize> = HashMap::new();
    for (index, manifest) in manifests.iter().enumerate() {
        let path = format!("{FIELD}[{index}]");
        let Some(key) = check_manifest(&path, &manifest.0, &mut errors) else {
            continue;
        };
        match seen.get(&key) {
            Some(first) => errors.push(FieldError::new(
                path,
                FieldErrorType::Duplicate,
                format!("{key} is already {FIELD}[{first}]"),
            )),
            None => {
                seen.insert(key, index);
            }
        }
    }
    errors
}

/// Which resource a manifest names, for duplicate detection: the version does not count (one
/// object served in two versions is still one object).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ResourceKey<'a> {
    group: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

impl fmt::Display for ResourceKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        f.write_str(" ")?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        f.write_str(self.name)
    }
}

/// Records the problems of the manifest at `path`; its key when it names a resource fully.
fn check_manifest<'a>(
    path: &str,
    object: &'a Value,
    errors: &mut Vec<FieldError>,
) -> Option<ResourceKey<'a>> {
    if !object.is_object() {
        errors.push(FieldError::new(
            path,
            FieldErrorType::Invalid,
            "a manifest must be a Kubernetes object (a JSON object)",
        ));
        return None;
    }
    let api_version = required_string(object, "apiVersion", format!("{path}.apiVersion"), errors);
    let group = api_version.and_then(|v| group_of(v, path, errors));
    let kind = required_string(object, "kind", format!("{path}.kind"), errors);
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => &Value::Null,
        Some(metadata @ Value::Object(_)) => metadata,
        Some(_) => {
            errors.push(FieldError::new(
                format!("{path}.metadata"),
                FieldErrorType::Invalid,
                "metadata must be an object",
            ));
            return None;
        }
    };
    let name = required_string(metadata, "name", format!("{path}.metadata.name"), errors);
    let namespace = optional_string(
        metadata,
        "namespace",
        format!("{path}.metadata.namespace"),
        errors,
    );
    if optional_string(
        metadata,
        "generateName",
        format!("{path}.metadata.generateName"),
        errors,
    )
    .is_some_and(|generate_name| !generate_name.is_empty())
    {
        errors.push(FieldError::new(
            format!("{path}.metadata.generateName"),
            FieldErrorType::Forbidden,
            "generateName must not be set in manifest",
        ));
    }
    Some(ResourceKey {
        group: group?,
        kind: kind?,
        namespace: namespace?,
        name: name?,
    })
}

/// The group of `apiVersion` (`apps/v1`: `apps`; `v1`: the core group, ``).
fn group_of<'a>(api_version: &'a str, path: &str, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match api_version.split_once('/') {
        None => Some(""),
        Some((group, version)) if !version.contains('/') => Some(group),
        Some(_) => {
            errors.push(FieldError::new(
                format!("{path}.apiVersion"),
                FieldErrorType::Invalid,
                "apiVersion must be <group>/<version> or <version>",
            ));
            None
        }
    }
}

/// `parent[key]`, which must be a non-empty string.
fn required_string<'a>(
    parent: &'a Value,
    key: &str,
    field: String,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match optional_string(parent, key, field.clone(), errors)? {
        "" => {
            errors.push(FieldError::new(
                field,
                FieldErrorType::Required,
                format!("{key} must be set in manifest"),
            ));
            None
        }
        value => Some(value),
    }
}

/// `parent[key]` if it is a string, `""` if it is missing or null; `None` (and an error) for
/// anything else.
fn optional_string<'a>(
    parent: &'a Value,
    key: &str,
    field: String,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match parent.get(key) {
        None | Some(Value::Null) => Some(""),
        Some(Value::String(value)) => Some(value),
        Some(_) => {
            errors.push(FieldError::new(
                field,
                FieldErrorType::Invalid,
                format!("{key} must be a string"),
            ));
            None
        }
    }
}

/// The manifests' size as OCM's webhook measures it: the sum of each manifest's protobuf size
/// (`Manifest.Size()`: the raw JSON inside two length-delimited frames), the raw JSON being
/// the object as the apiserver hands it over — compact, with Go's escaping of `<`, `>`, `&`,
/// U+2028 and U+2029. (Go may also write a float differently, e.g. `1e+21` for `1e21`; such
/// numbers are rare in manifests and are counted as written here.)
pub fn manifests_size(manifests: &[Manifest]) -> usize {
    manifests
        .iter()
        .map(|m| {
            let raw = if m.0.is_null() {
                0 // a null RawExtension has no Raw field at all
            } else {
                framed(go_json_len(&m.0))
            };
            framed(raw)
        })
        .sum()
}

/// A protobuf length-delimited field of `len` bytes: tag, length varint, bytes.
fn framed(len: usize) -> usize {
    1 + varint_len(len) + len
}

fn varint_len(mut n: usize) -> usize {
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes
}

/// The length of `value` as Go's `encoding/json` writes it.
fn go_json_len(value: &Value) -> usize {
    let mut counter = ByteCounter(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0 + go_escape_extra(value)
}

/// How many more bytes Go's HTML-safe escaping takes than serde_json's: `\u003c` for `<`, `>`,
/// `&` (5 more each) and `\u2028` for U+2028, U+2029 (3 more each).
fn go_escape_extra(value: &Value) -> usize {
    fn in_str(s: &str) -> usize {
        s.chars()
            .map(|c| match c {
                '<' | '>' | '&' => 5,
                '\u{2028}' | '\u{2029}' => 3,
                _ => 0,
            })
            .sum()
    }
    match value {
        Value::String(s) => in_str(s),
        Value::Array(items) => items.iter().map(go_escape_extra).sum(),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| in_str(k) + go_escape_extra(v))
            .sum(),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::work::v1::{
        ManifestWorkExecutor, ManifestWorkExecutorSubject, ManifestWorkSubjectServiceAccount,
        ManifestsTemplate,
    };

    fn deployment(namespace: &str, name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"replicas": 1}})
    }

    fn work(manifests: Vec<Value>) -> ManifestWork {
        ManifestWork::new(
            "w",
            ManifestWorkSpec {
                workload: ManifestsTemplate {
                    manifests: manifests.into_iter().map(Manifest::new).collect(),
                },
                ..ManifestWorkSpec::default()
            },
        )
    }

    fn errors(work: &ManifestWork) -> Vec<String> {
        validate(work, &Limits::default())
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_valid_work_passes() {
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                         "metadata": {"name": "foos.example.com"}});
        let work = work(vec![namespace, crd, deployment("team", "web")]);
        assert_eq!(validate(&work, &Limits::default()), Ok(()));
    }

    #[test]
    fn an_empty_workload_is_refused() {
        assert_eq!(
            errors(&work(vec![])),
            ["spec.workload.manifests: Required value: workload manifests should not be empty"]
        );
    }

    #[test]
    fn each_manifest_needs_api_version_kind_and_name_and_no_generate_name() {
        let manifests = vec![
            deployment("default", "ok"),
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default"}}),
            json!({"apiVersion": "v1", "kind": "", "metadata": {"name": ""}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}),
            json!({"apiVersion": "v1", "kind": "Pod"}),
            json!("not an object"),
            json!({"apiVersion": 1, "kind": "Pod", "metadata": {"name": "p", "namespace": 3}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": []}),
            json!({"apiVersion": "a/b/c", "kind": "Pod", "metadata": {"name": "p", "generateName": ""}}),
        ];
        assert_eq!(
            errors(&work(manifests)),
            [
                "spec.workload.manifests[1].apiVersion: Required value: apiVersion must be set in manifest",
                "spec.workload.manifests[2].metadata.name: Required value: name must be set in manifest",
                "spec.workload.manifests[3].kind: Required value: kind must be set in manifest",
                "spec.workload.manifests[3].metadata.name: Required value: name must be set in manifest",
                "spec.workload.manifests[4].metadata.name: Required value: name must be set in manifest",
                "spec.workload.manifests[4].metadata.generateName: Forbidden: generateName must not be set in manifest",
                "spec.workload.manifests[5].metadata.name: Required value: name must be set in manifest",
                "spec.workload.manifests[6]: Invalid value: a manifest must be a Kubernetes object (a JSON object)",
                "spec.workload.manifests[7].apiVersion: Invalid value: apiVersion must be a string",
                "spec.workload.manifests[7].metadata.namespace: Invalid value: namespace must be a string",
                "spec.workload.manifests[8].metadata: Invalid value: metadata must be an object",
                "spec.workload.manifests[9].apiVersion: Invalid value: apiVersion must be <group>/<version> or <version>",
            ]
        );
    }

    #[test]
    fn field_errors_carry_path_type_and_kubernetes_cause() {
        let refused = validate(
            &work(vec![json!({"apiVersion": "v1", "kind": "Pod"})]),
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            refused,
            [FieldError {
                field: "spec.workload.manifests[0].metadata.name".into(),
                kind: FieldErrorType::Required,
                detail: "name must be set in manifest".into(),
            }]
        );
        assert_eq!(refused[0].kind.cause_type(), "FieldValueRequired");
        assert_eq!(
            FieldErrorType::Duplicate.cause_type(),
            "FieldValueDuplicate"
        );
        assert_eq!(FieldErrorType::TooLong.to_string(), "Too long");
    }

    #[test]
    fn two_manifests_naming_one_resource_are_refused_whatever_their_versions() {
        let manifests = vec![
            deployment("default", "web"),
            deployment("other", "web"),    // another namespace
            deployment("default", "web2"), // another name
            json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
                   "metadata": {"name": "web2", "namespace": "default"}}), // another group
            json!({"apiVersion": "apps/v1beta2", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "default"}}), // duplicate of [0]
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}), // of [5]
            deployment("default", "web"), // of [0] again
        ];
        assert_eq!(
            errors(&work(manifests)),
            [
                "spec.workload.manifests[4]: Duplicate value: Deployment.apps default/web is already spec.workload.manifests[0]",
                "spec.workload.manifests[6]: Duplicate value: Namespace web is already spec.workload.manifests[5]",
                "spec.workload.manifests[7]: Duplicate value: Deployment.apps default/web is already spec.workload.manifests[0]",
            ]
        );
    }

    /// A ConfigMap `name` whose compact JSON is exactly `len` bytes.
    fn config_map_of_json_len(name: &str, len: usize) -> Value {
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": name}, "data": {"k": ""}});
        let base = serde_json::to_vec(&object).unwrap().len();
        object["data"]["k"] = Value::from("x".repeat(len - base));
        assert_eq!(serde_json::to_vec(&object).unwrap().len(), len);
        object
    }

    #[test]
    fn size_is_ocms_protobuf_size_of_the_raw_json() {
        // 100 bytes of JSON: framed as RawExtension (1 + 1 + 100), then as Manifest (1 + 1 + 102).
        let small = Manifest::new(config_map_of_json_len("c", 100));
        assert_eq!(manifests_size(std::slice::from_ref(&small)), 104);
        // 200 bytes need two-byte length varints: 1 + 2 + 200 = 203, then 1 + 2 + 203 = 206.
        let larger = Manifest::new(config_map_of_json_len("c", 200));
        assert_eq!(manifests_size(&[small, larger]), 104 + 206);
        // Go escapes `<`, `>`, `&` as \u003c… (6 bytes, not 1) and U+2028 as \u2028 (6, not 3).
        let escaped = Manifest::new(json!({"a<": "&>\u{2028}"}));
        let go_json = r#"{"a\u003c":"\u0026\u003e\u2028"}"#;
        assert_eq!(manifests_size(&[escaped]), go_json.len() + 4);
        // A null manifest has no raw bytes at all: only the outer frame.
        assert_eq!(manifests_size(&[Manifest::new(Value::Null)]), 2);
    }

    #[test]
    fn the_total_size_limit_is_inclusive_and_configurable() {
        let two = work(vec![
            config_map_of_json_len("a", 300),
            config_map_of_json_len("b", 400),
        ]);
        let size = manifests_size(&two.spec.workload.manifests);
        assert_eq!(size, (1 + 2 + 303) + (1 + 2 + 403));
        let at = Limits {
            max_manifests_size: size,
        };
        assert_eq!(validate(&two, &at), Ok(()));
        let below = Limits {
            max_manifests_size: size - 1,
        };
        assert_eq!(
            validate(&two, &below)
                .unwrap_err()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [format!(
                "spec.workload.manifests: Too long: the size of manifests is {size} bytes which exceeds the {} limit",
                size - 1
            )]
        );
    }

    #[test]
    fn the_default_limit_is_ocms_500_kib() {
        assert_eq!(Limits::default().max_manifests_size, 512_000);
        let big = work(vec![config_map_of_json_len("c", 512_000)]);
        assert_eq!(
            errors(&big),
            [
                "spec.workload.manifests: Too long: the size of manifests is 512008 bytes which exceeds the 512000 limit"
            ]
        );
        // Oversized manifests are still checked one by one.
        let mut broken = config_map_of_json_len("c", 512_000);
        broken["metadata"]["name"] = Value::from("");
        assert_eq!(
            errors(&work(vec![broken])),
            [
                "spec.workload.manifests: Too long: the size of manifests is 512007 bytes which exceeds the 512000 limit",
                "spec.workload.manifests[0].metadata.name: Required value: name must be set in manifest",
            ]
        );
    }

    #[test]
    fn an_executor_must_name_its_service_account() {
        let with = |subject| {
            let mut work = work(vec![deployment("default", "web")]);
            work.spec.executor = Some(ManifestWorkExecutor { subject });
            errors(&work)
        };
        let subject = |service_account| ManifestWorkExecutorSubject {
            r#type: ExecutorSubjectType::ServiceAccount,
            service_account,
        };
        assert_eq!(
            with(Some(subject(Some(ManifestWorkSubjectServiceAccount {
                namespace: "ns".into(),
                name: "sa".into(),
            })))),
            Vec::<String>::new()
        );
        assert_eq!(
            with(Some(subject(None))),
            [
                "spec.executor.subject.serviceAccount: Required value: executor service account can not be nil"
            ]
        );
        assert_eq!(
            with(None),
            ["spec.executor.subject: Required value: an executor needs a subject"]
        );
    }
}
