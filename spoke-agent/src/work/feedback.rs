//! Status feedback (OCM's work agent's status feedback): values read from an applied object and
//! sent back in the ManifestWork's status — by OCM's WellKnownStatus table or by the work's own
//! JSONPaths. Pure: an object in, values (or the reason there are none) out.
//!
//! Paths are Kubernetes JSONPath as OCM writes them — `.status.readyReplicas`,
//! `.status.conditions[?(@.type=="Ready")].status` — evaluated from the object's root. A path
//! that finds nothing gives no value; one scalar gives an Integer, String or Boolean; several
//! results, a list or a map give raw JSON up to a size cap (OCM: 1 KiB behind a feature gate;
//! ocm-rs: on, 64 KiB by default).

use jsonpath_rust::JsonPath as _;
use serde_json::Value;

/// A value fed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Integer(i64),
    String(String),
    Boolean(bool),
    /// A list, a map or several results, as JSON text.
    JsonRaw(String),
}

/// One named JSONPath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedPath<'a> {
    pub name: &'a str,
    pub path: &'a str,
}

/// OCM's WellKnownStatus table, by (group, version, kind).
pub fn well_known(group: &str, version: &str, kind: &str) -> Option<&'static [NamedPath<'static>]> {
    const DEPLOYMENT: &[NamedPath<'static>] = &[
        NamedPath {
            name: "ReadyReplicas",
            path: ".status.readyReplicas",
        },
        NamedPath {
            name: "Replicas",
            path: ".status.replicas",
        },
        NamedPath {
            name: "AvailableReplicas",
            path: ".status.availableReplicas",
        },
    ];
    const DAEMON_SET: &[NamedPath<'static>] = &[
        NamedPath {
            name: "NumberReady",
            path: ".status.numberReady",
        },
        NamedPath {
            name: "DesiredNumberScheduled",
            path: ".status.desiredNumberScheduled",
        },
        NamedPath {
            name: "NumberAvailable",
            path: ".status.numberAvailable",
        },
    ];
    const JOB: &[NamedPath<'static>] = &[
        NamedPath {
            name: "JobComplete",
            path: r#".status.conditions[?(@.type=="Complete")].status"#,
        },
        NamedPath {
            name: "JobSucceeded",
            path: ".status.succeeded",
        },
    ];
    const POD: &[NamedPath<'static>] = &[
        NamedPath {
            name: "PodReady",
            path: r#".status.conditions[?(@.type=="Ready")].status"#,
        },
        NamedPath {
            name: "PodPhase",
            path: ".status.phase",
        },
    ];
    match (group, version, kind) {
        ("apps", "v1", "Deployment") => Some(DEPLOYMENT),
        ("apps", "v1", "DaemonSet") => Some(DAEMON_SET),
        ("batch", "v1", "Job") => Some(JOB),
        ("", "v1", "Pod") => Some(POD),
        _ => None,
    }
}

/// Why a path gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    #[error("failed to parse json path {path} of {name}: {detail}")]
    Parse {
        name: String,
        path: String,
        detail: String,
    },
    #[error("the value of {name} is a number that is not an integer ({value})")]
    NotAnInteger { name: String, value: String },
    #[error(
        "the length of the json raw value of {name} is {length} bytes, larger than the maximum {limit}"
    )]
    TooLong {
        name: String,
        length: usize,
        limit: usize,
    },
}

/// Evaluates `path` (Kubernetes JSONPath, from the object root) on `object`: `Ok(None)` when it
/// finds nothing (or only `null`).
pub fn evaluate(
    object: &Value,
    named: NamedPath<'_>,
    max_raw: usize,
) -> Result<Option<Scalar>, FeedbackError> {
    let query = to_rfc9535(named.path);
    let found = object.query(&query).map_err(|e| FeedbackError::Parse {
        name: named.name.to_owned(),
        path: named.path.to_owned(),
        detail: e.to_string(),
    })?;
    let value = match found.as_slice() {
        [] => return Ok(None),
        [one] => (*one).clone(),
        many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
    };
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(Scalar::Boolean(b))),
        Value::String(s) => Ok(Some(Scalar::String(s))),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(Some(Scalar::Integer(i))),
            None => Err(FeedbackError::NotAnInteger {
                name: named.name.to_owned(),
                value: n.to_string(),
            }),
        },
        raw @ (Value::Array(_) | Value::Object(_)) => {
            let text = raw.to_string();
            if text.len() > max_raw {
                return Err(FeedbackError::TooLong {
                    name: named.name.to_owned(),
                    length: text.len(),
                    limit: max_raw,
                });
            }
            Ok(Some(Scalar::JsonRaw(text)))
        }
    }
}

/// Kubernetes JSONPath (`.a.b`, optionally in `{…}`, `[?(@.x=="y")]`) as RFC 9535 (`$.a.b`,
/// `[?(@.x=="y")]` is valid there too).
fn to_rfc9535(path: &str) -> String {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path)
        .trim();
    if path.starts_with('$') {
        path.to_owned()
    } else if path.starts_with('.') || path.starts_with('[') {
        format!("${path}")
    } else {
        format!("$.{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path<'a>(name: &'a str, path: &'a str) -> NamedPath<'a> {
        NamedPath { name, path }
    }

    fn deployment() -> Value {
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3},
            "status": {
                "replicas": 3,
                "readyReplicas": 2,
                "conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
                ],
                "ratio": 0.5,
                "empty": null
            }
        })
    }

    #[test]
    fn scalars_come_back_typed_and_missing_paths_give_nothing() {
        let object = deployment();
        let raw = 64 * 1024;
        assert_eq!(
            evaluate(&object, path("r", ".status.readyReplicas"), raw),
            Ok(Some(Scalar::Integer(2)))
        );
        assert_eq!(
            evaluate(&object, path("n", "{.metadata.name}"), raw),
            Ok(Some(Scalar::String("web".into())))
        );
        assert_eq!(
            evaluate(
                &object,
                path("a", r#".status.conditions[?(@.type=="Available")].status"#),
                raw
            ),
            Ok(Some(Scalar::String("True".into())))
        );
        assert_eq!(
            evaluate(&object, path("x", ".status.availableReplicas"), raw),
            Ok(None)
        );
        assert_eq!(evaluate(&object, path("e", ".status.empty"), raw), Ok(None));
        assert!(matches!(
            evaluate(&object, path("f", ".status.ratio"), raw),
            Err(FeedbackError::NotAnInteger { .. })
        ));
        assert!(matches!(
            evaluate(&object, path("bad", ".status[?(@.x=="), raw),
            Err(FeedbackError::Parse { .. })
        ));
    }

    #[test]
    fn lists_maps_and_several_results_are_raw_json_within_the_cap() {
        let object = deployment();
        assert_eq!(
            evaluate(&object, path("labels", ".metadata.labels"), 1024),
            Ok(Some(Scalar::JsonRaw(r#"{"app":"web"}"#.into())))
        );
        assert_eq!(
            evaluate(&object, path("types", ".status.conditions[*].type"), 1024),
            Ok(Some(Scalar::JsonRaw(
                r#"["Available","Progressing"]"#.into()
            )))
        );
        assert!(matches!(
            evaluate(&object, path("conditions", ".status.conditions"), 16),
            Err(FeedbackError::TooLong { limit: 16, .. })
        ));
    }

    #[test]
    fn the_well_known_table_is_ocms() {
        let object = deployment();
        let values: Vec<_> = well_known("apps", "v1", "Deployment")
            .unwrap_or_default()
            .iter()
            .map(|p| (p.name, evaluate(&object, *p, 1024)))
            .collect();
        assert_eq!(
            values,
            [
                ("ReadyReplicas", Ok(Some(Scalar::Integer(2)))),
                ("Replicas", Ok(Some(Scalar::Integer(3)))),
                ("AvailableReplicas", Ok(None)),
            ]
        );
        let job = serde_json::json!({"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
        let job_values: Vec<_> = well_known("batch", "v1", "Job")
            .unwrap_or_default()
            .iter()
            .map(|p| evaluate(&job, *p, 1024))
            .collect();
        assert_eq!(
            job_values,
            [
                Ok(Some(Scalar::String("True".into()))),
                Ok(Some(Scalar::Integer(1)))
            ]
        );
        assert!(well_known("", "v1", "Pod").is_some());
        assert!(well_known("apps", "v1", "DaemonSet").is_some());
        assert!(well_known("", "v1", "ConfigMap").is_none());
    }
}
