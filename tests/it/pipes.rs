//! Issue 14: closing stdout or stderr never changes the exit code. Every command runs on a passing and
//! a failing pipeline (and a broken config, exit 2) four ways: output to /dev/null, then stdout, stderr
//! and both going to a pipe whose reader was closed *before* the process started, so every write gets
//! EPIPE from the first byte on. That makes the matrix deterministic: one green run is proof, where a
//! `| head -1` races the writer (the issue saw exit 0 in 7 of 10 runs).

use std::io::pipe;
use std::path::Path;
use std::process::{Command, Stdio};

use git2::Repository;

use crate::base::commit_all;
use crate::util::{example_copy, replace_in};

const CFG: &str = "momentum/plumbline.toml";

#[derive(Clone, Copy, Debug)]
enum Closed {
    Stdout,
    Stderr,
    Both,
}

/// Run the binary in `root`; `closed` says which streams go to a pipe nobody reads.
fn code(root: &Path, args: &[&str], env: &[(&str, &str)], closed: Option<Closed>) -> i32 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plumbline"));
    cmd.args(args)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let closed_pipe = || {
        let (reader, writer) = pipe().unwrap();
        drop(reader);
        Stdio::from(writer)
    };
    let (out, err) = match closed {
        None => (Stdio::null(), Stdio::null()),
        Some(Closed::Stdout) => (closed_pipe(), Stdio::null()),
        Some(Closed::Stderr) => (Stdio::null(), closed_pipe()),
        Some(Closed::Both) => (closed_pipe(), closed_pipe()),
    };
    cmd.stdout(out).stderr(err);
    let status = cmd.status().unwrap();
    status
        .code()
        .unwrap_or_else(|| panic!("{args:?} {closed:?}: killed by a signal ({status})"))
}

/// Run `args` unpiped and with stdout, stderr and both closed: each must exit `want`. Returns the
/// number of runs.
fn every_way(root: &Path, args: &[&str], env: &[(&str, &str)], want: i32) -> usize {
    let ways = [
        None,
        Some(Closed::Stdout),
        Some(Closed::Stderr),
        Some(Closed::Both),
    ];
    for closed in ways {
        assert_eq!(
            code(root, args, env, closed),
            want,
            "{args:?} {closed:?} in {}",
            root.display()
        );
    }
    ways.len()
}

/// The example committed in a fresh repository, its slow gates disabled (the matrix is about exit
/// codes, not gates), and a `ci` event. `drifted`: the docs say `vol_21` for `vol_20` and the
/// production checkpoint has a MAD of 0, both committed.
fn pipeline(drifted: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, ex) = example_copy();
    let toml = ex.join("plumbline.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(
        "\n[gates]\ndisable = [\"feature-parity\", \"leakage\", \"inference-parity\", \"interpretation-parity\"]\n",
    );
    std::fs::write(&toml, text).unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    commit_all(&repo, "base");
    if drifted {
        replace_in(
            &ex.join("docs/PIPELINE_CONTRACT.md"),
            "| 5 | `vol_20` |",
            "| 5 | `vol_21` |",
        );
        // And a checkpoint defect the profiles without docs-drift catch (norm-stats: a MAD of 0).
        std::fs::copy(
            crate::util::fixture("checkpoints/zero_mad.pt"),
            ex.join("checkpoints/momentum_v3.pt"),
        )
        .unwrap();
        commit_all(&repo, "drift");
    }
    std::fs::write(dir.path().join("event.json"), b"{}").unwrap();
    let root = dir.path().to_path_buf();
    (dir, root)
}

/// (args, extra environment, exit code on the clean pipeline, on the drifted one)
type Case<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)], i32, i32);

#[test]
fn exit_codes_survive_closed_pipes_for_every_command() {
    let (_clean_guard, clean) = pipeline(false);
    let (_drift_guard, drifted) = pipeline(true);
    let summary = clean.join("summary.md");
    let ci_env: Vec<(&str, &str)> = vec![
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_EVENT_PATH", "event.json"),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_SHA", "0000000000000000000000000000000000000001"),
        ("GITHUB_RUN_ID", "7"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let broken = ["--config", "momentum/no-such.toml"];
    let cases: Vec<Case> = vec![
        (vec!["check"], &[], 0, 1),
        (vec!["check", "--profile", "pre-backtest"], &[], 0, 1),
        (vec!["check", "--profile", "post-train"], &[], 0, 1),
        (vec!["check", "--format", "json"], &[], 0, 1),
        (vec!["check", "--format", "github"], &[], 0, 1),
        (vec!["gate", "docs-drift"], &[], 0, 1),
        (vec!["docs", "--check"], &[], 0, 1),
        (vec!["hook", "pre-commit"], &[], 0, 1),
        (vec!["ci"], &ci_env, 0, 1),
        (vec!["derive"], &[], 0, 0),
        (vec!["inventory"], &[], 0, 0),
        (vec!["schema"], &[], 0, 0),
        (vec!["hook", "install"], &[], 0, 0),
    ];
    let mut runs = 0;
    for (args, env, clean_code, drift_code) in &cases {
        for (root, want) in [(&clean, *clean_code), (&drifted, *drift_code)] {
            let full: Vec<&str> = ["--config", CFG].iter().chain(args).copied().collect();
            runs += every_way(root, &full, env, want);
        }
        // The same command when plumbline cannot do its job: exit 2, however its output goes.
        // `schema` and `hook install` read no config: they pass here (install fails below instead).
        let failing: Vec<&str> = broken.iter().chain(args).copied().collect();
        let want = if args[0] == "schema" || args[..] == ["hook", "install"] {
            0
        } else {
            2
        };
        runs += every_way(&clean, &failing, env, want);
    }
    // The commands that write heavier artefacts, and clap's own usage error, on a broken config only
    // (their passing runs are covered by their own tests; what matters here is the code).
    for args in [
        vec!["baseline"],
        vec!["audit", "conditions"],
        vec!["audit", "decisions"],
        vec!["audit", "packet"],
        vec!["schema", "no-such-schema"],
        vec!["no-such-command"],
    ] {
        let failing: Vec<&str> = broken.iter().chain(&args).copied().collect();
        runs += every_way(&clean, &failing, &[], 2);
    }
    // `hook install` outside a git repository.
    let nowhere = tempfile::tempdir().unwrap();
    runs += every_way(nowhere.path(), &["hook", "install"], &[], 2);
    assert_eq!(runs, 184, "every command, every way");
}
