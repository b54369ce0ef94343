//! The canonical JSON writer: sorted keys at every level, two-space indentation, serde_json's shortest
//! round-trip float formatting (ryu), `\n` line ends and a trailing newline. Keys are sorted here, not by
//! relying on serde_json's map type, so a dependency turning on `preserve_order` cannot change the bytes.

use serde::Serialize;
use serde_json::Value;

/// Serialize `value` canonically. Fails only when the value is not representable (NaN floats are
/// rejected by serde_json before they get here).
pub fn to_string<T: Serialize>(value: &T) -> serde_json::Result<String> {
    let v = serde_json::to_value(value)?;
    let mut out = String::new();
    write(&v, 0, &mut out);
    out.push('\n');
    Ok(out)
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn write(v: &Value, depth: usize, out: &mut String) {
    match v {
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(depth + 1, out);
                write(item, depth + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            indent(depth, out);
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                indent(depth + 1, out);
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                write(&map[*k], depth + 1, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            indent(depth, out);
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_formats_floats() {
        let v = serde_json::json!({"b": [1, 0.1, -2.5e-7], "a": {"z": null, "y": "é\n"}, "c": [], "d": {}});
        assert_eq!(
            to_string(&v).unwrap(),
            "{\n  \"a\": {\n    \"y\": \"é\\n\",\n    \"z\": null\n  },\n  \"b\": [\n    1,\n    0.1,\n    -2.5e-7\n  ],\n  \"c\": [],\n  \"d\": {}\n}\n"
        );
    }
}
