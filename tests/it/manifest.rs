//! The run manifest: `check --profile pre-live` writes it, it validates against its schema, its `run`
//! hash is the same for the same inputs, git state is recorded, and `--session-log` appends a line.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::base::commit_all;
use crate::util::{example_copy, plumbline, repo, stderr};

fn manifest_at(ex: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(ex.join("artifacts/audit/run_manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `check --profile pre-live --session-log session.log` in `ex`, which must not fail to run.
fn pre_live_with_session_log(ex: &std::path::Path) -> std::process::Output {
    let out = plumbline(
        ex,
        &[
            "check",
            "--profile",
            "pre-live",
            "--session-log",
            "session.log",
        ],
    );
    assert!(out.status.code().is_some_and(|c| c < 2), "{}", stderr(&out));
    out
}

#[test]
fn pre_live_writes_a_manifest_that_validates_and_hashes_the_same_inputs_the_same() {
    let (_d, ex) = example_copy();
    let out = pre_live_with_session_log(&ex);
    assert!(
        stderr(&out).contains("artifacts/audit/run_manifest.json: run manifest written (sha256:")
    );
    let m = manifest_at(&ex);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/run-manifest.schema.json")).unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&m).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let run = &m["run"];
    assert_eq!(run["tool"], "plumbline");
    assert_eq!(run["profile"], "pre-live");
    assert_eq!(run["environment"]["os"], std::env::consts::OS);
    assert!(
        run["git"].is_null(),
        "the example copy is not in a repository"
    );
    let checkpoints: Vec<&str> = run["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        checkpoints,
        [
            "checkpoints/momentum_v3.pt",
            "checkpoints/momentum_v3.safetensors"
        ]
    );
    let pt = std::fs::read(ex.join("checkpoints/momentum_v3.pt")).unwrap();
    let pt_hash = format!(
        "sha256:{}",
        plumbline::checkpoint::hex(&Sha256::digest(&pt))
    );
    assert_eq!(run["checkpoints"][0]["sha256"], pt_hash);
    let data: Vec<&str> = run["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        data,
        [
            "data/slice.csv",
            "data/prices_recent.csv",
            "ruleset.toml",
            "reference/outputs.json",
            "reference/output_baseline.json"
        ]
    );
    assert!(
        run["contract-sha256"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The hash is over the canonical `run`; timings and the time are outside it.
    let canonical = plumbline::canonical::to_string(run).unwrap();
    let expect = format!(
        "sha256:{}",
        plumbline::checkpoint::hex(&Sha256::digest(canonical.as_bytes()))
    );
    assert_eq!(m["run-sha256"], expect);
    assert!(m["timings-ms"].as_array().unwrap().len() >= 13);
    // Again: the same run hash.
    pre_live_with_session_log(&ex);
    let again = manifest_at(&ex);
    assert_eq!(again["run-sha256"], m["run-sha256"]);
    let log = std::fs::read_to_string(ex.join("session.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["verdict"], "passed");
    assert_eq!(lines[1]["run-sha256"], m["run-sha256"]);
    let file = std::fs::read(ex.join("artifacts/audit/run_manifest.json")).unwrap();
    assert_eq!(
        lines[1]["manifest-sha256"],
        format!(
            "sha256:{}",
            plumbline::checkpoint::hex(&Sha256::digest(&file))
        )
    );
}

#[test]
fn the_manifest_records_the_commit_and_whether_the_tree_is_dirty() {
    let (d, ex) = example_copy();
    let repo = git2::Repository::init(d.path()).unwrap();
    let commit = commit_all(&repo, "base");
    let run = |ex: &std::path::Path| {
        let out = plumbline(
            ex,
            &["check", "--profile", "pre-backtest", "--manifest", "m.json"],
        );
        assert!(out.status.code().is_some_and(|c| c < 2), "{}", stderr(&out));
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(ex.join("m.json")).unwrap()).unwrap();
        m["run"]["git"].clone()
    };
    let git = run(&ex);
    assert_eq!(git["commit"], commit.to_string());
    assert_eq!(git["dirty"], false);
    let f = ex.join("pipeline/model.py");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("{text}\n# edited\n")).unwrap();
    assert_eq!(run(&ex)["dirty"], true);
}
