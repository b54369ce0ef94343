//! Metadata where teams keep it: a checkpoint's facts may live inside it, in a Lightning checkpoint's
//! `hyper_parameters`, in a sidecar file beside it (`{stem}.json`, `.yaml`, `.toml`, a Hugging Face-style
//! `config.json`), or in an MLflow model directory's `MLmodel` (the signature's column names and types,
//! the run id). Each place is a [`Layer`]; a key is looked up in the checkpoint first, then in each layer
//! in order, and found with the file (and line) it is written in.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Tree, lookup};
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::keypath::{self, Kind};
use crate::paths::display_path;

/// The sidecar patterns plumbline looks for beside a checkpoint when the config names none.
pub const DEFAULT_SIDECARS: &[&str] = &[
    "{stem}.json",
    "{stem}.yaml",
    "{stem}.yml",
    "{stem}.toml",
    "config.json",
];

/// A value found by key path, where it is written, and (for a list in a text file) each item's line
/// and column.
#[derive(Debug, Clone)]
pub struct Located<'a> {
    pub value: &'a Tree,
    pub location: Location,
    pub items: Vec<(u32, u32)>,
}

/// One place a checkpoint's facts may live besides the checkpoint's own tree.
#[derive(Debug, Clone)]
pub struct Layer {
    /// What it is, for messages: `sidecar`, `Lightning hyper_parameters`, `MLflow MLmodel`.
    pub what: &'static str,
    /// The file the facts are written in, as findings show it.
    pub display: String,
    /// The facts, keyed like the checkpoint's own (`feature_cols`, `scaler.median`).
    pub tree: Tree,
    origin: Origin,
}

#[derive(Debug, Clone)]
enum Origin {
    /// A subtree of the checkpoint itself (no lines): keys are shown under `prefix`.
    Inside { prefix: String },
    /// A text file: a key's line comes from the file.
    Text { kind: Kind, text: String },
    /// Facts derived from a file's own fields, each at the location of the field it came from.
    Derived { at: Vec<(String, Location)> },
}

impl Layer {
    /// A value by key path, with where it is written (and, in a text file, each list item's line and
    /// column).
    pub fn find(&self, key: &str) -> Option<Located<'_>> {
        let value = lookup(&self.tree, key)?;
        let mut items = Vec::new();
        let location = match &self.origin {
            Origin::Inside { prefix } => {
                Location::file(&self.display).with_label(format!("checkpoint key `{prefix}.{key}`"))
            }
            Origin::Text { kind, text } => keypath::find(*kind, &self.display, text, key)
                .map(|f| {
                    items = f.items;
                    f.location
                })
                .unwrap_or_else(|_| Location::file(&self.display))
                .with_label(format!("{} key `{key}`", self.what)),
            Origin::Derived { at } => at
                .iter()
                .find(|(k, _)| key == k || key.starts_with(&format!("{k}.")))
                .map(|(_, l)| l.clone())
                .unwrap_or_else(|| Location::file(&self.display)),
        };
        Some(Located {
            value,
            location,
            items,
        })
    }
}

/// What the metadata search needs from the config: the sidecar patterns, and the key paths the derived
/// facts of an `MLmodel` are stored under.
#[derive(Debug, Clone)]
pub struct Search<'a> {
    pub sidecars: &'a [String],
    pub feature_cols: &'a str,
    pub feature_dtypes: &'a str,
    pub input_dim: &'a str,
    pub run_id: &'a str,
}

/// Reads a file as this run sees it: `Ok(None)` when it does not exist.
pub type Read<'a> = &'a dyn Fn(&Path) -> Result<Option<String>>;

/// The metadata layers of the checkpoint at `path` whose tree is `tree`, in lookup order, and the files
/// searched (display paths) for messages that say where a missing fact could be declared. A metadata
/// file that exists but cannot be read is an error naming it.
pub fn layers(
    path: &Path,
    tree: &Tree,
    search: &Search,
    read: Read,
) -> Result<(Vec<Layer>, Vec<String>)> {
    let mut out = Vec::new();
    if let Some(h) = tree.get("hyper_parameters").filter(|h| h.is_object()) {
        out.push(Layer {
            what: "Lightning hyper_parameters",
            display: display_path(path),
            tree: h.clone(),
            origin: Origin::Inside {
                prefix: "hyper_parameters".into(),
            },
        });
    }
    let mut searched = Vec::new();
    for file in sidecar_paths(path, search.sidecars) {
        let display = display_path(&file);
        searched.push(display.clone());
        let Some(text) = read(&file)? else { continue };
        let kind = Kind::of(&file).ok_or_else(|| {
            Error::msg(format!(
                "{display}: a sidecar pattern must end in .json, .yaml, .yml or .toml"
            ))
        })?;
        let tree = keypath::document(kind, &display, &text)?;
        if !tree.is_object() {
            return Err(Error::at(
                Location::file(&display),
                "checkpoint metadata beside a checkpoint must be a map of keys".to_owned(),
            ));
        }
        out.push(Layer {
            what: "sidecar",
            display,
            tree,
            origin: Origin::Text { kind, text },
        });
    }
    if let Some(layer) = mlmodel(path, search, read, &mut searched)? {
        out.push(layer);
    }
    Ok((out, searched))
}

/// The sidecar files a checkpoint's patterns name, beside it (`{stem}`: its name without the last
/// extension; `{name}`: its whole name).
pub fn sidecar_paths(path: &Path, patterns: &[String]) -> Vec<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    let mut out: Vec<PathBuf> = Vec::new();
    for p in patterns {
        let file = dir.join(p.replace("{stem}", stem).replace("{name}", name));
        if file != path && !out.contains(&file) {
            out.push(file);
        }
    }
    out
}

/// The `MLmodel` of the MLflow model directory holding the checkpoint (its directory or one of the two
/// above: MLflow keeps weights under `data/`), as derived facts: the signature's input column names and
/// types (or a tensor input's width and dtype) and the run id.
fn mlmodel(
    path: &Path,
    search: &Search,
    read: Read,
    searched: &mut Vec<String>,
) -> Result<Option<Layer>> {
    for dir in path.ancestors().skip(1).take(3) {
        let file = dir.join("MLmodel");
        let Some(text) = read(&file)? else { continue };
        let display = display_path(&file);
        searched.push(display.clone());
        let doc = keypath::yaml::parse(&display, &text)?.value();
        let mut tree = json!({});
        let mut at = Vec::new();
        let field = |key: &str| {
            keypath::yaml_key(&display, &text, key)
                .map(|f| f.location.with_label(format!("MLmodel `{key}`")))
                .unwrap_or_else(|_| Location::file(&display))
        };
        if let Some(inputs) = doc.pointer("/signature/inputs").and_then(Value::as_str) {
            let inputs: Value = serde_json::from_str(inputs).map_err(|e| {
                Error::at(
                    field("signature.inputs"),
                    format!("the MLflow signature's inputs are not JSON: {e}"),
                )
            })?;
            for (key, value) in signature_facts(&inputs, search) {
                set(&mut tree, key, value);
                at.push((key.to_owned(), field("signature.inputs")));
            }
        }
        if let Some(run) = doc.get("run_id").and_then(Value::as_str) {
            set(&mut tree, search.run_id, Value::from(run));
            at.push((search.run_id.to_owned(), field("run_id")));
        }
        return Ok(Some(Layer {
            what: "MLflow MLmodel",
            display,
            tree,
            origin: Origin::Derived { at },
        }));
    }
    Ok(None)
}

/// The facts an MLflow signature's inputs state: column names and their dtypes for a column-based
/// signature, the width and dtype for one tensor input.
fn signature_facts<'k>(inputs: &Value, search: &Search<'k>) -> Vec<(&'k str, Value)> {
    let Some(cols) = inputs.as_array() else {
        return Vec::new();
    };
    if let [one] = cols.as_slice()
        && one.get("type").and_then(Value::as_str) == Some("tensor")
    {
        let spec = one.get("tensor-spec");
        let dtype = spec.and_then(|s| s.get("dtype")).and_then(Value::as_str);
        let width = spec
            .and_then(|s| s.get("shape"))
            .and_then(Value::as_array)
            .and_then(|s| s.last())
            .and_then(Value::as_u64);
        let mut out = Vec::new();
        if let Some(w) = width {
            out.push((search.input_dim, Value::from(w)));
        }
        if let Some(d) = dtype {
            out.push((search.feature_dtypes, Value::from(d)));
        }
        return out;
    }
    let names: Option<Vec<&str>> = cols
        .iter()
        .map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let dtypes: Option<Vec<&str>> = cols
        .iter()
        .map(|c| c.get("type").and_then(Value::as_str).and_then(mlflow_dtype))
        .collect();
    let mut out = Vec::new();
    if let Some(names) = names {
        out.push((search.feature_cols, Value::from(names)));
        out.push((search.input_dim, Value::from(cols.len())));
    }
    if let Some(d) = dtypes {
        out.push((search.feature_dtypes, Value::from(d)));
    }
    out
}

/// An MLflow column type as the torch dtype name plumbline compares (`double` is float64).
fn mlflow_dtype(t: &str) -> Option<&'static str> {
    Some(match t {
        "double" => "float64",
        "float" => "float32",
        "long" => "int64",
        "integer" => "int32",
        "boolean" => "bool",
        _ => return None,
    })
}

/// Set a dotted key path in a JSON tree, making maps on the way.
fn set(tree: &mut Tree, key: &str, value: Value) {
    let mut node = tree;
    let mut segs = key.split('.').peekable();
    while let Some(seg) = segs.next() {
        if !node.is_object() {
            *node = json!({});
        }
        let map = node.as_object_mut().expect("made a map above");
        if segs.peek().is_none() {
            map.insert(seg.to_owned(), value);
            return;
        }
        node = map.entry(seg.to_owned()).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(sidecars: &[String]) -> Search<'_> {
        Search {
            sidecars,
            feature_cols: "feature_cols",
            feature_dtypes: "feature_dtypes",
            input_dim: "input_dim",
            run_id: "run.run_id",
        }
    }

    #[test]
    fn sidecar_patterns_expand_beside_the_checkpoint() {
        let pats: Vec<String> = [
            "{stem}.json",
            "{name}.meta.yaml",
            "config.json",
            "{stem}.json",
        ]
        .map(String::from)
        .to_vec();
        let got = sidecar_paths(Path::new("ck/model_v3.pt"), &pats);
        assert_eq!(
            got,
            [
                PathBuf::from("ck/model_v3.json"),
                PathBuf::from("ck/model_v3.pt.meta.yaml"),
                PathBuf::from("ck/config.json"),
            ]
        );
    }

    #[test]
    fn an_mlflow_signature_gives_columns_dtypes_and_width() {
        let sidecars: Vec<String> = Vec::new();
        let s = search(&sidecars);
        let cols = serde_json::json!([
            {"type": "double", "name": "ret_1", "required": true},
            {"type": "float", "name": "vol_20", "required": true}
        ]);
        let facts = signature_facts(&cols, &s);
        assert_eq!(
            facts,
            [
                ("feature_cols", serde_json::json!(["ret_1", "vol_20"])),
                ("input_dim", serde_json::json!(2)),
                ("feature_dtypes", serde_json::json!(["float64", "float32"])),
            ]
        );
        let tensor = serde_json::json!([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 14]}}]);
        assert_eq!(
            signature_facts(&tensor, &s),
            [
                ("input_dim", serde_json::json!(14)),
                ("feature_dtypes", serde_json::json!("float32")),
            ]
        );
        let mut t = json!({});
        set(&mut t, "run.run_id", json!("abc"));
        set(&mut t, "run.x", json!(1));
        assert_eq!(t, json!({"run": {"run_id": "abc", "x": 1}}));
    }
}
