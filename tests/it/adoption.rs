//! Adopting a team's existing pipeline: checkpoints saved the ways ordinary teams save them, with the
//! metadata where they keep it (tests/fixtures/adoption, written by torch, safetensors, PyYAML,
//! Lightning and MLflow: generate.py). The contract, the docs, the hook and every gate its facts allow
//! work without a change to the checkpoints.

use std::path::Path;

use git2::Repository;
use serde_json::Value;

use crate::base::commit_all;
use crate::util::{derive_json, example_copy, fixture, plumbline, replace_in, stderr, stdout};

fn adoption(rel: &str) -> std::path::PathBuf {
    fixture(&format!("adoption/{rel}"))
}

/// The example with its two checkpoints re-saved as bare state dicts (no metadata inside), and the
/// example's own inference scripts reading the metadata from the sidecar when the checkpoint has none,
/// as a team keeping its metadata in a sidecar would write them.
fn bare_example(sidecar: Option<&str>) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, ex) = example_copy();
    let ck = ex.join("checkpoints");
    for f in ["momentum_v3.pt", "momentum_v3.safetensors"] {
        std::fs::copy(adoption(&format!("bare/{f}")), ck.join(f)).unwrap();
    }
    if let Some(s) = sidecar {
        let name = Path::new(s).file_name().unwrap();
        std::fs::copy(adoption(s), ck.join(name)).unwrap();
    }
    let sidecar_meta = r#"(header.pop("__metadata__", {}) or {k: json.dumps(v) for k, v in json.load(open(str(path)[: -len(".safetensors")] + ".json")).items()})"#;
    replace_in(
        &ex.join("backtest/infer.py"),
        r#"header.pop("__metadata__", {})"#,
        sidecar_meta,
    );
    replace_in(
        &ex.join("live/infer.py"),
        r#"header.pop("__metadata__", {})"#,
        sidecar_meta,
    );
    (dir, ex)
}

/// Point `checkpoints.production` at `production` and the globs at `glob` (config-relative).
fn point_production(ex: &Path, production: &str, glob: &str) {
    let cfg = ex.join("plumbline.toml");
    replace_in(
        &cfg,
        "production = \"checkpoints/momentum_v3.pt\"",
        &format!("production = \"{production}\""),
    );
    replace_in(
        &cfg,
        "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\"]",
        &format!("globs = [\"{glob}\"]"),
    );
}

/// `check` as JSON: (exit code, report).
fn check(ex: &Path) -> (Option<i32>, Value) {
    let out = plumbline(ex, &["--format", "json", "check"]);
    let report = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code(), report)
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// `hook pre-commit` in a repository holding `ex`, everything staged: its exit code and output.
fn hook(dir: &Path, ex: &Path) -> (Option<i32>, String) {
    let repo = Repository::init(dir).unwrap();
    commit_all(&repo, "adopt plumbline");
    let cfg = ex.join("plumbline.toml");
    let out = plumbline(
        dir,
        &["--config", cfg.to_str().unwrap(), "hook", "pre-commit"],
    );
    (
        out.status.code(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
#[cfg(feature = "native")]
fn bare_state_dicts_with_a_json_sidecar_run_every_gate_clean() {
    let (dir, ex) = bare_example(Some("bare/momentum_v3.json"));
    // The contract is the example's, byte for byte: the facts are the same, only where they live moved.
    let out = plumbline(&ex, &["derive"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let committed = std::fs::read_to_string(ex.join("docs/PIPELINE_CONTRACT.json")).unwrap();
    assert_eq!(stdout(&out), committed);
    assert_eq!(stderr(&out), "", "no note: nothing is missing");
    let out = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(
        stderr(&out),
        "docs/PIPELINE_CONTRACT.json: up to date\ndocs/PIPELINE_CONTRACT.md: up to date\n"
    );
    let (code, report) = check(&ex);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["counts"]["errors"], 0, "{report:#}");
    assert_eq!(report["counts"]["warnings"], 0, "{report:#}");
    let skipped: Vec<&str> = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g.get("skipped").is_some())
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["contract-changes"], "{report:#}");
    let (code, out) = hook(dir.path(), &ex);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn without_the_sidecar_the_gap_is_one_finding_and_nothing_is_blocked() {
    let (dir, ex) = bare_example(None);
    let (code, report) = check(&ex);
    assert_eq!(code, Some(1));
    let missing = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "checkpoint-missing-fact")
        .unwrap_or_else(|| panic!("{report:#}"));
    let message = missing["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "the production checkpoint lacks 11 required facts: `feature_cols` (feature-cols), "
        ),
        "{message}"
    );
    let help = missing["help"].as_str().unwrap();
    assert!(
        help.contains("checkpoints/momentum_v3.json, checkpoints/momentum_v3.yaml"),
        "{help}"
    );
    assert_eq!(
        codes(&report)
            .iter()
            .filter(|c| *c == "checkpoint-missing-fact")
            .count(),
        1
    );
    // derive, docs --write and the hook still work; the contract names what the checkpoint lacks.
    let out = plumbline(&ex, &["derive"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let contract: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        contract["production-checkpoint"]["missing"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    assert!(
        stderr(&out).starts_with("note: checkpoints/momentum_v3.pt does not state `feature-cols`")
    );
    let out = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = std::fs::read_to_string(ex.join("docs/PIPELINE_CONTRACT.md")).unwrap();
    assert!(
        md.contains("| input_dim | not stated by the checkpoint |"),
        "{md}"
    );
    assert!(md.contains("| missing metadata | `feature-cols`, "), "{md}");
    let (code, out) = hook(dir.path(), &ex);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_yaml_sidecar_written_by_pyyaml_gives_the_same_contract_and_lines() {
    let (_dir, ex) = bare_example(Some("yaml/momentum_v3.yaml"));
    let out = plumbline(&ex, &["derive"]);
    let committed = std::fs::read_to_string(ex.join("docs/PIPELINE_CONTRACT.json")).unwrap();
    assert_eq!(stdout(&out), committed, "{}", stderr(&out));
    // A fact that disagrees is found at its line in the sidecar.
    let yaml = ex.join("checkpoints/momentum_v3.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let line = text
        .lines()
        .position(|l| l == "input_dim: 14")
        .unwrap_or_else(|| panic!("{text}"))
        + 1;
    replace_in(&yaml, "input_dim: 14", "input_dim: 15");
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let f = &report["findings"][0];
    assert_eq!(f["code"], "input-dim-mismatch", "{report:#}");
    assert_eq!(f["location"]["path"], "checkpoints/momentum_v3.yaml");
    assert_eq!(f["location"]["line"], line, "{report:#}");
    // A reordered list is found at the moved item's own line in the sidecar.
    replace_in(&yaml, "input_dim: 15", "input_dim: 14");
    replace_in(&yaml, "- ret_5\n- ret_10\n", "- ret_10\n- ret_5\n");
    let item = text.lines().position(|l| l == "- ret_5").unwrap() + 1;
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let f = &report["findings"][0];
    assert_eq!(f["code"], "feature-order-mismatch", "{report:#}");
    assert_eq!(f["related"][0]["path"], "checkpoints/momentum_v3.yaml");
    assert_eq!(f["related"][0]["line"], item, "{report:#}");
}

#[test]
#[cfg(feature = "native")]
fn a_state_dict_under_model_state_dict_runs_the_model_natively() {
    let (_dir, ex) = example_copy();
    let ck = ex.join("checkpoints");
    std::fs::copy(adoption("nested/momentum_v3.pt"), ck.join("momentum_v3.pt")).unwrap();
    std::fs::copy(
        adoption("nested/momentum_v3.json"),
        ck.join("momentum_v3.json"),
    )
    .unwrap();
    let out = plumbline(&ex, &["--format", "json", "gate", "forward-contract"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", stderr(&out));
    assert_eq!(report["counts"]["errors"], 0, "{report:#}");
}

#[test]
#[cfg(feature = "native")]
fn a_lightning_checkpoint_keeps_its_metadata_in_hyper_parameters() {
    let (_dir, ex) = example_copy();
    std::fs::copy(
        adoption("lightning/momentum.ckpt"),
        ex.join("checkpoints/momentum.ckpt"),
    )
    .unwrap();
    point_production(&ex, "checkpoints/momentum.ckpt", "checkpoints/*.ckpt");
    // The LightningModule holds the network as `self.model`.
    replace_in(
        &ex.join("plumbline.toml"),
        "[checkpoints]\n",
        "[checkpoints]\nkeys = { state-dict = \"state_dict.model\" }\n",
    );
    let out = plumbline(
        &ex,
        &["--format", "json", "check", "--profile", "pre-backtest"],
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}{}", stderr(&out));
    assert_eq!(report["counts"]["warnings"], 0, "{report:#}");
    let contract = derive_json(&ex);
    assert_eq!(contract["production-checkpoint"]["input-dim"], 14);
    assert!(contract["production-checkpoint"].get("missing").is_none());
}

#[test]
fn an_mlflow_model_directory_gives_its_signature_and_run() {
    let (_dir, ex) = example_copy();
    let model = ex.join("mlflow/model");
    std::fs::create_dir_all(model.join("data")).unwrap();
    for f in ["MLmodel", "data/state_dict.pth", "data/model.pth"] {
        std::fs::copy(adoption(&format!("mlflow/model/{f}")), model.join(f)).unwrap();
    }
    point_production(
        &ex,
        "mlflow/model/data/state_dict.pth",
        "mlflow/model/data/state_dict.pth",
    );
    let contract = derive_json(&ex);
    let p = &contract["production-checkpoint"];
    assert_eq!(p["input-dim"], 14, "{contract:#}");
    // The signature states the columns, their dtypes and the width; the rest is missing.
    let missing: Vec<&str> = p["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        // (No schema hash: the signature states the names and dtypes, compared one by one.)
        [
            "scaler-kind",
            "median",
            "mad",
            "model-version",
            "heads-version",
            "heads",
            "arch"
        ]
    );
    // The columns agree with the code's, found at the signature's line in MLmodel.
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(codes(&report), ["checkpoint-missing-fact"], "{report:#}");
    let mlmodel = std::fs::read_to_string(model.join("MLmodel")).unwrap();
    replace_in(
        &model.join("MLmodel"),
        "\"name\": \"ret_5\"",
        "\"name\": \"ret_6\"",
    );
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "feature-set-mismatch")
        .unwrap_or_else(|| panic!("{report:#}"));
    let signature = mlmodel.lines().position(|l| l == "signature:").unwrap() + 2;
    // At the code's line, with the checkpoint's side at the signature's `inputs:` line.
    let related = &f["related"][0];
    assert_eq!(related["path"], "mlflow/model/MLmodel", "{report:#}");
    assert_eq!(related["line"], signature, "the `inputs:` line");
    // MLflow's own pickled module (data/model.pth) carries code, and is refused as such.
    let out = plumbline(
        &ex,
        &[
            "--format",
            "json",
            "check",
            "--checkpoint",
            "mlflow/model/data/model.pth",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    // MLflow pickles with cloudpickle, which rebuilds the class from its code.
    let err = stderr(&out);
    assert!(
        err.contains(
            "refused: the pickle references `cloudpickle.cloudpickle._make_skeleton_class`"
        ) && err.contains("nothing in the file was executed"),
        "{err}"
    );
}

/// A workflow config as quant teams keep theirs (anchors, a merge key, YAML 1.1 spellings), written the
/// way PyYAML reads it.
const WORKFLOW: &str = "\
# The momentum workflow: one place for the data handler, reused by the task.
data_handler_config: &handler
  start_time: 2018-01-01
  features: &features
    - ret_1
    - ret_5
    - ret_10
    - ret_20
    - vol_10
    - vol_20
    - vol_ratio
    - rsi_14
    - vz_20
    - ma_gap_10
    - ma_gap_50
    - range_10
    - hl_ratio
    - mom_5_20
  label:
    horizon: 5
    thresholds: {long: 0.006, short: -0.006}
  shuffle: no
task:
  dataset:
    handler:
      <<: *handler
      nan_policy: zero-fill
";

#[test]
fn facts_in_a_yaml_workflow_config_give_the_same_contract_and_their_lines() {
    let (_dir, ex) = example_copy();
    std::fs::create_dir_all(ex.join("configs")).unwrap();
    std::fs::write(ex.join("configs/workflow.yaml"), WORKFLOW).unwrap();
    let cfg = ex.join("plumbline.toml");
    replace_in(
        &cfg,
        r#"columns = { python = "pipeline/features.py", name = "FEATURE_COLS" }"#,
        r#"columns = { yaml = "configs/workflow.yaml", key = "task.dataset.handler.features" }"#,
    );
    replace_in(
        &cfg,
        r#"horizon = { python = "pipeline/labels.py", name = "HORIZON" }"#,
        r#"horizon = { yaml = "configs/workflow.yaml", key = "task.dataset.handler.label.horizon" }"#,
    );
    replace_in(
        &cfg,
        r#"thresholds = { python = "pipeline/labels.py", name = "THRESHOLDS" }"#,
        r#"thresholds = { yaml = "configs/workflow.yaml", key = "data_handler_config.label.thresholds" }"#,
    );
    let out = plumbline(&ex, &["derive"]);
    let committed = std::fs::read_to_string(ex.join("docs/PIPELINE_CONTRACT.json")).unwrap();
    assert_eq!(stdout(&out), committed, "{}", stderr(&out));
    // Reordering the anchored list moves the feature the merge key brings in: the finding points at the
    // moved item's line in the YAML file.
    replace_in(
        &ex.join("configs/workflow.yaml"),
        "    - ret_5\n    - ret_10\n",
        "    - ret_10\n    - ret_5\n",
    );
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let f = &report["findings"][0];
    assert_eq!(f["code"], "feature-order-mismatch", "{report:#}");
    assert_eq!(f["location"]["path"], "configs/workflow.yaml", "{report:#}");
    assert_eq!(
        f["location"]["line"], 6,
        "`- ret_10` is now on line 6: {report:#}"
    );
}

/// A code fact read from the production checkpoint (or from its sidecar) compares the checkpoint with
/// itself: a warning at the config line, naming where it is read from.
#[test]
fn a_code_fact_read_from_the_checkpoint_is_a_warning_at_its_config_line() {
    let (_dir, ex) = bare_example(Some("bare/momentum_v3.json"));
    let cfg = ex.join("plumbline.toml");
    replace_in(
        &cfg,
        r#"version = { python = "pipeline/model.py", name = "MODEL_VERSION" }"#,
        r#"version = { checkpoint = "production", key = "model_version" }"#,
    );
    replace_in(
        &cfg,
        r#"columns = { python = "pipeline/features.py", name = "FEATURE_COLS" }"#,
        r#"columns = { json = "checkpoints/momentum_v3.json", key = "feature_cols" }"#,
    );
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(out.status.code(), Some(0), "warnings only: {report:#}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let line = |key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let found: Vec<(String, u64, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["code"], "fact-from-checkpoint");
            assert_eq!(f["severity"], "warning");
            (
                f["location"]["path"].as_str().unwrap().to_owned(),
                f["location"]["line"].as_u64().unwrap(),
                f["related"][0]["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "plumbline.toml".to_owned(),
                line("version =") as u64,
                "checkpoints/momentum_v3.json".to_owned()
            ),
            (
                "plumbline.toml".to_owned(),
                line("columns =") as u64,
                "checkpoints/momentum_v3.json".to_owned()
            ),
        ],
        "{report:#}"
    );
}

/// The Hugging Face layout: `model.safetensors` (no `__metadata__`) with a `config.json` beside it.
#[test]
fn a_safetensors_model_with_a_config_json_beside_it() {
    let (_dir, ex) = example_copy();
    let hf = ex.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::copy(
        adoption("bare/momentum_v3.safetensors"),
        hf.join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(adoption("bare/momentum_v3.json"), hf.join("config.json")).unwrap();
    point_production(&ex, "hf/model.safetensors", "hf/*.safetensors");
    let contract = derive_json(&ex);
    let p = &contract["production-checkpoint"];
    assert_eq!(p["format"], "safetensors");
    assert_eq!(p["input-dim"], 14);
    assert!(p.get("missing").is_none(), "{contract:#}");
    let out = plumbline(&ex, &["--format", "json", "gate", "feature-schema"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// Skip reasons name the config in use, not `plumbline.toml` (ruleset-smoke, which without the native
/// engine is skipped for that first).
#[test]
#[cfg(feature = "native")]
fn skip_reasons_name_the_config_in_use() {
    let (_dir, ex) = example_copy();
    let text = std::fs::read_to_string(ex.join("plumbline.toml")).unwrap();
    let start = text.find("[ruleset]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let mlp = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(ex.join("plumbline.mlp.toml"), mlp).unwrap();
    let out = plumbline(
        &ex,
        &[
            "--config",
            "plumbline.mlp.toml",
            "--format",
            "json",
            "check",
            "--profile",
            "pre-backtest",
        ],
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let smoke = report["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "ruleset-smoke")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(
        smoke["skipped"],
        "not configured: no `[ruleset]` in plumbline.mlp.toml"
    );
}
