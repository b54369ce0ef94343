//! `--changed-from REF`: the example's `[[paths]]` rules pick the gates a change needs; a file no rule
//! matches needs every gate. Uses the throwaway repository of `base.rs`.

use serde_json::Value;

use crate::base::commit_all;
use crate::util::{example_copy, plumbline, stderr, stdout};

/// Gates that ran, and those skipped as not needed.
fn ran_and_not_needed(report: &Value) -> (Vec<String>, Vec<String>) {
    let mut ran = Vec::new();
    let mut not_needed = Vec::new();
    for g in report["gates"].as_array().unwrap() {
        let name = g["gate"].as_str().unwrap().to_owned();
        match g["skipped"].as_str() {
            None => ran.push(name),
            Some(why) if why.starts_with("not needed by") => not_needed.push(name),
            Some(_) => {}
        }
    }
    (ran, not_needed)
}

fn check_changed_from(ex: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json", "--changed-from", "main", "check"];
    args.extend_from_slice(extra);
    let out = plumbline(ex, &args);
    assert!(out.status.code().is_some_and(|c| c < 2), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn repo_with_main() -> (tempfile::TempDir, std::path::PathBuf, git2::Repository) {
    let (dir, ex) = example_copy();
    let repo = git2::Repository::init(dir.path()).unwrap();
    repo.set_head("refs/heads/pr").unwrap();
    let base = commit_all(&repo, "base");
    repo.branch("main", &repo.find_commit(base).unwrap(), false)
        .unwrap();
    (dir, ex, repo)
}

#[test]
fn a_docs_only_change_runs_the_docs_gates_only() {
    let (_d, ex, repo) = repo_with_main();
    let md = ex.join("docs/PIPELINE_CONTRACT.md");
    let text = std::fs::read_to_string(&md).unwrap();
    std::fs::write(&md, format!("{text}\nNotes.\n")).unwrap();
    commit_all(&repo, "prose");
    let report = check_changed_from(&ex, &[]);
    let (ran, not_needed) = ran_and_not_needed(&report);
    assert_eq!(ran, ["docs-drift", "contract-changes"], "{report:#}");
    assert_eq!(not_needed.len(), 13, "{not_needed:?}");
    let why = report["gates"][0]["skipped"].as_str().unwrap();
    assert_eq!(
        why,
        "not needed by the 1 changed file since `main` (`[[paths]]` rules)"
    );
    // --changed-from also classifies against the same base: a docs-only change.
    assert_eq!(report["changes"]["changes"][0]["rule"], "docs-only-change");
}

#[test]
fn a_model_code_change_runs_the_smoke_gates_and_an_unmatched_file_runs_everything() {
    let (_d, ex, repo) = repo_with_main();
    let model = ex.join("pipeline/model.py");
    let text = std::fs::read_to_string(&model).unwrap();
    std::fs::write(&model, format!("{text}\n# a comment\n")).unwrap();
    // Not committed: the work tree counts too.
    let report = check_changed_from(&ex, &[]);
    let (ran, not_needed) = ran_and_not_needed(&report);
    let smoke = [
        "checkpoint-inventory",
        "feature-schema",
        "norm-stats",
        "labels",
        "heads",
        "forward-contract",
        "output-distribution",
        "docs-drift",
        "contract-changes",
    ];
    // The model gates run where this build has an engine (else they are skipped saying so).
    let runnable: Vec<&str> = smoke
        .into_iter()
        .filter(|g| {
            !plumbline::gates::find(g).unwrap().needs.engine || plumbline::engine::NATIVE_AVAILABLE
        })
        .collect();
    assert_eq!(ran, runnable, "{report:#}");
    assert_eq!(
        not_needed.len(),
        plumbline::gates::GATES.len() - smoke.len()
    );
    // A new, untracked builder file matches no rule: every gate of the profile runs.
    std::fs::write(ex.join("backtest/extra.py"), "X = 1\n").unwrap();
    let report = check_changed_from(&ex, &["--profile", "pre-backtest"]);
    let (ran, not_needed) = ran_and_not_needed(&report);
    assert!(not_needed.is_empty(), "{report:#}");
    let profile: Vec<&str> = plumbline::check::Profile::PreBacktest
        .gates()
        .into_iter()
        .map(|g| g.name)
        .filter(|g| {
            !plumbline::gates::find(g).unwrap().needs.engine || plumbline::engine::NATIVE_AVAILABLE
        })
        .collect();
    assert_eq!(ran, profile);
    let _ = repo;
}
