//! The manifests of `ocmctl create work -f`, read as kubectl reads them: YAML (or JSON) files of
//! one or more documents separated by `---`, a directory of `.yaml`, `.yml` and `.json` files
//! (not recursive, in name order), or `-` for standard input. Empty documents are skipped and a
//! `List` (`kind: List`, `ConfigMapList`, … with `items`) gives its items, as kubectl's
//! `Flatten`. Scalars follow YAML 1.1 as kubectl's reader does: `0644` is octal (420), `yes`
//! and `on` are booleans.

use std::io::Read;
use std::path::{Path, PathBuf};

use ocm_api::work::v1::Manifest;
use serde_json::Value;

/// What `-` stands for.
pub const STDIN: &str = "-";

#[derive(Debug, thiserror::Error)]
pub enum ManifestsError {
    #[error("reading manifests from {source_name}: {error}: check the path given to -f")]
    Read {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    #[error(
        "{source_name} is not valid YAML: {message}\nfix it (documents are separated by lines of `---`) and run the command again"
    )]
    Yaml {
        source_name: String,
        message: String,
    },
    #[error(
        "{sources} holds no Kubernetes objects: give -f a YAML file of one or more objects (documents separated by `---`), a directory of such files, or - for standard input"
    )]
    Empty { sources: String },
}

/// The manifests in `text`, in document order; `source_name` names it in errors.
pub fn parse(text: &str, source_name: &str) -> Result<Vec<Manifest>, ManifestsError> {
    let mut options = serde_saphyr::Options::default();
    // kubectl's YAML reader is YAML 1.1: `defaultMode: 0644` means 420, as users expect.
    options.legacy_octal_numbers = true;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            ManifestsError::Yaml {
                source_name: source_name.to_owned(),
                message: e.render_with_options(serde_saphyr::render_options! {
                    source_name: Some(source_name),
                }),
            }
        })?;
    let mut manifests = Vec::new();
    for document in documents {
        flatten(document, &mut manifests);
    }
    Ok(manifests)
}

/// A List's items (recursively), nothing for an empty document, otherwise the object itself.
fn flatten(document: Value, into: &mut Vec<Manifest>) {
    match document {
        Value::Null => {}
        Value::Object(mut object) if is_list(&object) => {
            if let Some(Value::Array(items)) = object.remove("items") {
                for item in items {
                    flatten(item, into);
                }
            }
        }
        other => into.push(Manifest::new(other)),
    }
}

fn is_list(object: &serde_json::Map<String, Value>) -> bool {
    object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"))
        && object.get("items").is_some_and(Value::is_array)
}

/// Reads every source of `-f` in order: files, directories (their `.yaml`, `.yml` and `.json`
/// files by name) and [`STDIN`], read from `stdin`. Finding no object at all is an error.
pub fn read(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Manifest>, ManifestsError> {
    let mut manifests = Vec::new();
    for path in paths {
        if path.as_os_str() == STDIN {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|error| ManifestsError::Read {
                    source_name: "standard input".to_owned(),
                    error,
                })?;
            manifests.extend(parse(&text, "standard input")?);
        } else if path.is_dir() {
            for file in directory_files(path)? {
                manifests.extend(parse(&read_file(&file)?, &file.display().to_string())?);
            }
        } else {
            manifests.extend(parse(&read_file(path)?, &path.display().to_string())?);
        }
    }
    if manifests.is_empty() {
        let sources: Vec<String> = paths
            .iter()
            .map(|p| match p.as_os_str() == STDIN {
                true => "standard input".to_owned(),
                false => p.display().to_string(),
            })
            .collect();
        return Err(ManifestsError::Empty {
            sources: sources.join(", "),
        });
    }
    Ok(manifests)
}

fn read_file(path: &Path) -> Result<String, ManifestsError> {
    std::fs::read_to_string(path).map_err(|error| ManifestsError::Read {
        source_name: path.display().to_string(),
        error,
    })
}

/// The manifest files of a directory, as kubectl picks them, in name order.
fn directory_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestsError> {
    let read_error = |error| ManifestsError::Read {
        source_name: dir.display().to_string(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let manifest_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if manifest_file && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn values(manifests: &[Manifest]) -> Vec<Value> {
        manifests.iter().map(|m| m.0.clone()).collect()
    }

    #[test]
    fn documents_are_split_in_order_and_empty_ones_skipped() {
        let text = "---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  key: |\n    line\n    --- not a separator inside a block\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 2\n...\n";
        let manifests = parse(text, "m.yaml").unwrap();
        assert_eq!(
            values(&manifests),
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                       "data": {"key": "line\n--- not a separator inside a block\n"}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 2}}),
            ]
        );
    }

    #[test]
    fn scalars_read_as_kubectl_reads_them() {
        let text = "kind: ConfigMap\nmode: 0644\nflag: yes\nquoted: \"0644\"\nversion: 1.10\nbig: 12345678901\n";
        let manifest = &parse(text, "m.yaml").unwrap()[0];
        assert_eq!(manifest.0["mode"], json!(420));
        assert_eq!(manifest.0["flag"], json!(true));
        assert_eq!(manifest.0["quoted"], json!("0644"));
        assert_eq!(manifest.0["version"], json!(1.1));
        assert_eq!(manifest.0["big"], json!(12_345_678_901_i64));
    }

    #[test]
    fn json_and_lists_are_read_too() {
        let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {"apiVersion": "v1", "kind": "SecretList", "items": [
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}}]}]}"#;
        let names: Vec<_> = parse(text, "m.json")
            .unwrap()
            .iter()
            .map(|m| m.name().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(names, ["a", "b"]);
        // A kind ending in List without items is an object like any other.
        let odd = parse("kind: AllowList\nmetadata: {name: x}\n", "m.yaml").unwrap();
        assert_eq!(odd.len(), 1);
    }

    #[test]
    fn broken_yaml_names_the_file_and_what_to_do() {
        let err = parse("kind: ConfigMap\nmetadata:\n  name: a\n bad: [\n", "m.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.yaml is not valid YAML: "), "{err}");
        assert!(err.contains("--> m.yaml:4:2"), "{err}");
        assert!(err.contains("`---`"), "{err}");
        let duplicate = parse("kind: A\nkind: B\n", "d.yaml")
            .unwrap_err()
            .to_string();
        assert!(duplicate.contains("d.yaml"), "{duplicate}");
    }

    #[test]
    fn files_directories_and_stdin_are_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("more");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("b.yaml"), "kind: B\n").unwrap();
        std::fs::write(sub.join("a.json"), r#"{"kind": "A"}"#).unwrap();
        std::fs::write(sub.join("notes.txt"), "kind: Ignored\n").unwrap();
        let single = dir.path().join("single.manifest");
        std::fs::write(&single, "kind: S\n---\nkind: T\n").unwrap();
        let mut stdin = std::io::Cursor::new("kind: In\n");
        let paths = [single, PathBuf::from(STDIN), sub];
        let kinds: Vec<_> = read(&paths, &mut stdin)
            .unwrap()
            .iter()
            .map(|m| m.kind().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(kinds, ["S", "T", "In", "A", "B"]);
    }

    #[test]
    fn nothing_to_read_is_an_error_naming_the_sources() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.yaml");
        std::fs::write(&empty, "---\n# nothing\n").unwrap();
        let err = read(
            &[empty.clone(), PathBuf::from(STDIN)],
            &mut std::io::empty(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(&format!(
                "{}, standard input holds no Kubernetes objects",
                empty.display()
            )),
            "{err}"
        );
        let missing = read(&[dir.path().join("nope.yaml")], &mut std::io::empty())
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("nope.yaml") && missing.contains("-f"),
            "{missing}"
        );
    }
}
