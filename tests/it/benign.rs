//! Differential tests against torch on benign files (tests/fixtures/benign, written by real PyTorch
//! with torch's own verdicts and facts in `facts.json`): plumbline reads every file the reference
//! loader reads, and the facts it reports (key tree, tensor names, dtypes, shapes) equal the
//! reference's. Rows marked `"plumbline": "unsupported"` are the tensors docs/checkpoint-metadata.md
//! lists as not described: those must be refused as unsupported, never as malformed.

use serde_json::Value;

use crate::util::fixture;
use plumbline::checkpoint::{self, Reading};

fn facts() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("benign/facts.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["files"].as_array().unwrap().clone()
}

/// An object of a declared global compares by its class: torch's side cannot see the arguments
/// it was built from.
fn classes_only(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(class) = m.get("$object").cloned() {
                m.clear();
                m.insert("$object".into(), class);
                return;
            }
            m.values_mut().for_each(classes_only);
        }
        Value::Array(a) => a.iter_mut().for_each(classes_only),
        _ => {}
    }
}

fn sorted_tensors(v: Vec<Value>) -> Vec<Value> {
    let mut v = v;
    v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    v
}

#[test]
fn the_corpus_is_big_enough_and_torch_wrote_it() {
    let rows = facts();
    assert!(rows.len() >= 40, "{} files", rows.len());
    for r in &rows {
        let file = r["file"].as_str().unwrap();
        assert!(
            fixture("benign").join(file).is_file(),
            "{file} is listed but missing"
        );
    }
    for kind in ["legacy-", "dtype-", "view-", "keys-", "optimizer-", ".pkl"] {
        assert!(
            rows.iter()
                .any(|r| r["file"].as_str().unwrap().contains(kind)),
            "no {kind} file"
        );
    }
    assert!(
        rows.iter()
            .any(|r| !r["declared"].as_array().unwrap().is_empty())
    );
}

#[test]
fn plumbline_reads_what_the_reference_reads_with_the_same_facts() {
    let mut read = 0;
    for r in facts() {
        let file = r["file"].as_str().unwrap();
        let path = fixture("benign").join(file);
        let reading = Reading {
            safe_globals: r["declared"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().to_owned())
                .collect(),
        };
        let got = checkpoint::open_with(&path, &reading);
        if r["plumbline"] == "unsupported" {
            let err = got.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("unsupported"), "{file}: {err}");
            continue;
        }
        if r["reference"] != "loaded" {
            // torch refuses it (see facts.json); plumbline may read more, never less safely.
            continue;
        }
        let info = got.unwrap_or_else(|e| panic!("{file}: {e}"));
        let tensors: Vec<Value> = info
            .tensors
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype, "shape": t.shape}))
            .collect();
        assert_eq!(
            sorted_tensors(tensors),
            sorted_tensors(r["tensors"].as_array().unwrap().clone()),
            "{file}: tensor table"
        );
        if r["loader"] == "safetensors" {
            for (k, v) in r["metadata"].as_object().unwrap() {
                let got = info.tree.get(k).unwrap_or_else(|| panic!("{file}: {k}"));
                let text = v.as_str().unwrap();
                assert!(
                    got == v || serde_json::from_str::<Value>(text).ok().as_ref() == Some(got),
                    "{file}: metadata {k}: {got} vs {v}"
                );
            }
        } else {
            let mut tree = info.tree.clone();
            classes_only(&mut tree);
            assert_eq!(tree, r["tree"], "{file}: key tree");
        }
        assert!(
            info.bytes_read <= info.size,
            "{file}: read {} of {} bytes",
            info.bytes_read,
            info.size
        );
        let declared: Vec<&str> = info.declared_globals.iter().map(String::as_str).collect();
        let wanted: Vec<&str> = r["declared"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            declared.iter().all(|g| wanted.contains(g)),
            "{file}: {declared:?}"
        );
        read += 1;
    }
    assert!(read >= 40, "{read} files compared");
}

/// A declared global lets its checkpoint through; without the declaration it is still refused.
#[test]
fn declared_globals_are_needed_and_enough() {
    for r in facts() {
        let declared = r["declared"].as_array().unwrap();
        if declared.is_empty() {
            continue;
        }
        let file = r["file"].as_str().unwrap();
        let path = fixture("benign").join(file);
        let err = checkpoint::open(&path).unwrap_err().to_string();
        assert!(err.contains("refused"), "{file}: {err}");
        // Every declaration the file references is needed: without any one of them it is refused.
        let all = Reading {
            safe_globals: declared
                .iter()
                .map(|g| g.as_str().unwrap().to_owned())
                .collect(),
        };
        let used = checkpoint::open_with(&path, &all).unwrap().declared_globals;
        assert!(!used.is_empty(), "{file}");
        for skip in &used {
            let reading = Reading {
                safe_globals: all
                    .safe_globals
                    .iter()
                    .filter(|g| *g != skip)
                    .cloned()
                    .collect(),
            };
            let got = checkpoint::open_with(&path, &reading);
            assert!(got.is_err(), "{file} read without {skip}");
        }
    }
}
