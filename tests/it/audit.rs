//! The audit tools (docs/audit.md): integrated gradients against PyTorch's exact references and a
//! linear model's closed form, the surrogate's fidelity on the example, byte-identical files, the
//! decision CSV, and the post-train workflow.
#![cfg(feature = "native")]

use std::path::{Path, PathBuf};

use plumbline::audit::Unit;
use plumbline::audit::integrated_gradients::{self as ig, Settings};
use plumbline::checkpoint;
use plumbline::config::CheckpointKeys;
use plumbline::engine::{self, Engine, EngineKind};
use plumbline::matrix::Matrix;
use serde_json::Value;

use crate::util::{example, example_copy, fixture, numbers, plumbline, stderr};

const SETTINGS: Settings = Settings {
    tolerance: 1e-5,
    max_steps: 4096,
};

fn native(path: &Path) -> Box<dyn Engine> {
    let info = checkpoint::open(path).unwrap();
    engine::load(EngineKind::Native, &info, &CheckpointKeys::default()).unwrap()
}

/// The exact references (train/train.py: the path split where the ReLU pattern changes, float64): the
/// adaptive integral matches every output of every row to 1e-4 of the row's largest attribution, from
/// both file formats, and reports a completeness delta within the tolerance.
#[test]
fn integrated_gradients_match_the_pytorch_references() {
    let text = std::fs::read_to_string(fixture("reference/integrated_gradients.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let rows = reference["rows"].as_array().unwrap();
    assert!(rows.len() >= 10, "at least 10 reference rows");
    let scaled: Vec<Vec<f64>> = rows.iter().map(|r| numbers(&r["scaled"])).collect();
    let cols = scaled[0].len();
    let inputs = Matrix::from_rows(cols, &scaled);
    let units: Vec<Unit> = [
        ("direction", 0),
        ("direction", 1),
        ("direction", 2),
        ("magnitude", 0),
    ]
    .map(|(h, u)| Unit {
        head: h.into(),
        unit: u,
    })
    .to_vec();
    for file in ["momentum_v3.pt", "momentum_v3.safetensors"] {
        let engine = native(&example().join("checkpoints").join(file));
        let got = ig::attribute(
            engine.as_ref(),
            &inputs,
            &vec![0.0; cols],
            &units,
            SETTINGS,
            &mut |_, _| {},
        )
        .unwrap();
        let mut worst: f64 = 0.0;
        for (r, row) in rows.iter().enumerate() {
            let a = &got[r];
            assert!(a.converged, "{file} row {r} did not converge: {a:?}");
            for (k, u) in units.iter().enumerate() {
                let want = numbers(&row["heads"][&u.head][u.unit]["attributions"]);
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                let err = a.attributions[k]
                    .iter()
                    .zip(&want)
                    .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
                worst = worst.max(err / scale);
                assert!(
                    err <= 1e-4 * scale,
                    "{file} row {r} {}.{}: max |ours − torch| = {err:e}, 1e-4 × {scale} allowed",
                    u.head,
                    u.unit
                );
                assert!(a.delta[k].abs() <= SETTINGS.tolerance, "{:?}", a.delta);
                // f(x) − f(baseline) is PyTorch's (float32 weights, so to 1e-5).
                let diff = row["heads"][&u.head][u.unit]["f_x"].as_f64().unwrap()
                    - row["heads"][&u.head][u.unit]["f_baseline"]
                        .as_f64()
                        .unwrap();
                assert!(
                    (a.difference[k] - diff).abs() < 1e-5,
                    "{} vs {diff}",
                    a.difference[k]
                );
            }
        }
        eprintln!("{file}: worst relative difference to the references {worst:.2e}");
    }
}

/// A float64 checkpoint whose heads sit directly on the inputs (no hidden layer): each attribution is
/// w · (x − baseline) exactly, whatever the baseline.
#[test]
fn integrated_gradients_of_a_linear_head_are_weight_times_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.safetensors");
    let cols = 14;
    let w_dir: Vec<f64> = (0..3 * cols)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
        .collect();
    let w_mag: Vec<f64> = (0..cols).map(|i| (i as f64 - 6.5) / 4.0).collect();
    write_linear(&path, cols, &w_dir, &[0.1, -0.2, 0.3], &w_mag, &[0.5]);
    let engine = native(&path);
    let x = Matrix::from_rows(
        cols,
        &[
            (0..cols).map(|j| j as f64 / 3.0 - 2.0).collect(),
            (0..cols).map(|j| ((j * 5) % 7) as f64 - 3.0).collect(),
        ],
    );
    let baseline: Vec<f64> = (0..cols).map(|j| 0.25 * j as f64 - 1.0).collect();
    let units = vec![
        Unit {
            head: "direction".into(),
            unit: 2,
        },
        Unit {
            head: "magnitude".into(),
            unit: 0,
        },
    ];
    let got = ig::attribute(
        engine.as_ref(),
        &x,
        &baseline,
        &units,
        SETTINGS,
        &mut |_, _| {},
    )
    .unwrap();
    for (r, a) in got.iter().enumerate() {
        // A constant gradient: the first pass is exact, nothing is refined.
        assert_eq!(a.steps, 65, "{a:?}");
        for (k, w) in [&w_dir[2 * cols..3 * cols], &w_mag[..]]
            .into_iter()
            .enumerate()
        {
            for j in 0..cols {
                let want = w[j] * (x.row(r)[j] - baseline[j]);
                assert!(
                    (a.attributions[k][j] - want).abs() <= 1e-6,
                    "row {r} unit {k} feature {j}: {} vs {want}",
                    a.attributions[k][j]
                );
            }
            assert!(a.delta[k].abs() <= 1e-9, "{:?}", a.delta);
        }
    }
}

/// A safetensors file (float64) with the example's metadata and an `arch` with no hidden layer.
fn write_linear(
    path: &Path,
    cols: usize,
    w_dir: &[f64],
    b_dir: &[f64],
    w_mag: &[f64],
    b_mag: &[f64],
) {
    let real = std::fs::read(example().join("checkpoints/momentum_v3.safetensors")).unwrap();
    let n = u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&real[8..8 + n]).unwrap();
    let mut meta = header["__metadata__"].as_object().unwrap().clone();
    let mut arch: Value = serde_json::from_str(meta["arch"].as_str().unwrap()).unwrap();
    arch["hidden"] = serde_json::json!([]);
    arch["layers"] = serde_json::json!([]);
    meta.insert("arch".into(), Value::String(arch.to_string()));
    let tensors: [(&str, Vec<usize>, &[f64]); 4] = [
        ("heads.direction.weight", vec![3, cols], w_dir),
        ("heads.direction.bias", vec![3], b_dir),
        ("heads.magnitude.weight", vec![1, cols], w_mag),
        ("heads.magnitude.bias", vec![1], b_mag),
    ];
    let mut out_header = serde_json::Map::new();
    out_header.insert("__metadata__".into(), Value::Object(meta));
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        out_header.insert(
            name.into(),
            serde_json::json!({"dtype": "F64", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let text = serde_json::to_vec(&out_header).unwrap();
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&text);
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

/// The example copy with its slice cut to the first `rows` data rows (debug builds of burn are slow;
/// the surrogate's acceptance runs on the whole slice in `audit_conditions_on_the_example`).
fn example_with_rows(rows: usize) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = example_copy();
    crate::util::cut_slice(&dir, rows);
    (tmp, dir)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The whole example: four files; the surrogate beats the majority baseline by ≥ 0.2 balanced
/// accuracy at depth ≤ 4; every row converged; a second run writes the same bytes.
#[test]
fn audit_conditions_on_the_example() {
    let (_tmp, dir) = example_copy();
    let o = plumbline(&dir, &["audit", "conditions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.join("artifacts/learned_conditions");
    let summary: Value = serde_json::from_slice(&read(&out.join("summary.json"))).unwrap();
    let s = &summary["surrogate"];
    let lift = s["lift"].as_f64().unwrap();
    assert!(s["depth"].as_u64().unwrap() <= 4, "{s}");
    assert!(lift >= 0.2, "surrogate lift {lift} < 0.2: {s}");
    // Depth counts levels of splits: a depth-d tree has at most 2^d leaves, and depth 1 is a stump.
    for row in s["depth_table"].as_array().unwrap() {
        let (d, l) = (
            row["depth"].as_u64().unwrap(),
            row["leaves"].as_u64().unwrap(),
        );
        assert!(l <= 1 << d, "{row}");
    }
    assert_eq!(s["depth_table"][0]["leaves"], 2, "{s}");
    let ig = &summary["integrated_gradients"];
    assert_eq!(ig["rows_not_converged"], 0, "{ig:.200}");
    assert_eq!(ig["rows"].as_array().unwrap().len(), 2115);
    assert!(ig["max_abs_completeness_delta"].as_f64().unwrap() <= 1e-5);
    let rules = std::fs::read_to_string(out.join("surrogate_rules.txt")).unwrap();
    assert!(
        rules.lines().filter(|l| l.starts_with("IF ")).count() >= 2,
        "{rules}"
    );
    let csv = std::fs::read_to_string(out.join("attribution.csv")).unwrap();
    // 4 outputs × 14 features + the header.
    assert_eq!(csv.lines().count(), 4 * 14 + 1, "{csv}");
    assert!(csv.starts_with("method,head,output,label,feature,importance,mean,spread,rank\n"));

    let first: Vec<Vec<u8>> = [
        "attribution.csv",
        "surrogate_rules.txt",
        "surrogate_rules.json",
        "summary.json",
    ]
    .iter()
    .map(|f| read(&out.join(f)))
    .collect();
    let again = dir.join("again");
    let o = plumbline(&dir, &["audit", "conditions", "--out", "again"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (i, f) in [
        "attribution.csv",
        "surrogate_rules.txt",
        "surrogate_rules.json",
        "summary.json",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            first[i] == read(&again.join(f)),
            "{f} differs between two runs"
        );
    }
}

fn validate(schema_file: &str, doc: &Value) {
    let schema: Value = serde_json::from_slice(&read(
        &crate::util::repo().join("schemas").join(schema_file),
    ))
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:?}");
}

/// The audit files validate against their committed schemas.
#[test]
fn audit_files_validate_against_their_schemas() {
    let (_tmp, dir) = example_with_rows(150);
    let o = plumbline(&dir, &["audit", "conditions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = dir.join("artifacts/learned_conditions");
    for (file, schema) in [
        ("summary.json", "audit-summary.schema.json"),
        ("surrogate_rules.json", "surrogate-rules.schema.json"),
    ] {
        let doc: Value = serde_json::from_slice(&read(&out.join(file))).unwrap();
        validate(schema, &doc);
    }
    // A planted defect is caught: the schemas are not vacuous.
    let mut doc: Value = serde_json::from_slice(&read(&out.join("summary.json"))).unwrap();
    doc["surrogate"]["depth"] = Value::String("deep".into());
    let schema: Value = serde_json::from_slice(&read(
        &crate::util::repo().join("schemas/audit-summary.schema.json"),
    ))
    .unwrap();
    assert!(!jsonschema::is_valid(&schema, &doc));
}

/// `audit decisions`: one row per slice row with the documented columns; a blocked decision is flat
/// with size 0; factors are ordered by |attribution|; two runs give the same bytes.
#[test]
fn audit_decisions_writes_one_row_per_decision() {
    let (_tmp, dir) = example_with_rows(200);
    let o = plumbline(&dir, &["audit", "decisions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = dir.join("artifacts/audit/decision_attribution.csv");
    let first = read(&path);
    let mut rdr = csv::Reader::from_reader(first.as_slice());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {header:?}"))
    };
    for name in [
        "timestamp",
        "symbol",
        "raw.ret_1",
        "scaled.mom_5_20",
        "direction.0",
        "magnitude.0",
        "action",
        "size",
        "gate.volatility-cap",
        "gate.flat-confidence",
        "attributed",
        "method",
        "factor_1",
        "factor_1_attribution",
        "factor_3_attribution",
    ] {
        col(name);
    }
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 200);
    let mut blocked = 0;
    let mut sides = std::collections::BTreeSet::new();
    for r in &rows {
        sides.insert(r[col("action")].to_owned());
        if r[col("gate.volatility-cap")] == *"block" || r[col("gate.flat-confidence")] == *"block" {
            blocked += 1;
            assert_eq!((&r[col("action")], &r[col("size")]), ("flat", "0"), "{r:?}");
        }
        assert_eq!(&r[col("method")], "integrated-gradients");
        // The attributed output is the signal head's class the decision took.
        assert_eq!(
            &r[col("attributed")],
            match &r[col("action")] {
                "short" => "direction.0 (short)",
                "flat" => "direction.1 (flat)",
                _ => "direction.2 (long)",
            }
        );
        let a: Vec<f64> = (1..=3)
            .map(|i| {
                r[col(&format!("factor_{i}_attribution"))]
                    .parse::<f64>()
                    .unwrap()
                    .abs()
            })
            .collect();
        assert!(a[0] >= a[1] && a[1] >= a[2], "{r:?}");
    }
    assert!(sides.len() >= 2, "{sides:?}");
    assert!(blocked > 0, "the first 200 rows include blocked decisions");
    let o = plumbline(&dir, &["audit", "decisions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        first == read(&path),
        "decision_attribution.csv differs between two runs"
    );
}

/// The plan's §4.1: `check --profile post-train --checkpoint PATH` checks the new checkpoint (one the
/// globs do not find) and exports its learned conditions; a checkpoint with a broken scaler fails with
/// the gates' findings and says the audit could not run.
#[test]
fn post_train_checks_the_new_checkpoint_and_exports_its_conditions() {
    let (tmp, dir) = example_with_rows(150);
    // The first 150 rows are too few to recompute the scaler on (norm-stats would say so).
    crate::util::replace_in(
        &dir.join("plumbline.toml"),
        "recompute = true",
        "recompute = false",
    );
    // A new run's checkpoint outside the config's directory and its globs.
    let outside = tmp.path().join("runs");
    std::fs::create_dir_all(&outside).unwrap();
    let new = outside.join("new.pt");
    std::fs::copy(dir.join("checkpoints/momentum_v3.pt"), &new).unwrap();
    let arg = new.to_str().unwrap();
    let o = plumbline(
        &dir,
        &["check", "--profile", "post-train", "--checkpoint", arg],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        crate::util::stdout(&o),
        stderr(&o)
    );
    assert!(
        crate::util::stdout(&o).contains("3 checkpoints"),
        "{}",
        crate::util::stdout(&o)
    );
    let summary: Value = serde_json::from_slice(&read(
        &dir.join("artifacts/learned_conditions/summary.json"),
    ))
    .unwrap();
    assert!(
        summary["checkpoint"]
            .as_str()
            .unwrap()
            .ends_with("runs/new.pt"),
        "{}",
        summary["checkpoint"]
    );

    // Other weights under the same model version: the inventory says so (exit 1), and the conditions
    // of the new weights are still exported for the reviewer.
    std::fs::copy(fixture("checkpoints/direction_collapsed.pt"), &new).unwrap();
    let o = plumbline(
        &dir,
        &["check", "--profile", "post-train", "--checkpoint", arg],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        crate::util::stdout(&o),
        stderr(&o)
    );
    assert!(
        crate::util::stdout(&o).contains("error[checkpoint-version-conflict]"),
        "{}",
        crate::util::stdout(&o)
    );
    assert!(stderr(&o).contains("audit conditions: "), "{}", stderr(&o));

    std::fs::create_dir_all(dir.join("runs")).unwrap();

    std::fs::copy(fixture("checkpoints/no_mad.pt"), dir.join("runs/broken.pt")).unwrap();
    let o = plumbline(
        &dir,
        &[
            "check",
            "--profile",
            "post-train",
            "--checkpoint",
            "runs/broken.pt",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        crate::util::stdout(&o),
        stderr(&o)
    );
    assert!(
        crate::util::stdout(&o).contains("runs/broken.pt"),
        "{}",
        crate::util::stdout(&o)
    );
    assert!(
        stderr(&o).contains("error: audit conditions:"),
        "{}",
        stderr(&o)
    );

    let o = plumbline(
        &dir,
        &[
            "check",
            "--profile",
            "post-train",
            "--checkpoint",
            "runs/none.pt",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--checkpoint runs/none.pt"),
        "{}",
        stderr(&o)
    );
}
