//! The native engine against PyTorch: the committed reference outputs were computed by the training
//! script with torch (float32); burn must reproduce every head of every row from both file formats.
#![cfg(feature = "native")]

use std::path::Path;

use plumbline::checkpoint;
use plumbline::config::CheckpointKeys;
use plumbline::engine::{self, EngineKind};
use plumbline::matrix::Matrix;
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/momentum/reference/outputs.json"),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check_format(file: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/momentum/checkpoints")
        .join(file);
    let info = checkpoint::open(&path).unwrap();
    let engine = engine::load(EngineKind::Native, &info, &CheckpointKeys::default()).unwrap();
    let reference = reference();
    let rows = reference["rows"].as_array().unwrap();
    assert!(rows.len() >= 64);
    let scaled: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            r["scaled"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let out = engine
        .forward(&Matrix::from_rows(engine.input_dim(), &scaled))
        .unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["direction", "magnitude"]);
    let mut worst = 0f64;
    for (i, r) in rows.iter().enumerate() {
        for (head, want) in r["outputs"].as_object().unwrap() {
            let got = out[head].row(i);
            let want: Vec<f64> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len(), "{file} row {i} head {head}");
            for (g, w) in got.iter().zip(&want) {
                worst = worst.max((g - w).abs());
                assert!(
                    (g - w).abs() <= 1e-5,
                    "{file} row {i} head {head}: burn {g} vs torch {w}"
                );
            }
        }
    }
    eprintln!("{file}: largest difference from PyTorch {worst:e}");
}

#[test]
fn native_outputs_match_pytorch_from_torch_archive() {
    check_format("momentum_v3.pt");
}

#[test]
fn native_outputs_match_pytorch_from_safetensors() {
    check_format("momentum_v3.safetensors");
}

/// No rows is an error that says so, not a panic inside burn (its matmul divides by the row count).
#[test]
fn no_rows_is_an_error_not_a_panic() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/momentum/checkpoints/momentum_v3.pt");
    let info = checkpoint::open(&path).unwrap();
    let engine = engine::load(EngineKind::Native, &info, &CheckpointKeys::default()).unwrap();
    let empty = Matrix::new(0, engine.input_dim(), Vec::new());
    let e = engine.forward(&empty).unwrap_err();
    assert_eq!(e.to_string(), "native engine: no rows to run the model on");
    let g = engine
        .gradients(&empty, "direction", 0)
        .unwrap()
        .unwrap_err();
    assert_eq!(g.to_string(), "native engine: no rows to attribute");
}
