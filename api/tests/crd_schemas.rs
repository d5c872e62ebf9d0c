//! Our CRDs against OCM's published v1.3.0 schemas (the CRD YAML in OCM's Go module
//! open-cluster-management.io/api v1.3.0, which `cargo xtask k8s-bins` copies into the cache;
//! `OCM_REFERENCE_CRDS` points elsewhere): same group, kind, names, scope, versions,
//! subresources and printer columns, and every upstream field path present with the
//! same type and the same validation — so our apiserver admits and defaults exactly what OCM's
//! does. And the YAML in `deploy/crds/` is what the types generate
//! (`OCM_UPDATE_CRDS=1 cargo test -p ocm-api --test crd_schemas` rewrites it).

#![allow(clippy::unwrap_used)] // a failing comparison shows the value

use std::path::{Path, PathBuf};

use serde_json::Value;

use ocm_api::crds;

/// Missing reference CRDs fail every test that needs them, naming the command that fetches them.
fn reference_dir() -> PathBuf {
    ocm_testbins::assets::reference_crds_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// The upstream CRD for `group`/`plural`, as JSON. (File names carry a prefix of their own, so
/// the CRDs are matched by content.)
fn upstream(group: &str, plural: &str) -> Value {
    let dir = reference_dir();
    let mut found: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".crd.yaml"))
        .map(|p| {
            let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, crd)
        })
        .filter(|(_, crd)| {
            crd["spec"]["group"] == group && crd["spec"]["names"]["plural"] == plural
        })
        .collect();
    // Kinds published in two versions (add-ons) have a file per version; the newest sorts last.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
        .pop()
        .unwrap_or_else(|| panic!("no upstream CRD for {plural}.{group} in {}", dir.display()))
        .1
}

/// Validation keywords that must be equal where upstream sets them.
const SAME_IF_SET: &[&str] = &[
    "format",
    "default",
    "maxLength",
    "minLength",
    "pattern",
    "minimum",
    "maximum",
    "maxItems",
    "minItems",
    "maxProperties",
    "nullable",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
];

/// Where our CRDs deliberately differ from OCM's, each exactly as the comparison reports it, so
/// that any other difference, a changed value here, or one that disappears fails the test.
const KNOWN_DIFFERENCES: &[&str] = &[
    // Issue 5: the agent reports raw JSON feedback up to a configurable cap (64 KiB by default,
    // `work::v1::DEFAULT_MAX_JSON_RAW_LENGTH`) where OCM's agent stops at 1 KiB, so the hub must
    // be able to store such values. The CRD still bounds them, at the most an agent may be
    // configured to send (`work::v1::MAX_JSON_RAW_LENGTH`): looser than OCM's, never stricter.
    "ManifestWork: .status.resourceStatus.manifests[].statusFeedback.values[].fieldValue.jsonRaw: maxLength 1048576 (upstream 1024)",
];

/// Everything that differs between `ours` and `upstream` below `path`.
fn compare_schema(path: &str, ours: &Value, upstream: &Value, problems: &mut Vec<String>) {
    let int_or_string = upstream.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !int_or_string && ours.get("type") != upstream.get("type") {
        problems.push(format!(
            "{path}: type {} (upstream {})",
            show(ours.get("type")),
            show(upstream.get("type"))
        ));
    }
    for key in SAME_IF_SET {
        if let Some(expected) = upstream.get(*key)
            && !ours.get(*key).is_some_and(|actual| same(actual, expected))
        {
            problems.push(format!(
                "{path}: {key} {} (upstream {expected})",
                show(ours.get(*key))
            ));
        }
    }
    if let Some(expected) = upstream.get("enum") {
        let set = |v: &Value| {
            let mut items: Vec<String> = v
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            items.sort();
            items
        };
        if ours.get("enum").map(set) != Some(set(expected)) {
            problems.push(format!(
                "{path}: enum {} (upstream {expected})",
                show(ours.get("enum"))
            ));
        }
    }
    // We must never refuse what OCM admits: whatever we require, upstream requires too.
    let required = |v: &Value| -> Vec<String> {
        v.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let upstream_required = required(upstream);
    for field in required(ours) {
        if !upstream_required.contains(&field) {
            problems.push(format!("{path}: requires {field:?}, upstream does not"));
        }
    }
    let empty = serde_json::Map::new();
    let properties = |v: &Value| v.get("properties").and_then(Value::as_object).cloned();
    let ours_properties = properties(ours).unwrap_or_else(|| empty.clone());
    if let Some(upstream_properties) = properties(upstream) {
        for (name, expected) in &upstream_properties {
            let child = format!("{path}.{name}");
            match ours_properties.get(name) {
                // ObjectMeta is the apiserver's; both sides only say "object".
                Some(_) if child == ".metadata" => {}
                Some(actual) => compare_schema(&child, actual, expected, problems),
                None => problems.push(format!("{child}: missing")),
            }
        }
        for name in ours_properties.keys() {
            if !upstream_properties.contains_key(name) {
                problems.push(format!("{path}.{name}: not in upstream"));
            }
        }
    } else if !ours_properties.is_empty()
        && upstream
            .get("x-kubernetes-preserve-unknown-fields")
            .is_none()
    {
        problems.push(format!("{path}: has properties, upstream has none"));
    }
    for (key, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
        match (ours.get(key), upstream.get(key)) {
            (Some(actual), Some(expected)) if expected.is_object() => {
                compare_schema(&format!("{path}{suffix}"), actual, expected, problems);
            }
            (None, Some(expected)) if expected.is_object() => {
                problems.push(format!("{path}{suffix}: missing"));
            }
            _ => {}
        }
    }
}

/// Equal JSON, with numbers compared by value: the CRD types hold `minimum` as a float, so `0`
/// comes out as `0.0`.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(none)".to_owned(), Value::to_string)
}

/// Printer columns as `kubectl get` shows them: name, type and JSONPath.
fn columns(version: &Value) -> Vec<(String, String, String)> {
    version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|columns| {
            columns
                .iter()
                .map(|c| {
                    let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    (field("name"), field("type"), field("jsonPath"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn compare_crd(ours: &Value, upstream: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let (o, u) = (&ours["spec"], &upstream["spec"]);
    for key in ["group", "scope"] {
        if o[key] != u[key] {
            problems.push(format!("spec.{key}: {} (upstream {})", o[key], u[key]));
        }
    }
    for key in ["kind", "listKind", "plural", "singular", "shortNames"] {
        let (ours_names, upstream_names) = (&o["names"][key], &u["names"][key]);
        if ours_names != upstream_names {
            problems.push(format!(
                "spec.names.{key}: {ours_names} (upstream {upstream_names})"
            ));
        }
    }
    let versions = |spec: &Value| spec["versions"].as_array().cloned().unwrap_or_default();
    for expected in versions(u) {
        let name = expected["name"].as_str().unwrap_or_default().to_owned();
        let Some(actual) = versions(o)
            .into_iter()
            .find(|v| v["name"] == expected["name"])
        else {
            problems.push(format!("version {name}: missing"));
            continue;
        };
        for key in ["served", "storage", "subresources"] {
            if actual.get(key) != expected.get(key) {
                problems.push(format!(
                    "version {name}: {key} {} (upstream {})",
                    show(actual.get(key)),
                    show(expected.get(key))
                ));
            }
        }
        if columns(&actual) != columns(&expected) {
            problems.push(format!(
                "version {name}: printer columns {:?} (upstream {:?})",
                columns(&actual),
                columns(&expected)
            ));
        }
        compare_schema(
            "",
            &actual["schema"]["openAPIV3Schema"],
            &expected["schema"]["openAPIV3Schema"],
            &mut problems,
        );
    }
    problems
}

#[test]
fn every_crd_matches_ocms_published_schema() {
    let mut problems = Vec::new();
    for (_, crd) in crds::all() {
        let ours = serde_json::to_value(&crd).unwrap();
        let reference = upstream(&crd.spec.group, &crd.spec.names.plural);
        for problem in compare_crd(&ours, &reference) {
            problems.push(format!("{}: {problem}", crd.spec.names.kind));
        }
    }
    assert!(
        problems == KNOWN_DIFFERENCES,
        "our CRDs differ from OCM's other than as KNOWN_DIFFERENCES says:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_comparison_notices_a_missing_field_a_changed_type_and_a_lost_enum() {
    let reference = upstream("cluster.open-cluster-management.io", "managedclusters");
    assert!(compare_crd(&reference, &reference).is_empty());
    let mut changed = reference.clone();
    let spec = &mut changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["properties"];
    spec.as_object_mut().unwrap().remove("hubAcceptsClient");
    spec["leaseDurationSeconds"]["type"] = Value::from("string");
    spec["taints"]["items"]["properties"]["effect"]
        .as_object_mut()
        .unwrap()
        .remove("enum");
    changed["spec"]["names"]["shortNames"] = serde_json::json!(["mcl"]);
    let problems = compare_crd(&changed, &reference);
    assert_eq!(
        problems,
        [
            "spec.names.shortNames: [\"mcl\"] (upstream [\"mcl\",\"mcls\"])",
            ".spec.hubAcceptsClient: missing",
            ".spec.leaseDurationSeconds: type \"string\" (upstream \"integer\")",
            ".spec.taints[].effect: enum (none) (upstream [\"NoSelect\",\"PreferNoSelect\",\"NoSelectIfNew\"])",
        ],
        "{problems:#?}"
    );
}

#[test]
fn the_comparison_notices_a_lost_embedded_resource_a_lost_rule_and_a_stricter_cap() {
    let reference = upstream("work.open-cluster-management.io", "manifestworks");
    assert!(compare_crd(&reference, &reference).is_empty());
    let mut changed = reference.clone();
    let root = &mut changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let spec = &mut root["spec"]["properties"];
    spec["workload"]["properties"]["manifests"]["items"]
        .as_object_mut()
        .unwrap()
        .remove("x-kubernetes-embedded-resource");
    spec["manifestConfigs"]["items"]["properties"]["conditionRules"]["items"]
        .as_object_mut()
        .unwrap()
        .remove("x-kubernetes-validations");
    root["status"]["properties"]["resourceStatus"]["properties"]["manifests"]["items"]["properties"]
        ["statusFeedback"]["properties"]["values"]["items"]["properties"]["fieldValue"]["properties"]
        ["jsonRaw"]["maxLength"] = Value::from(512);
    let problems = compare_crd(&changed, &reference);
    assert_eq!(
        problems,
        [
            ".spec.manifestConfigs[].conditionRules[]: x-kubernetes-validations (none) (upstream [{\"message\":\"Condition is required for CEL rules\",\"rule\":\"self.type != 'CEL' || self.condition != \\\"\\\"\"}])",
            ".spec.workload.manifests[]: x-kubernetes-embedded-resource (none) (upstream true)",
            ".status.resourceStatus.manifests[].statusFeedback.values[].fieldValue.jsonRaw: maxLength 512 (upstream 1024)",
        ],
        "{problems:#?}"
    );
}

#[test]
fn work_kinds_are_installed_where_ocm_installs_them() {
    let place = |plural: &str| {
        crds::all()
            .into_iter()
            .find(|(_, crd)| {
                crd.spec.group == "work.open-cluster-management.io"
                    && crd.spec.names.plural == plural
            })
            .map(|(place, _)| place)
    };
    assert_eq!(place("manifestworks"), Some(crds::Installed::Hub));
    assert_eq!(place("appliedmanifestworks"), Some(crds::Installed::Spoke));
}

#[test]
fn deploy_crds_are_what_the_types_generate() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let update = std::env::var_os("OCM_UPDATE_CRDS").is_some();
    let mut stale = Vec::new();
    for (place, crd) in crds::all() {
        let path = deploy.join(crds::file_name(place, &crd));
        let generated = format!(
            "# Generated from ocm-api's types; do not edit.\n# Regenerate: OCM_UPDATE_CRDS=1 cargo test -p ocm-api --test crd_schemas\n{}",
            serde_saphyr::to_string(&crd).unwrap()
        );
        if std::fs::read_to_string(&path).ok().as_deref() == Some(generated.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, generated).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "deploy/crds is stale ({}); regenerate with OCM_UPDATE_CRDS=1 cargo test -p ocm-api --test crd_schemas",
        stale.join(", ")
    );
}
