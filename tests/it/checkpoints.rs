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
    crate::util::write_zip(&p, &[crate::util::Entry::Bytes(&name, &pkl)]);
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
    assert!(
        err.contains("legacy.pt") && err.contains("not a zip archive"),
        "{err}"
    );
}
