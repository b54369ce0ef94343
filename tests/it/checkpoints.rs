//! The readers on the real files torch and safetensors wrote.

use plumbline::checkpoint::{self, Format};

use crate::util::{example, fixture, production_pt};

#[test]
fn torch_checkpoint_tree_and_tensors() {
    let info = checkpoint::open(&production_pt()).unwrap();
    assert_eq!(info.format, Format::Torch);
    assert_eq!(info.get("input_dim"), Some(&serde_json::json!(14)));
    assert_eq!(
        info.get("feature_cols.5"),
        Some(&serde_json::json!("vol_20"))
    );
    assert_eq!(info.get("scaler.kind"), Some(&serde_json::json!("robust")));
    assert_eq!(
        info.get("scaler.median")
            .and_then(|m| m.as_array())
            .map(Vec::len),
        Some(14)
    );
    assert_eq!(
        info.get("arch.layers.0"),
        Some(&serde_json::json!("trunk.0"))
    );
    let w = info
        .weight("state_dict", "trunk.0.weight")
        .expect("first layer");
    assert_eq!(
        (w.dtype.as_str(), w.shape.as_slice()),
        ("float32", &[32u64, 14][..])
    );
    let d = info.weight("state_dict", "heads.direction.weight").unwrap();
    assert_eq!(d.shape, vec![3, 16]);
    assert_eq!(info.tensors.len(), 8);
}

#[test]
fn safetensors_twin_has_the_same_metadata_and_tensors() {
    let pt = checkpoint::open(&production_pt()).unwrap();
    let st = checkpoint::open(&example().join("checkpoints/momentum_v3.safetensors")).unwrap();
    assert_eq!(st.format, Format::Safetensors);
    for key in [
        "feature_cols",
        "feature_dtypes",
        "input_dim",
        "schema_hash",
        "scaler",
        "model_version",
        "heads",
        "arch",
        "targets",
        "nan_policy",
    ] {
        assert_eq!(
            pt.get(key),
            st.get(key),
            "metadata `{key}` differs between the twins"
        );
    }
    let mut a: Vec<_> = pt
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.trim_start_matches("state_dict.").to_owned(),
                t.dtype.clone(),
                t.shape.clone(),
            )
        })
        .collect();
    let mut b: Vec<_> = st
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dtype.clone(), t.shape.clone()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn float64_variant_reports_double_tensors() {
    let info = checkpoint::open(&fixture("checkpoints/float64.pt")).unwrap();
    assert!(info.tensors.iter().all(|t| t.dtype == "float64"));
}

#[test]
fn safetensors_header_length_is_bounds_checked() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.safetensors");
    let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&p, &bytes).unwrap();
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("bad.safetensors") && err.contains("header length 1099511627776 exceeds"),
        "{err}"
    );
    // Data offsets outside the data section.
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&p, &bytes).unwrap();
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("tensor `w`: data_offsets [0, 16]"), "{err}");
}

#[test]
fn missing_storage_entry_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let (name, pkl) = crate::util::data_pkl(&production_pt());
    let p = dir.path().join("no_storage.pt");
    let version = name.replace("data.pkl", "version");
    crate::util::write_zip(
        &p,
        &[
            crate::util::Entry::Bytes(&name, &pkl),
            crate::util::Entry::Bytes(&version, b"3\n"),
        ],
    );
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("storage entry") && err.contains("is missing"),
        "{err}"
    );
}

#[test]
fn not_a_zip_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("legacy.pt");
    std::fs::write(&p, b"\x80\x02\x8a\x0alegacy torch format").unwrap();
    let err = checkpoint::open(&p).unwrap_err().to_string();
    // Not a zip: read as torch would, as a legacy stream, which this one is not.
    assert!(
        err.contains("legacy.pt") && err.contains("legacy pickle 1 (magic number, from byte 0)"),
        "{err}"
    );
}

/// An independent oracle for the pickle reader: Python's own `pickle` module (stdlib only, no torch)
/// with a restricted Unpickler that describes tensors instead of building them. Its tree must equal
/// plumbline's for the production checkpoint and every checkpoint of the defect corpus. Needs python3
/// (CI has it; with CI=true its absence fails the test).
#[test]
fn pickle_reader_agrees_with_python_pickle() {
    const ORACLE: &str = r#"
import json, pickle, sys, zipfile
STORAGE = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
           "LongStorage": "int64", "IntStorage": "int32", "ByteStorage": "uint8", "BoolStorage": "bool"}
class Storage:
    def __init__(self, name): self.name = name
class ODict(dict):  # OrderedDict state (`_metadata`) lands in __dict__, as in torch
    pass
def rebuild_tensor_v2(storage, offset, size, stride, *rest):
    return {"$tensor": {"dtype": storage[1], "shape": list(size)}}
class Oracle(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"): return rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"): return ODict
        if module == "torch" and name in STORAGE: return Storage(name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
    def persistent_load(self, pid):
        kind, cls, key, location, numel = pid
        return ("storage", STORAGE[cls.name], key, numel)
out = {}
for path in sys.argv[1:]:
    z = zipfile.ZipFile(path)
    name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
    out[path] = Oracle(z.open(name)).load()
json.dump(out, sys.stdout)
"#;
    if !crate::util::python3_or_skip("the pickle oracle") {
        return;
    }
    let mut paths = vec![production_pt()];
    for entry in std::fs::read_dir(fixture("checkpoints")).unwrap() {
        paths.push(entry.unwrap().path());
    }
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(ORACLE)
        .args(&paths)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let oracle: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(oracle.as_object().unwrap().len(), paths.len());
    assert!(paths.len() >= 9);
    for p in &paths {
        let ours = checkpoint::open(p).unwrap().tree;
        let theirs = &oracle[p.to_str().unwrap()];
        assert_eq!(
            &ours,
            theirs,
            "{} differs from Python's reading",
            p.display()
        );
    }
}

/// Every pickle protocol Python writes (0 to 5), on values that exercise every opcode a metadata dict
/// can produce: Python pickles them, plumbline reads them, and the trees must be equal.
#[test]
fn every_pickle_protocol_reads_like_python() {
    const GEN: &str = r#"
import json, pickle, sys
shared = [1, 2]
V = {
    "s": "x", "uni": "é✓\\ n", "big": "y" * 300, "empty_s": "",
    "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**40, -2**40, 2**63 - 1, -2**63, 2**70, -2**70],
    "floats": [0.5, -1e300, 1e-7, 0.1, -0.0],
    "consts": [True, False, None],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    "empty": [], "ed": {}, "bytes": b"ab",
    "nested": {"k": [{"a": 1}], "shared": shared, "again": shared},
    "set": {7},
    5: "int key",
}
# More than 256 memoized values, then a shared one: LONG_BINPUT / LONG_BINGET.
late = ["late"]
V["many"] = [str(i) for i in range(300)]
V["late"] = late
V["late again"] = late
def expect(v):
    if isinstance(v, bool) or v is None or isinstance(v, (float, str)): return v
    if isinstance(v, int): return v if -2**63 <= v < 2**63 else str(v)
    if isinstance(v, bytes): return f"<{len(v)} bytes>"
    if isinstance(v, dict): return {str(k): expect(x) for k, x in v.items()}
    return [expect(x) for x in v]
out = [{"protocol": p, "hex": pickle.dumps(V, protocol=p).hex(), "tree": expect(V)} for p in range(6)]
json.dump(out, sys.stdout)
"#;
    if !crate::util::python3_or_skip("the protocol comparison") {
        return;
    }
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(GEN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cases.len(), 6);
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        let hex = case["hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let p = dir.path().join(format!("p{}.pt", case["protocol"]));
        crate::util::torch_zip(&p, &bytes);
        let info =
            checkpoint::open(&p).unwrap_or_else(|e| panic!("protocol {}: {e}", case["protocol"]));
        assert_eq!(info.tree, case["tree"], "protocol {}", case["protocol"]);
    }
}

/// Globs resolve symbolic links once: a file reached by several links is listed once (under its own
/// name), and a dangling link, a looping link and a directory named like a checkpoint are
/// `checkpoint-unreadable` findings, never skipped in silence.
#[cfg(unix)]
#[test]
fn links_and_directories_the_globs_match_are_resolved_once_or_reported() {
    use std::os::unix::fs::symlink;
    let (_guard, ex) = crate::util::example_copy();
    let dir = ex.join("checkpoints");
    std::fs::create_dir(dir.join("old.pt")).unwrap();
    std::fs::create_dir(dir.join("runs")).unwrap(); // not named like a checkpoint: no finding
    symlink("nowhere.pt", dir.join("dangling.pt")).unwrap();
    symlink("loop.pt", dir.join("loop.pt")).unwrap();
    symlink("momentum_v3.pt", dir.join("latest.pt")).unwrap();
    symlink("momentum_v3.pt", dir.join("zz_latest.pt")).unwrap();
    let globs = "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\", \"checkpoints/*\"]";
    crate::util::replace_in(
        &ex.join("plumbline.toml"),
        "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\"]",
        globs,
    );
    let o = crate::util::plumbline(&ex, &["--format", "json", "gate", "checkpoint-inventory"]);
    assert_eq!(o.status.code(), Some(1), "{}", crate::util::stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["code"], "checkpoint-unreadable");
            f["message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        messages,
        [
            "checkpoints/dangling.pt: a checkpoint glob matches it, but it is a symbolic link to nowhere.pt, which does not exist",
            "checkpoints/loop.pt: a checkpoint glob matches it, but it is a symbolic link that loops (ELOOP)",
            "checkpoints/old.pt: a checkpoint glob matches it, but it is a directory, not a checkpoint file",
        ]
    );
    // The production file is read once, under its own name, though two links and two globs reach it.
    let o = crate::util::plumbline(&ex, &["inventory", "--format", "json"]);
    let text = crate::util::stdout(&o);
    assert_eq!(
        text.matches("\"path\": \"checkpoints/momentum_v3.pt\"")
            .count(),
        1,
        "{text}"
    );
    assert!(!text.contains("latest.pt"), "{text}");
}
