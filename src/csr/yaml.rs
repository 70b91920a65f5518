//! A small YAML emitter for `--dry-run` output (JSON values in block style, as kubectl prints them).
//! Strings that could be misread are double-quoted with JSON escaping, which YAML accepts.

use serde_json::Value;

/// Renders `value` as a YAML document.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit_block(value, 0, &mut out);
    out
}

fn emit_block(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                out.push_str(&" ".repeat(indent));
                out.push_str(&scalar_string(key));
                out.push(':');
                emit_child(item, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push('-');
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // First key on the dash line, the rest aligned under it.
                        let mut rendered = String::new();
                        emit_block(item, indent + 2, &mut rendered);
                        out.push(' ');
                        out.push_str(rendered.trim_start());
                    }
                    _ => emit_child(item, indent, out),
                }
            }
        }
        scalar => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn emit_child(item: &Value, indent: usize, out: &mut String) {
    match item {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            emit_block(item, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            // kubectl style: list items start at the key's own indentation.
            out.push('\n');
            emit_block(item, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar_text(other));
            out.push('\n');
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn scalar_string(s: &str) -> String {
    let reserved = ["true", "false", "null", "yes", "no", "on", "off", "~", ""];
    let plain = !reserved.contains(&s.to_ascii_lowercase().as_str())
        && s.parse::<f64>().is_err()
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/+= ".contains(c))
        && !s.ends_with(' ');
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_maps_lists_and_quotes_ambiguous_strings() {
        let value = json!({
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "shop:web-0:6f1d3c", "labels": {"a": "yes"}},
            "spec": {"usages": ["digital signature", "server auth"], "expirationSeconds": 3600, "empty": []},
            "items": [{"x": 1, "y": "2"}]
        });
        let yaml = to_yaml(&value);
        let expected = "\
items:
- x: 1
  y: \"2\"
kind: CertificateSigningRequest
metadata:
  labels:
    a: \"yes\"
  name: \"shop:web-0:6f1d3c\"
spec:
  empty: []
  expirationSeconds: 3600
  usages:
  - digital signature
  - server auth
";
        assert_eq!(yaml, expected);
    }
}
