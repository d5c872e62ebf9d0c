//! `statushash`: lowercase hex SHA-256 of a ManifestWork status serialised as Go's
//! `json.Marshal` serialises the unstructured `.status` map (as OCM's sdk-go hashes it): object
//! keys sorted, no whitespace, and Go's string escaping, which also escapes `<`, `>`, `&`,
//! U+2028 and U+2029. Matching it byte for byte lets a source keep the hashes a Go agent reported,
//! so replacing a Go agent by ours costs no full status resend.

use std::fmt::Write as _;

use serde_json::Value;

/// The status hash of a status value.
pub fn status_hash(status: &Value) -> String {
    let mut json = String::new();
    write_go_json(&mut json, status);
    let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// `value` as Go's `encoding/json` would marshal the equivalent `map[string]interface{}`.
pub fn write_go_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's map may keep insertion order (its `preserve_order` feature); Go sorts.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_go_json(out, item);
            }
            out.push('}');
        }
    }
}

/// Integers as integers; floats as Go's encoding/json writes them: shortest form, exponent form
/// below 1e-6 and from 1e21 (`1e+21`, `1.5e-7`).
fn write_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        let abs = f.abs();
        if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
            let formatted = format!("{f:e}");
            let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
            // strconv writes at least two exponent digits; encoding/json then trims a negative
            // exponent's leading zero ("e-07" becomes "e-7").
            match exponent.strip_prefix('-') {
                Some(digits) => {
                    let _ = write!(out, "{mantissa}e-{digits}");
                }
                None => {
                    let _ = write!(out, "{mantissa}e+{exponent:0>2}");
                }
            }
        } else {
            let _ = write!(out, "{f}");
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_json(value: &Value) -> String {
        let mut out = String::new();
        write_go_json(&mut out, value);
        out
    }

    #[test]
    fn objects_are_sorted_compact_and_escaped_as_go_marshals_them() {
        let value = serde_json::json!({
            "z": 1, "a": [true, null, -2], "m": {"b": "x<y>&z", "a": "line\nbreak\u{1}\u{2028}"}
        });
        assert_eq!(
            go_json(&value),
            r#"{"a":[true,null,-2],"m":{"a":"line\nbreak\u0001\u2028","b":"x\u003cy\u003e\u0026z"},"z":1}"#
        );
    }

    #[test]
    fn floats_follow_gos_shortest_formatting() {
        let cases = [
            (1.5, "1.5"),
            (100.0, "100"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (2.5e-12, "2.5e-12"),
            (0.000_001, "0.000001"),
        ];
        for (f, expected) in cases {
            assert_eq!(go_json(&serde_json::json!(f)), expected, "{f}");
        }
    }

    #[test]
    fn the_hash_is_lowercase_hex_sha256_of_that_serialisation() {
        // sha256("{}") — the status of a work with no conditions yet.
        assert_eq!(
            status_hash(&serde_json::json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let a = serde_json::json!({"conditions": [{"type": "Applied", "status": "True"}]});
        let b: Value =
            serde_json::from_str(r#"{"conditions":[{"status":"True","type":"Applied"}]}"#).unwrap();
        assert_eq!(
            status_hash(&a),
            status_hash(&b),
            "key order does not matter"
        );
        assert_ne!(
            status_hash(&a),
            status_hash(&serde_json::json!({"conditions": []}))
        );
    }
}
