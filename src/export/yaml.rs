//! A small block-style YAML writer for the Kubernetes export (no YAML crate on the launch
//! path for one command). Strings are written as JSON strings, which YAML 1.2 reads as
//! double-quoted scalars, so no value can be mistaken for a number, bool or null.

use serde_json::Value;

/// One YAML document from a JSON value (an object at the top).
pub fn document(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, 0, &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => false,
    }
}

fn write_value(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, val) in o {
                if is_block(val) {
                    out.push_str(&format!("{pad}{k}:\n"));
                    // Sequences under a key are indented like kubectl does.
                    write_value(val, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}{k}: {}\n", scalar(val)));
                }
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                if is_block(item) {
                    let mut inner = String::new();
                    write_value(item, indent + 2, &mut inner);
                    // "- " replaces the first line's indentation.
                    let first = inner.trim_start().to_string();
                    out.push_str(&format!("{pad}- {first}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_maps_and_sequences() {
        let v = json!({"a": 1, "b": {"c": "x", "d": [1, {"e": true, "f": []}]}, "g": "18789"});
        assert_eq!(
            document(&v),
            "a: 1\nb:\n  c: \"x\"\n  d:\n    - 1\n    - e: true\n      f: []\ng: \"18789\"\n"
        );
    }
}
