//! The pre-commit hook: `plumbline hook pre-commit` reads the staged contents (git2 index), `hook install`
//! writes the plain git hook, and the real pre-commit framework (PyPI `pre-commit`, driven through a
//! `repo: local` hook calling the built binary, and `validate-manifest` on the shipped manifest) blocks a
//! drifting commit and lets the fixed one through.

use std::path::Path;
use std::process::{Command, Output};

use git2::Repository;

use crate::base::commit_all;
use crate::util::{example_copy, plumbline, repo, stderr, stdout};

const CFG: &str = "momentum/plumbline.toml";
const MD: &str = "momentum/docs/PIPELINE_CONTRACT.md";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The example committed in a fresh repository; (guard, repository root).
fn committed_example() -> (tempfile::TempDir, std::path::PathBuf, Repository) {
    let (dir, _ex) = example_copy();
    let repo = Repository::init(dir.path()).unwrap();
    commit_all(&repo, "base");
    let root = dir.path().to_path_buf();
    (dir, root, repo)
}

/// `hook pre-commit` at the repository root; its exit code must be `code`.
fn pre_commit(root: &Path, code: i32) -> Output {
    let out = plumbline(root, &["--config", CFG, "hook", "pre-commit"]);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn drift(text: &str) -> String {
    assert!(text.contains("| `vol_20` |"));
    text.replace("| `vol_20` |", "| `vol_21` |")
}

fn stage(repo: &Repository, rel: &str) {
    let mut index = repo.index().unwrap();
    index.add_path(Path::new(rel)).unwrap();
    index.write().unwrap();
}

#[test]
fn a_staged_drift_blocks_even_when_the_work_tree_is_fixed() {
    let (_d, root, repo) = committed_example();
    let md = root.join(MD);
    let good = std::fs::read_to_string(&md).unwrap();
    std::fs::write(&md, drift(&good)).unwrap();
    stage(&repo, MD);
    // The work tree is fixed again, but the commit would carry the staged drift.
    std::fs::write(&md, &good).unwrap();
    let out = pre_commit(&root, 1);
    assert!(
        stdout(&out).contains("-| 5 | `vol_21` | float32 |"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("the staged docs drift"),
        "{}",
        stderr(&out)
    );
    // The other way round: a drifting work tree with clean staged docs commits fine.
    std::fs::write(&md, drift(&good)).unwrap();
    stage(&repo, MD);
    std::fs::write(&md, &good).unwrap();
    stage(&repo, MD);
    std::fs::write(&md, drift(&good)).unwrap();
    pre_commit(&root, 0);
}

#[test]
fn staged_code_counts_and_untracked_files_come_from_the_work_tree() {
    let (_d, root, repo) = committed_example();
    // A staged code change the docs do not follow: drift, though the work tree's code is unchanged.
    let f = root.join("momentum/pipeline/features.py");
    let good = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, good.replace("\"vol_20\",", "\"vol_21\",")).unwrap();
    stage(&repo, "momentum/pipeline/features.py");
    std::fs::write(&f, &good).unwrap();
    let out = plumbline(&root, &["--config", CFG, "hook", "pre-commit"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // Unstage the code change again.
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.reset_default(Some(head.as_object()), ["momentum/pipeline/features.py"])
        .unwrap();
    // A checkpoint staged for deletion is gone for the commit, though still on disk: the contract
    // cannot be derived (exit 2, naming it).
    let mut index = repo.index().unwrap();
    index
        .remove_path(Path::new("momentum/checkpoints/momentum_v3.pt"))
        .unwrap();
    index.write().unwrap();
    let out = plumbline(&root, &["--config", CFG, "hook", "pre-commit"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("momentum_v3.pt"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("staged for deletion"),
        "{}",
        stderr(&out)
    );
    // Committed without it, it is untracked: read from the work tree, and all is well.
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    repo.commit(Some("HEAD"), &sig, &sig, "untrack", &tree, &[&head])
        .unwrap();
    pre_commit(&root, 0);
}

#[test]
fn install_writes_the_hook_and_keeps_a_foreign_one() {
    let (_d, root, _repo) = committed_example();
    let hook = root.join(".git/hooks/pre-commit");
    let out = plumbline(&root, &["--config", CFG, "hook", "install"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with("pre-commit: installed\n"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(
        text.contains(
            "plumbline --config 'momentum/plumbline.toml' hook pre-commit || status=$?\n"
        ),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111,
            0o111
        );
    }
    // From a subdirectory, with the config given relative to it: the hook still names it from the root.
    let out = plumbline(
        &root.join("momentum"),
        &["--config", "plumbline.toml", "hook", "install"],
    );
    assert!(
        stderr(&out).ends_with("pre-commit: up to date\n"),
        "{}",
        stderr(&out)
    );
    // A hook someone else wrote is not replaced without --force.
    std::fs::write(&hook, "#!/bin/sh\nmake lint\n").unwrap();
    let out = plumbline(&root, &["--config", CFG, "hook", "install"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a pre-commit hook plumbline did not write is there"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\nmake lint\n"
    );
    let out = plumbline(&root, &["--config", CFG, "hook", "install", "--force"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).ends_with("pre-commit: replaced (--force)\n"));
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), text);
}

/// `python3 -m pre_commit` and `git`, or `None` (skip) outside CI.
fn pre_commit_and_git(what: &str) -> Option<()> {
    let ok = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let have = ok("python3", &["-m", "pre_commit", "--version"]) && ok("git", &["--version"]);
    if !have {
        assert!(
            !in_ci(),
            "CI=true, but {what} needs `python3 -m pre_commit` and `git` (.ci/run installs them)"
        );
        eprintln!(
            "skipped: {what} needs the pre-commit framework (pip install pre-commit) and git"
        );
        return None;
    }
    Some(())
}

#[test]
fn the_shipped_manifest_validates_and_a_broken_one_does_not() {
    if pre_commit_and_git("validating .pre-commit-hooks.yaml").is_none() {
        return;
    }
    let run = |manifest: &Path| {
        Command::new("python3")
            .args(["-m", "pre_commit", "validate-manifest"])
            .arg(manifest)
            .output()
            .unwrap()
    };
    let shipped = repo().join(".pre-commit-hooks.yaml");
    let out = run(&shipped);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(&shipped).unwrap();
    for id in ["plumbline-docs", "plumbline-docs-build", "plumbline-gates"] {
        assert!(text.contains(&format!("- id: {id}\n")), "{id}");
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("hooks.yaml");
    std::fs::write(
        &broken,
        text.replace("  language: system\n", "  language: sytsem\n"),
    )
    .unwrap();
    assert!(!run(&broken).status.success());
}

fn git(root: &Path, args: &[&str], env_home: &Path) -> Output {
    git_on_path(
        root,
        args,
        env_home,
        &std::env::var("PATH").unwrap_or_default(),
    )
}

/// `git` with a throwaway HOME and identity, and `path` as PATH (for hooks that call `plumbline`).
fn git_on_path(root: &Path, args: &[&str], env_home: &Path, path: &str) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(root)
        .env("PATH", path)
        .env("HOME", env_home)
        .env("PRE_COMMIT_HOME", env_home.join("pre-commit"))
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn the_pre_commit_framework_blocks_a_drifting_commit_until_the_docs_are_written() {
    if pre_commit_and_git("the pre-commit framework test").is_none() {
        return;
    }
    let (_d, root, _repo) = committed_example();
    let home = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_plumbline");
    let manifest = std::fs::read_to_string(repo().join(".pre-commit-hooks.yaml")).unwrap();
    let files = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("files: "))
        .unwrap()
        .to_owned();
    std::fs::write(
        root.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: local\n    hooks:\n      - id: plumbline-docs\n        name: plumbline docs drift\n        entry: {bin} --config {CFG} hook pre-commit\n        language: system\n        pass_filenames: false\n        files: {files}\n"
        ),
    )
    .unwrap();
    let install = Command::new("python3")
        .args(["-m", "pre_commit", "install"])
        .current_dir(&root)
        .env("HOME", home.path())
        .env("PRE_COMMIT_HOME", home.path().join("pre-commit"))
        .output()
        .unwrap();
    assert!(install.status.success(), "{}", stderr(&install));
    let add = git(&root, &["add", ".pre-commit-config.yaml"], home.path());
    assert!(add.status.success());
    assert!(
        git(&root, &["commit", "-q", "-m", "hooks"], home.path())
            .status
            .success()
    );

    // A docs edit that adds prose and (by mistake) changes a generated row, staged: blocked.
    let md = root.join(MD);
    let edited = format!(
        "{}\nReviewed for the v3 release.\n",
        drift(&std::fs::read_to_string(&md).unwrap())
    );
    std::fs::write(&md, edited).unwrap();
    assert!(git(&root, &["add", MD], home.path()).status.success());
    let blocked = git(&root, &["commit", "-m", "drift"], home.path());
    let said = format!("{}{}", stdout(&blocked), stderr(&blocked));
    assert!(!blocked.status.success(), "{said}");
    assert!(
        said.contains("plumbline docs drift") && said.contains("Failed"),
        "{said}"
    );
    assert!(said.contains("error[docs-drift]"), "{said}");

    // Written and staged: the commit goes through.
    let write = plumbline(&root, &["--config", CFG, "docs", "--write"]);
    assert!(write.status.success(), "{}", stderr(&write));
    assert!(git(&root, &["add", MD], home.path()).status.success());
    let ok = git(&root, &["commit", "-m", "docs"], home.path());
    let said = format!("{}{}", stdout(&ok), stderr(&ok));
    assert!(ok.status.success(), "{said}");
    assert!(
        said.contains("plumbline docs drift") && said.contains("Passed"),
        "{said}"
    );
}

#[test]
fn the_installed_git_hook_checks_what_commit_a_commits() {
    if pre_commit_and_git("the plain git hook test").is_none() {
        return;
    }
    let (_d, root, _repo) = committed_example();
    let home = tempfile::tempdir().unwrap();
    let out = plumbline(&root, &["--config", CFG, "hook", "install"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The hook calls `plumbline` from PATH: the built binary's directory first.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_plumbline")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commit_a = |msg: &str| git_on_path(&root, &["commit", "-a", "-m", msg], home.path(), &path);
    // Nothing staged: `commit -a` stages the drift into a temporary index (GIT_INDEX_FILE).
    let md = root.join(MD);
    let edited = format!(
        "{}\nReviewed.\n",
        drift(&std::fs::read_to_string(&md).unwrap())
    );
    std::fs::write(&md, edited).unwrap();
    let blocked = commit_a("drift");
    let said = format!("{}{}", stdout(&blocked), stderr(&blocked));
    assert!(!blocked.status.success(), "{said}");
    assert!(said.contains("error[docs-drift]"), "{said}");
    let write = plumbline(&root, &["--config", CFG, "docs", "--write"]);
    assert!(write.status.success());
    let ok = commit_a("docs");
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
}

/// The hook script as git runs it: `sh` at the repository root with the built binary first on PATH.
fn run_hook(root: &Path) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_plumbline")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .arg(".git/hooks/pre-commit")
        .current_dir(root)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_second_install_chains_its_config_and_force_keeps_one() {
    let (_d, root, _repo) = committed_example();
    let hook = root.join(".git/hooks/pre-commit");
    // A second config whose docs file does not exist: its docs-drift fails.
    let other = std::fs::read_to_string(root.join(CFG))
        .unwrap()
        .replace("docs/PIPELINE_CONTRACT.md", "docs/OTHER.md");
    std::fs::write(root.join("momentum/other.toml"), other).unwrap();
    let install = |cfg: &str, force: bool| {
        let mut args = vec!["--config", cfg, "hook", "install"];
        if force {
            args.push("--force");
        }
        let out = plumbline(&root, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stderr(&out)
    };
    assert!(install(CFG, false).ends_with("pre-commit: installed\n"));
    assert_eq!(run_hook(&root).status.code(), Some(0));
    let said = install("momentum/other.toml", false);
    assert!(
        said.contains("chained: the hook now checks 2 configs in turn (momentum/plumbline.toml, momentum/other.toml)"),
        "{said}"
    );
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(
        text.find("'momentum/plumbline.toml'").unwrap()
            < text.find("'momentum/other.toml'").unwrap(),
        "{text}"
    );
    // Both run: the second config's missing docs file blocks the commit.
    let out = run_hook(&root);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("OTHER.md"), "{}", stdout(&out));
    // Installing either again changes nothing.
    assert!(install(CFG, false).ends_with("pre-commit: up to date\n"));
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), text);
    // A hook edited by hand is not rewritten: the edit would be lost.
    let edited = text.replace("status=0\n", "status=0\nruff check . || status=$?\n");
    std::fs::write(&hook, &edited).unwrap();
    let out = plumbline(
        &root,
        &["--config", "momentum/third.toml", "hook", "install"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("it has been edited since"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&hook).unwrap(), edited);
    // --force keeps only the config given.
    let said = install(CFG, true);
    assert!(
        said.contains("replaced (--force): the hook checked momentum/plumbline.toml, momentum/other.toml and now checks only this one"),
        "{said}"
    );
    assert!(
        !std::fs::read_to_string(&hook)
            .unwrap()
            .contains("other.toml")
    );
    assert_eq!(run_hook(&root).status.code(), Some(0));
}

#[test]
fn command_sources_run_on_the_staged_tree() {
    let (_d, root, repo) = committed_example();
    // The horizon comes from a command reading a tracked file, the thresholds from one reading a file
    // git does not track.
    let cfg = root.join(CFG);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace(
            r#"horizon = { python = "pipeline/labels.py", name = "HORIZON" }"#,
            r#"horizon = { command = ["cat", "facts/horizon.json"], key = "horizon" }"#,
        )
        .replace(
            r#"thresholds = { python = "pipeline/labels.py", name = "THRESHOLDS" }"#,
            r#"thresholds = { command = ["cat", "local/thresholds.json"] }"#,
        );
    assert!(text.contains("facts/horizon.json") && text.contains("local/thresholds.json"));
    std::fs::write(&cfg, text).unwrap();
    std::fs::create_dir_all(root.join("momentum/facts")).unwrap();
    std::fs::create_dir_all(root.join("momentum/local")).unwrap();
    let horizon = root.join("momentum/facts/horizon.json");
    std::fs::write(&horizon, r#"{"horizon": 5}"#).unwrap();
    std::fs::write(root.join(".gitignore"), "local/\n").unwrap();
    std::fs::write(
        root.join("momentum/local/thresholds.json"),
        r#"{"long": 0.006, "short": -0.006}"#,
    )
    .unwrap();
    commit_all(&repo, "facts from commands");
    let out = pre_commit(&root, 0);
    assert!(
        stdout(&out).contains("2 commands on the staged tree (checked out in "),
        "{}",
        stdout(&out)
    );
    // An unstaged edit to what a command reads does not change the verdict on the staged tree...
    std::fs::write(&horizon, r#"{"horizon": 7}"#).unwrap();
    pre_commit(&root, 0);
    // ...the same edit staged does,
    stage(&repo, "momentum/facts/horizon.json");
    let out = pre_commit(&root, 1);
    assert!(
        stdout(&out).contains("error[docs-drift]"),
        "{}",
        stdout(&out)
    );
    // and a staged fix with the work tree still wrong commits.
    std::fs::write(&horizon, r#"{"horizon": 5}"#).unwrap();
    stage(&repo, "momentum/facts/horizon.json");
    std::fs::write(&horizon, r#"{"horizon": 9}"#).unwrap();
    pre_commit(&root, 0);
    // Outside the hook, commands read the work tree: the same check drifts there.
    let out = plumbline(&root, &["--config", CFG, "gate", "docs-drift"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stdout(&out).contains("staged tree"), "{}", stdout(&out));
}
