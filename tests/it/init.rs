//! `plumbline init` on a pipeline written the way ordinary teams write theirs (examples/reversion: a
//! feature list in a YAML workflow config, a bare `state_dict` written by `torch.save`, its metadata in
//! a JSON sidecar, a robust scaler with a 1.4826 factor and a ±3 clip, one regression output), with no
//! `plumbline.toml` and no docs: the config and docs it writes are the ones committed beside the
//! example, byte for byte, and `check` runs every gate the pipeline's facts allow.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{plumbline, replace_in, stderr, stdout};

fn reversion() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reversion")
}

/// `src` copied to `dst` without what `init` writes.
fn copy_without_config(src: &Path, dst: &Path) {
    crate::util::copy_tree(src, dst, &["__pycache__", "plumbline.toml", "docs"]);
}

/// A copy of the example without its config and docs, after `init` (exit 1: the sidecar's `arch`).
fn adopted() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("reversion");
    copy_without_config(&reversion(), &ex);
    assert_eq!(plumbline(&ex, &["init"]).status.code(), Some(1));
    (dir, ex)
}

fn ran_and_codes(report: &Value) -> (Vec<&str>, Vec<&str>) {
    let ran = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g.get("skipped").is_none())
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    let mut codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    (ran, codes)
}

#[test]
fn init_adopts_a_pipeline_written_like_an_ordinary_teams() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("reversion");
    copy_without_config(&reversion(), &ex);
    let out = plumbline(&ex, &["init"]);
    let said = stderr(&out);
    // The check it runs finds the pipeline's real gaps (exit 1), not missing configuration.
    assert_eq!(out.status.code(), Some(1), "{}{said}", stdout(&out));
    for line in [
        "found    features.columns                   configs/train.yaml: features",
        "found    targets.horizon                    configs/train.yaml: label.horizon",
        "found    scaler.factor                      configs/train.yaml: scaler.factor",
        "found    checkpoints.keys.input-dim         arch.n_features",
        "docs/PIPELINE_CONTRACT.md: created",
        "still missing (each line says what to add to plumbline.toml):",
        "- targets.thresholds: no thresholds (a regression target); add under [targets]: thresholds = ",
        "- arch: the native engine (forward-contract) needs the layers by their state-dict names; read off the tensors (3 Linear layers, widths 10 → 32 → 16 → 1), add to `arch` in artifacts/model.json: \"type\": \"mlp\", \"input_dim\": 10, \"layers\": [\"net.0\", \"net.3\"], \"heads\": [{\"name\": \"output\", \"layer\": \"net.6\"}]",
    ] {
        assert!(said.contains(line), "{line}\n---\n{said}");
    }
    // What it wrote is what the example commits: deterministic, and reviewed.
    for f in [
        "plumbline.toml",
        "docs/PIPELINE_CONTRACT.json",
        "docs/PIPELINE_CONTRACT.md",
    ] {
        assert_eq!(
            std::fs::read_to_string(ex.join(f)).unwrap(),
            std::fs::read_to_string(reversion().join(f)).unwrap(),
            "{f}"
        );
    }
    // Every gate the facts allow runs; the ones that need the pipeline's commands or data say so.
    let out = plumbline(&ex, &["--format", "json", "check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (ran, codes) = ran_and_codes(&report);
    // (forward-contract is skipped: the model cannot be built from the team's `arch`, which
    // checkpoint-inventory reports; a build without the native engine skips it too.)
    let expected = vec![
        "checkpoint-inventory",
        "feature-schema",
        "norm-stats",
        "labels",
        "heads",
        "docs-drift",
    ];
    assert_eq!(ran, expected);
    // The gap is real: the sidecar's `arch` is the team's own description, which the native engine
    // cannot build from: checkpoint-inventory says so once (forward-contract leaves it to it). Nothing
    // else is missing: the sidecar states the feature list, so no schema hash is asked for.
    assert_eq!(
        codes,
        ["arch-invalid", "checkpoint-fact-invalid"],
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("`arch.layers` is missing"),
        "{}",
        stdout(&out)
    );
    // norm-stats compared the code's scaler (YAML) with the sidecar's: robust, factor and clip agree.
    let norm = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "norm-stats")
        .unwrap();
    assert_eq!(norm["summary"], "10 features · robust");
    // A second init never overwrites.
    let before = std::fs::read(ex.join("plumbline.toml")).unwrap();
    let out = plumbline(&ex, &["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("plumbline.toml: already exists; `plumbline init` never overwrites a file (pass --force to replace it)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(ex.join("plumbline.toml")).unwrap(), before);
}

#[test]
fn a_sidecar_scaler_that_disagrees_with_the_code_is_caught_after_init() {
    let (_dir, ex) = adopted();
    // The training config changes its clip; the checkpoint was trained with ±3.
    replace_in(&ex.join("configs/train.yaml"), "  clip: 3.0", "  clip: 5.0");
    let out = plumbline(&ex, &["--format", "json", "check"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (_, codes) = ran_and_codes(&report);
    assert!(codes.contains(&"scaler-mismatch"), "{codes:?}");
}

#[test]
fn init_without_a_readable_checkpoint_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("features.yaml"), "features: [a, b]\n").unwrap();
    let out = plumbline(dir.path(), &["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no checkpoint plumbline can read was found (looked for *.pt *.pth *.ckpt *.bin *.safetensors *.onnx *.pkl *.pickle)"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("plumbline.toml").exists());
}

#[test]
fn a_version_bumped_in_the_code_but_not_the_checkpoint_is_caught() {
    let (_dir, ex) = adopted();
    replace_in(
        &ex.join("configs/train.yaml"),
        "  version: \"0.4.0\"",
        "  version: \"0.5.0\"",
    );
    // The docs follow the code; the checkpoint does not.
    assert_eq!(plumbline(&ex, &["docs", "--write"]).status.code(), Some(0));
    let out = plumbline(&ex, &["gate", "checkpoint-inventory"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stdout(&out);
    assert!(
        said.contains("error[checkpoint-version-mismatch]: artifacts/model.pt is model version 0.4.0, the code says 0.5.0")
            && said.contains("--> artifacts/model.json:3")
            && said.contains("::: configs/train.yaml:41"),
        "{said}"
    );
}

#[test]
fn the_tensor_names_arch_needs_are_listed() {
    let out = plumbline(&reversion(), &["inventory", "--tensors"]);
    // The team's own `arch` cannot be read: the listing is there to write one.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("arch-invalid"), "{said}");
    assert!(
        said.contains(r#"    {"type": "Linear", "name": "net.3", "in_features": 32, "out_features": 16, "bias": true}"#),
        "{said}"
    );
    assert!(
        said.contains("artifacts/model.pt: 6 tensors\n  net.0.bias    float32   [32]\n  net.0.weight  float32   [32, 10]\n"),
        "{said}"
    );
}

/// With the team's `arch` completed in the sidecar by the two keys plumbline's format adds (the layers
/// and the head, named as `inventory --tensors` lists them; the width is the sidecar's own
/// `n_features`), forward-contract runs the bare state dict natively.
#[cfg(feature = "native")]
#[test]
fn two_sidecar_keys_let_the_native_engine_run_the_bare_state_dict() {
    let (_dir, ex) = adopted();
    let sidecar = ex.join("artifacts/model.json");
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    meta["arch"]["layers"] = serde_json::json!(["net.0", "net.3"]);
    meta["arch"]["heads"] = serde_json::json!([{"name": "output", "layer": "net.6"}]);
    std::fs::write(&sidecar, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    let out = plumbline(&ex, &["--format", "json", "check"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (ran, codes) = ran_and_codes(&report);
    assert!(ran.contains(&"forward-contract"));
    // Only the note that the NaN policy, not stated, leaves nothing to probe with NaN.
    assert_eq!(codes, ["forward-nan-probe-skipped"], "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "the NaN policy is not stated (`features.nan-policy`), so no NaN row is probed"
        )
    );
    assert_eq!(out.status.code(), Some(0));
}

/// The momentum example with no config and no docs, its checkpoints replaced by `files` (fixture
/// paths under adoption/, copied into checkpoints/): what a team with that layout starts from.
fn momentum_with(files: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let (dir, ex) = crate::util::example_copy();
    std::fs::remove_file(ex.join("plumbline.toml")).unwrap();
    std::fs::remove_dir_all(ex.join("docs")).unwrap();
    let ck = ex.join("checkpoints");
    std::fs::remove_dir_all(&ck).unwrap();
    std::fs::create_dir_all(&ck).unwrap();
    for f in files {
        let from = crate::util::fixture(&format!("adoption/{f}"));
        std::fs::copy(&from, ck.join(from.file_name().unwrap())).unwrap();
    }
    (dir, ex)
}

#[test]
fn init_reads_each_checkpoint_layout_without_a_hand_written_line() {
    for (layout, files, key_line) in [
        (
            "bare + JSON sidecar",
            &["bare/momentum_v3.pt", "bare/momentum_v3.json"][..],
            None,
        ),
        (
            "bare + YAML sidecar",
            &["bare/momentum_v3.pt", "yaml/momentum_v3.yaml"][..],
            None,
        ),
        (
            "nested state dict",
            &["nested/momentum_v3.pt", "nested/momentum_v3.json"][..],
            None,
        ),
        // A LightningModule holding the network as `self.model`: facts in `hyper_parameters` (the
        // default keys reach them), weights under `state_dict.model`.
        (
            "Lightning",
            &["lightning/momentum.ckpt"][..],
            Some("state-dict = \"state_dict.model\""),
        ),
    ] {
        let (_d, ex) = momentum_with(files);
        let out = plumbline(&ex, &["init"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{layout}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let config = std::fs::read_to_string(ex.join("plumbline.toml")).unwrap();
        assert!(
            config.contains(
                "columns = { python = \"pipeline/features.py\", name = \"FEATURE_COLS\" }"
            ),
            "{layout}: {config}"
        );
        if let Some(line) = key_line {
            assert!(config.contains(line), "{layout}: {config}");
        }
        let report: Value =
            serde_json::from_str(&stdout(&plumbline(&ex, &["--format", "json", "check"]))).unwrap();
        let (ran, codes) = ran_and_codes(&report);
        // init found the slice (data/slice.csv) and the reference: the model gates run on them.
        assert!(
            config.contains("[slice]\nfeatures = \"data/slice.csv\"")
                && config.contains("reference = \"reference/outputs.json\""),
            "{layout}: {config}"
        );
        let gates = if cfg!(feature = "native") { 8 } else { 6 };
        assert_eq!(ran.len(), gates, "{layout}: {ran:?}");
        assert!(codes.is_empty(), "{layout}: {codes:?}");
    }
}

#[test]
fn a_docs_file_the_team_already_has_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("reversion");
    copy_without_config(&reversion(), &ex);
    std::fs::create_dir_all(ex.join("docs")).unwrap();
    let theirs = "# Our pipeline\n\nHand-written, no markers.\n";
    std::fs::write(ex.join("docs/PIPELINE_CONTRACT.md"), theirs).unwrap();
    let out = plumbline(&ex, &["init"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the docs were not written: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(ex.join("docs/PIPELINE_CONTRACT.md")).unwrap(),
        theirs
    );
    // The config is written, and check says what the docs lack.
    assert!(stdout(&out).contains("docs-markers"), "{}", stdout(&out));
}

#[test]
fn a_test_fixture_is_never_taken_for_the_production_checkpoint() {
    // The bare production model (no metadata at all), and a fully annotated copy under tests/, whose
    // metadata states every fact.
    let (_d, ex) = momentum_with(&["bare/momentum_v3.pt"]);
    std::fs::create_dir_all(ex.join("tests/fixtures")).unwrap();
    std::fs::copy(
        crate::util::example().join("checkpoints/momentum_v3.pt"),
        ex.join("tests/fixtures/full.pt"),
    )
    .unwrap();
    // (exit 1: the bare checkpoint lacks its metadata, which check reports.)
    let out = plumbline(&ex, &["init"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let config = std::fs::read_to_string(ex.join("plumbline.toml")).unwrap();
    assert!(
        config.contains("production = \"checkpoints/momentum_v3.pt\""),
        "{config}"
    );
}

#[test]
fn a_fact_the_code_does_not_declare_is_not_compared_with_the_checkpoints() {
    let (_dir, ex) = adopted();
    // The sidecar states a NaN policy and float64 dtypes; the code declares neither.
    let sidecar = ex.join("artifacts/model.json");
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&sidecar).unwrap()).unwrap();
    meta["nan_policy"] = serde_json::json!("zero-fill");
    meta["feature_dtypes"] = serde_json::json!("float64");
    std::fs::write(&sidecar, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    let out = plumbline(&ex, &["--format", "json", "check"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (_, codes) = ran_and_codes(&report);
    for code in [
        "nan-policy-mismatch",
        "feature-dtype-mismatch",
        "schema-hash-mismatch",
    ] {
        assert!(!codes.contains(&code), "{code}: {codes:?}");
    }
    // Declared, they are compared.
    std::fs::write(ex.join("dtypes.json"), r#"{"dtypes": "float32"}"#).unwrap();
    replace_in(
        &ex.join("plumbline.toml"),
        "# dtypes = { yaml = \"<file>\", key = \"<key>\" }",
        "dtypes = { json = \"dtypes.json\", key = \"dtypes\" }",
    );
    let out = plumbline(&ex, &["--format", "json", "check"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (_, codes) = ran_and_codes(&report);
    assert!(codes.contains(&"feature-dtype-mismatch"), "{codes:?}");
}

/// A bare state dict whose tensors are not a plain Linear chain (BatchNorm between the layers):
/// init cannot read the order of layers off the tensors, and says where to write `arch` from.
#[test]
fn init_points_a_batchnorm_model_at_the_torch_helper() {
    let d = tempfile::tempdir().unwrap();
    let ex = d.path();
    crate::util::copy_tree(
        &crate::util::example().join("pipeline"),
        &ex.join("pipeline"),
        &[],
    );
    std::fs::create_dir_all(ex.join("checkpoints")).unwrap();
    std::fs::copy(
        crate::util::fixture("models/momentum_bn/momentum_bn.pt"),
        ex.join("checkpoints/momentum_bn.pt"),
    )
    .unwrap();
    let out = plumbline(ex, &["init"]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        said.contains("  - arch: the native engine (forward-contract) needs the model's layers in order; write them from the module with python/plumbline_torch.py")
            && said.contains("into checkpoints/momentum_bn.json"),
        "{said}"
    );
}
