//! Contract changes against a base revision (git2): a throwaway repository with the example committed as
//! `main`, then a pull-request commit on top. Reordering two features without a model-version bump is a
//! `feature-reordered` error at the moved feature's line; with the bump it is an accepted breaking change
//! and the gate passes.

use std::path::Path;

use git2::{Repository, Signature};
use serde_json::Value;

use crate::util::{example_copy, plumbline, replace_in, stderr, stdout};

/// Commit the whole work tree on HEAD.
pub fn commit_all(repo: &Repository, message: &str) -> git2::Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::new("t", "t@example.com", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

/// The example in a new repository: `main` at the base commit, HEAD on branch `pr` at the same commit.
fn repo_with_example() -> (tempfile::TempDir, std::path::PathBuf, Repository) {
    let (dir, ex) = example_copy();
    let repo = Repository::init(dir.path()).unwrap();
    repo.set_head("refs/heads/pr").unwrap();
    let base = commit_all(&repo, "base");
    repo.branch("main", &repo.find_commit(base).unwrap(), false)
        .unwrap();
    (dir, ex, repo)
}

fn contract_changes(ex: &Path, base: &str) -> (Option<i32>, Value, String) {
    let out = plumbline(
        ex,
        &[
            "--format",
            "json",
            "--base",
            base,
            "gate",
            "contract-changes",
        ],
    );
    let report = serde_json::from_str(&stdout(&out)).unwrap_or(Value::Null);
    (out.status.code(), report, stderr(&out))
}

fn swap_ret_5_and_ret_10(ex: &Path) {
    let f = ex.join("pipeline/features.py");
    replace_in(
        &f,
        "    \"ret_5\",\n    \"ret_10\",\n",
        "    \"ret_10\",\n    \"ret_5\",\n",
    );
}

#[test]
fn reordering_features_without_a_bump_is_an_error_with_the_rule_id() {
    let (_d, ex, repo) = repo_with_example();
    swap_ret_5_and_ret_10(&ex);
    commit_all(&repo, "reorder");
    let (code, report, err) = contract_changes(&ex, "main");
    assert_eq!(code, Some(1), "{err}\n{report:#}");
    let f = &report["findings"][0];
    assert_eq!(f["code"], "feature-reordered", "{report:#}");
    assert_eq!(f["severity"], "error");
    // At the moved feature's line in the code; the base's contract beside it.
    assert_eq!(f["location"]["path"], "pipeline/features.py");
    assert_eq!(f["location"]["line"], 9, "`ret_10` is now on line 9");
    assert!(
        f["related"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with(":momentum/docs/PIPELINE_CONTRACT.json"),
        "{f:#}"
    );
    assert_eq!(
        f["message"],
        "`ret_10` now where `ret_5` was; 2 of 14 shared features in another order"
    );
    let changes = &report["changes"];
    assert!(changes["base"].as_str().unwrap().starts_with("`main` ("));
    assert_eq!(changes["changes"][0]["rule"], "feature-reordered");
    assert_eq!(changes["changes"][0]["accepted"], false);
}

#[test]
fn the_same_with_a_model_version_bump_is_an_accepted_breaking_change() {
    let (_d, ex, repo) = repo_with_example();
    swap_ret_5_and_ret_10(&ex);
    replace_in(
        &ex.join("pipeline/model.py"),
        "MODEL_VERSION = 3",
        "MODEL_VERSION = 4",
    );
    commit_all(&repo, "reorder and retrain");
    let (code, report, err) = contract_changes(&ex, "main");
    assert_eq!(code, Some(0), "{err}\n{report:#}");
    let rows = report["changes"]["changes"].as_array().unwrap();
    assert_eq!(rows[0]["rule"], "feature-reordered");
    assert_eq!(rows[0]["accepted"], true);
    assert!(
        rows[0]["change"]
            .as_str()
            .unwrap()
            .ends_with("(model-version bumped 3 → 4)")
    );
    assert_eq!(rows[1]["rule"], "version-bumped");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["breaking-change-accepted", "version-bumped"]);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "note")
    );
}

#[test]
fn thresholds_horizon_and_docs_prose() {
    let (_d, ex, repo) = repo_with_example();
    // Prose outside the generated blocks only: a note.
    let md = ex.join("docs/PIPELINE_CONTRACT.md");
    let text = std::fs::read_to_string(&md).unwrap();
    std::fs::write(&md, format!("{text}\nA reviewer's note.\n")).unwrap();
    commit_all(&repo, "prose");
    let (code, report, err) = contract_changes(&ex, "main");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        report["changes"]["changes"][0]["rule"], "docs-only-change",
        "{report:#}"
    );
    // No change at all against itself.
    let (code, report, _) = contract_changes(&ex, "HEAD");
    assert_eq!(code, Some(0));
    assert_eq!(report["changes"]["changes"], Value::Array(vec![]));
}

#[test]
fn a_base_commit_missing_from_the_clone_is_named() {
    let (_d, ex, _repo) = repo_with_example();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    // A finding of the gate, so the other gates of a run still report; exit 1.
    let (code, report, err) = contract_changes(&ex, missing);
    assert_eq!(code, Some(1), "{err}");
    let f = &report["findings"][0];
    assert_eq!(f["code"], "base-unavailable");
    let m = f["message"].as_str().unwrap();
    assert!(
        m.contains(&format!("the base commit {missing} is not in this clone")),
        "{m}"
    );
    assert!(m.contains("git fetch --depth=1 origin"), "{m}");
    // Without --base the gate says why it did not run; asked for by name that is exit 2.
    let out = plumbline(&ex, &["gate", "contract-changes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no base revision"),
        "{}",
        stderr(&out)
    );
}

/// A base whose docs contract is in format 1 (as every repository committed it before format 2): the
/// run reads it in today's format and says so in a note; no fact changed, so no other change is
/// listed and the gate passes. The base's contract is the example's, committed at format 1 (the
/// fixture is the file as it was).
#[test]
fn a_base_in_an_earlier_contract_format_is_upgraded_with_a_note() {
    let (dir, ex) = example_copy();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contracts");
    let json = ex.join("docs/PIPELINE_CONTRACT.json");
    let md = ex.join("docs/PIPELINE_CONTRACT.md");
    let today = (std::fs::read(&json).unwrap(), std::fs::read(&md).unwrap());
    std::fs::copy(fixtures.join("momentum-format-1.json"), &json).unwrap();
    std::fs::copy(fixtures.join("momentum-format-1.md"), &md).unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    repo.set_head("refs/heads/pr").unwrap();
    let base = commit_all(&repo, "base at format 1");
    repo.branch("main", &repo.find_commit(base).unwrap(), false)
        .unwrap();
    std::fs::write(&json, today.0).unwrap();
    std::fs::write(&md, today.1).unwrap();
    commit_all(&repo, "docs --write with format 2");

    let (code, report, err) = contract_changes(&ex, "main");
    assert_eq!(code, Some(0), "{err}\n{report:#}");
    let findings = report["findings"].as_array().unwrap();
    let codes: Vec<&str> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    // The Markdown's versions block shows the format, so its bytes changed too (a note of its own).
    assert_eq!(
        codes,
        ["contract-format-upgraded", "docs-only-change"],
        "{report:#}"
    );
    assert_eq!(findings[0]["severity"], "note");
    assert!(
        findings[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("the base's contract is in format 1 and was read as format 2"),
        "{report:#}"
    );
}

/// A contract written by a newer plumbline (a format this one does not know) is named as such.
#[test]
fn a_base_in_a_newer_contract_format_is_unreadable_with_the_reason() {
    let (_d, ex, repo) = repo_with_example();
    let json = ex.join("docs/PIPELINE_CONTRACT.json");
    let today = std::fs::read_to_string(&json).unwrap();
    std::fs::write(
        &json,
        today.replace("\"contract-format\": 2", "\"contract-format\": 99"),
    )
    .unwrap();
    let future = commit_all(&repo, "from the future");
    repo.branch("future", &repo.find_commit(future).unwrap(), false)
        .unwrap();
    std::fs::write(&json, today).unwrap();
    let (code, report, err) = contract_changes(&ex, "future");
    assert_eq!(code, Some(1), "{err}\n{report:#}");
    let f = &report["findings"][0];
    assert_eq!(f["code"], "base-contract-unreadable", "{report:#}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("contract format 99 is not one this plumbline reads (1 to 2)"),
        "{report:#}"
    );
}
