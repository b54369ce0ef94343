//! A dotted key path in a TOML, JSON or YAML text, with the line of the value (and of each list item).
//! Sources read facts this way, and so do the metadata files beside a checkpoint.

pub mod yaml;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::finding::Location;
use crate::text::line_col;

/// A value found at a key path, where it is written, and the (line, column) of each item of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub value: Value,
    pub location: Location,
    pub items: Vec<(u32, u32)>,
}

/// The location (line and column) of a byte offset in a file's text.
pub fn located(display: &str, text: &str, offset: usize) -> Location {
    let (line, column) = line_col(text, offset);
    Location {
        path: display.to_owned(),
        line: Some(line),
        column: Some(column),
        label: None,
    }
}

/// The structured text formats a key path can point into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Toml,
    Json,
    Yaml,
}

impl Kind {
    /// The kind a file's extension names (`.toml`, `.json`, `.yaml`/`.yml`).
    pub fn of(path: &std::path::Path) -> Option<Kind> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Kind::Toml),
            "json" => Some(Kind::Json),
            "yaml" | "yml" => Some(Kind::Yaml),
            _ => None,
        }
    }
}

/// A key path in a text of `kind`.
pub fn find(kind: Kind, display: &str, text: &str, key: &str) -> Result<Found> {
    match kind {
        Kind::Toml => toml_key(display, text, key),
        Kind::Json => json_key(display, text, key),
        Kind::Yaml => yaml_key(display, text, key),
    }
}

/// The whole document of a text of `kind`, as JSON (the metadata files beside a checkpoint).
pub fn document(kind: Kind, display: &str, text: &str) -> Result<Value> {
    match kind {
        Kind::Yaml => Ok(yaml::parse(display, text)?.value()),
        Kind::Json => json_value(display, text),
        Kind::Toml => serde_json::to_value(toml_table(display, text)?)
            .map_err(|e| Error::at(Location::file(display), e.to_string())),
    }
}

/// A key path in a YAML file: the line of its key (of the item, for an index), and of each list item.
pub fn yaml_key(display: &str, text: &str, key: &str) -> Result<Found> {
    let root = yaml::parse(display, text)?;
    let mut node = &root;
    let mut at = (root.line, root.column);
    for seg in key.split('.').filter(|s| !s.is_empty()) {
        let next = match &node.kind {
            yaml::Kind::Map(entries) => entries
                .iter()
                .find(|(k, _, _)| k == seg)
                .map(|(_, k, v)| ((k.line, k.column), v)),
            yaml::Kind::Seq(items) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .map(|v| ((v.line, v.column), v)),
            yaml::Kind::Scalar(_) => None,
        };
        (at, node) = next.ok_or_else(|| missing(display, key, seg, &yaml_keys(&node.kind)))?;
    }
    let items = match &node.kind {
        yaml::Kind::Seq(items) => items.iter().map(|i| (i.line, i.column)).collect(),
        _ => Vec::new(),
    };
    // Through an alias, the value is written at its anchor: point there, and say which alias.
    let location = match node.alias_line {
        Some(alias) => Location::at(display, node.line)
            .with_label(format!("{key} (through the alias on line {alias})")),
        None => Location::at(display, at.0).with_label(key.to_owned()),
    };
    Ok(Found {
        value: node.value(),
        location,
        items,
    })
}

/// What a key path could have named where it went wrong: the keys of a map, or a list's length.
#[derive(Debug, Clone, PartialEq)]
enum Here {
    Keys(Vec<String>),
    Items(usize),
    Scalar,
}

fn yaml_keys(k: &yaml::Kind) -> Here {
    match k {
        yaml::Kind::Map(e) => Here::Keys(e.iter().map(|(k, _, _)| k.clone()).collect()),
        yaml::Kind::Seq(items) => Here::Items(items.len()),
        yaml::Kind::Scalar(_) => Here::Scalar,
    }
}

fn toml_keys(v: &toml::Value) -> Here {
    match v {
        toml::Value::Table(t) => Here::Keys(t.keys().cloned().collect()),
        toml::Value::Array(a) => Here::Items(a.len()),
        _ => Here::Scalar,
    }
}

fn json_keys(v: &Value) -> Here {
    match v {
        Value::Object(m) => Here::Keys(m.keys().cloned().collect()),
        Value::Array(a) => Here::Items(a.len()),
        _ => Here::Scalar,
    }
}

/// `key `data.featurs` not found: no `featurs`; did you mean `features`?` (or the keys there, or the
/// length of the list there).
fn missing(display: &str, key: &str, at: &str, here: &Here) -> Error {
    let why = match here {
        Here::Keys(keys) => {
            let close: Vec<String> = keys
                .iter()
                .filter(|k| close_to(at, k))
                .map(|k| format!("`{k}`"))
                .collect();
            let listed: Vec<String> = keys.iter().take(12).map(|k| format!("`{k}`")).collect();
            let more = if keys.len() > 12 { ", …" } else { "" };
            if !close.is_empty() {
                format!("; did you mean {}?", close.join(" or "))
            } else if keys.is_empty() {
                "; the map there is empty".to_owned()
            } else {
                format!("; the keys there: {}{more}", listed.join(", "))
            }
        }
        Here::Items(n) => format!("; the list there has {}", crate::text::plural(*n, "item")),
        Here::Scalar => "; the value there is not a map or a list".to_owned(),
    };
    Error::at(
        Location::file(display),
        format!("key `{key}` not found: no `{at}`{why}"),
    )
}

/// Whether `a` is one edit (insert, delete, substitute, or swap of two neighbours) from `b`, or differs
/// only in case, `-` and `_`.
fn close_to(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    if norm(a) == norm(b) {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    match long.len() - short.len() {
        0 => {
            let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match diff.as_slice() {
                [_] => true,
                [i, j] => *j == i + 1 && a[*i] == b[*j] && a[*j] == b[*i],
                _ => false,
            }
        }
        1 => (0..long.len()).any(|i| {
            let mut l = long.clone();
            l.remove(i);
            l == *short
        }),
        _ => false,
    }
}

/// A TOML text's table through toml's serde model.
fn toml_table(display: &str, text: &str) -> Result<toml::Table> {
    toml::from_str(text).map_err(|e| {
        Error::at(
            located(display, text, e.span().map_or(0, |s| s.start)),
            e.message().trim().to_owned(),
        )
    })
}

/// A JSON text's value; a syntax error is at its line and column.
fn json_value(display: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::at(
            Location {
                path: display.to_owned(),
                line: Some(e.line() as u32),
                column: Some(e.column() as u32),
                label: None,
            },
            format!("invalid JSON: {e}"),
        )
    })
}

/// A key path in a TOML file. The value is read through toml's serde model; the lines come from its
/// spanned document model.
pub fn toml_key(display: &str, text: &str, key: &str) -> Result<Found> {
    let located = |span: std::ops::Range<usize>, msg: String| {
        Error::at(located(display, text, span.start), msg)
    };
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        located(
            e.span().unwrap_or(0..0),
            format!("TOML syntax error: {}", e.message()),
        )
    })?;
    let mut node = toml::Value::Table(toml_table(display, text)?);
    let mut spanned_table = Some(doc.get_ref());
    let mut spanned_array = None;
    let mut span = 0..0;
    let mut items: Vec<std::ops::Range<usize>> = Vec::new();
    for seg in key.split('.') {
        let next = match &node {
            toml::Value::Table(t) => t.get(seg).cloned(),
            toml::Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i).cloned()),
            _ => None,
        };
        node = next.ok_or_else(|| missing(display, key, seg, &toml_keys(&node)))?;
        // An index into an array (of tables): step into the element.
        if let (Some(a), Ok(i)) = (spanned_array.take(), seg.parse::<usize>()) {
            let a: &toml::de::DeArray = a;
            spanned_table = None;
            items.clear();
            if let Some(el) = a.get(i) {
                span = el.span();
                if let toml::de::DeValue::Table(t) = el.get_ref() {
                    spanned_table = Some(t);
                }
            }
            continue;
        }
        let entry = spanned_table.and_then(|t| t.iter().find(|(k, _)| k.get_ref().as_ref() == seg));
        spanned_table = None;
        items.clear();
        if let Some((k, v)) = entry {
            span = k.span();
            match v.get_ref() {
                toml::de::DeValue::Table(t) => spanned_table = Some(t),
                toml::de::DeValue::Array(a) => {
                    items = a.iter().map(|i| i.span()).collect();
                    spanned_array = Some(a);
                }
                _ => {}
            }
        }
    }
    let json = serde_json::to_value(&node)
        .map_err(|e| Error::at(Location::file(display), format!("key `{key}`: {e}")))?;
    let (line, _) = line_col(text, span.start);
    Ok(Found {
        value: json,
        location: Location::at(display, line).with_label(key.to_owned()),
        items: items.iter().map(|s| line_col(text, s.start)).collect(),
    })
}

/// A key path in a JSON file; lines come from jsonc-parser's syntax tree.
pub fn json_key(display: &str, text: &str, key: &str) -> Result<Found> {
    let value = json_value(display, text)?;
    let ast = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default())
        .map_err(|e| Error::at(Location::file(display), format!("invalid JSON: {e}")))?;
    let mut node = &value;
    let mut ast_node = ast.value.as_ref();
    let mut start = 0usize;
    for seg in key.split('.') {
        node = match node {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| missing(display, key, seg, &json_keys(node)))?;
        ast_node = match ast_node {
            Some(jsonc_parser::ast::Value::Object(o)) => o.get(seg).map(|p| {
                start = p.range.start;
                &p.value
            }),
            Some(jsonc_parser::ast::Value::Array(a)) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| a.elements.get(i))
                .inspect(|v| {
                    start = jsonc_parser::common::Ranged::range(*v).start;
                }),
            _ => None,
        };
    }
    let items = match ast_node {
        Some(jsonc_parser::ast::Value::Array(a)) => a
            .elements
            .iter()
            .map(|e| line_col(text, jsonc_parser::common::Ranged::range(e).start))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Found {
        value: node.clone(),
        location: Location::at(display, line_col(text, start).0).with_label(key.to_owned()),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_key_path_with_lines() {
        let text = "[model]\nversion = 3\n\n[features]\ncols = [\n  \"a\",\n  \"b\",\n]\n[t.inner]\nx = -1.5\n";
        let f = toml_key("c.toml", text, "features.cols").unwrap();
        assert_eq!(f.value, serde_json::json!(["a", "b"]));
        assert_eq!(f.location.line, Some(5));
        assert_eq!(f.items, vec![(6, 3), (7, 3)]);
        assert_eq!(
            toml_key("c.toml", text, "model.version")
                .unwrap()
                .location
                .line,
            Some(2)
        );
        // An index points at the item itself.
        let second = toml_key("c.toml", text, "features.cols.1").unwrap();
        assert_eq!(
            (second.value, second.location.line),
            (serde_json::json!("b"), Some(7))
        );
        // An index into an array of tables, then a key of that table.
        let gates = "[[g]]\nname = \"a\"\n\n[[g]]\nname = \"b\"\nabove = 1\n";
        assert_eq!(
            toml_key("r.toml", gates, "g.1.name").unwrap().location.line,
            Some(5)
        );
        assert_eq!(
            toml_key("r.toml", gates, "g.1.above")
                .unwrap()
                .location
                .line,
            Some(6)
        );
        let x = toml_key("c.toml", text, "t.inner.x").unwrap();
        assert_eq!(
            (x.value, x.location.line),
            (serde_json::json!(-1.5), Some(10))
        );
        let err = toml_key("c.toml", text, "model.heads")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "c.toml: key `model.heads` not found: no `heads`; the keys there: `version`"
        );
        let err = toml_key("c.toml", text, "features.colls")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("no `colls`; did you mean `cols`?"), "{err}");
        let err = toml_key("c.toml", text, "features.cols.5")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("no `5`; the list there has 2 items"), "{err}");
    }

    #[test]
    fn yaml_keys_point_at_the_anchor_through_an_alias_and_suggest_near_misses() {
        let text =
            "base:\n  thr: &thr\n    long: 0.006\nlabels:\n  thresholds: *thr\n  horizon: 5\n";
        let f = yaml_key("w.yaml", text, "labels.thresholds").unwrap();
        assert_eq!(f.value, serde_json::json!({"long": 0.006}));
        assert_eq!(
            f.location.line,
            Some(2),
            "the anchor's line, where the value is written"
        );
        assert_eq!(
            f.location.label.as_deref(),
            Some("labels.thresholds (through the alias on line 5)")
        );
        assert_eq!(
            yaml_key("w.yaml", text, "labels.horizon")
                .unwrap()
                .location
                .line,
            Some(6)
        );
        let err = yaml_key("w.yaml", text, "labels.horizn")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "w.yaml: key `labels.horizn` not found: no `horizn`; did you mean `horizon`?"
        );
        let err = yaml_key("w.yaml", text, "Labels").unwrap_err().to_string();
        assert!(err.ends_with("did you mean `labels`?"), "{err}");
        assert!(close_to("featrues", "features"));
        assert!(!close_to("ret_5", "ret_50x"));
    }

    #[test]
    fn json_key_path_with_lines() {
        let text = "{\n  \"a\": {\n    \"b\": [\n      1,\n      2\n    ]\n  }\n}\n";
        let f = json_key("c.json", text, "a.b").unwrap();
        assert_eq!(f.value, serde_json::json!([1, 2]));
        assert_eq!(f.location.line, Some(3));
        assert_eq!(f.items, vec![(4, 7), (5, 7)]);
        assert_eq!(
            json_key("c.json", text, "a.b.1").unwrap().location.line,
            Some(5)
        );
        assert!(
            json_key("c.json", "{", "a")
                .unwrap_err()
                .to_string()
                .starts_with("c.json:1:")
        );
    }
}
