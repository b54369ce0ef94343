//! The binary: every command and exit code (0 passed, 1 findings, 2 could not do its job).

use crate::util::{example, example_copy, plumbline, replace_in, repo, stderr, stdout};

const CFG: &str = "examples/momentum/plumbline.toml";

fn run(args: &[&str]) -> std::process::Output {
    plumbline(&repo(), args)
}

#[test]
fn check_on_the_example_passes() {
    let o = run(&["--config", CFG, "check"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("plumbline 0.1.0 · momentum · model v3 · heads v2\n"),
        "{out}"
    );
    let mut built = 0;
    for gate in plumbline::gates::GATES {
        if gate.name == "contract-changes" {
            // Without --base there is nothing to compare against; it says so.
            assert!(
                out.contains("contract-changes        skipped: no base revision"),
                "{out}"
            );
        } else if gate.needs.engine && !plumbline::engine::NATIVE_AVAILABLE {
            assert!(out.contains(&format!("– {}", gate.name)), "{out}");
        } else {
            assert!(out.contains(&format!("✓ {}", gate.name)), "{out}");
            built += 1;
        }
    }
    let skipped = plumbline::gates::GATES.len() - built;
    let tally = if skipped == 0 {
        format!("0 errors, 0 warnings, 0 notes · {built} gates · ")
    } else {
        format!("0 errors, 0 warnings, 0 notes · {built} gates · {skipped} skipped")
    };
    assert!(out.contains(&tally), "{out}");
}

#[test]
fn default_config_is_found_in_the_working_directory() {
    let o = plumbline(&example(), &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = plumbline(&repo().join("src"), &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("plumbline.toml: No such file or directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn derive_is_deterministic_and_valid() {
    let a = run(&["--config", CFG, "derive"]);
    let b = run(&["--config", CFG, "derive"]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout, "derive twice gave different bytes");
    let doc: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert!(plumbline::docs::schema_errors(&doc).is_empty());
    // And equals the committed docs JSON byte for byte.
    assert_eq!(
        a.stdout,
        std::fs::read(example().join("docs/PIPELINE_CONTRACT.json")).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.json");
    let o = run(&["--config", CFG, "derive", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read(&out).unwrap(), a.stdout);
}

#[test]
fn json_report_is_deterministic_and_valid() {
    let a = run(&["--config", CFG, "--format", "json", "check"]);
    let b = run(&["--config", CFG, "--format", "json", "check"]);
    assert_eq!(a.stdout, b.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/report.schema.json")).unwrap(),
    )
    .unwrap();
    assert!(jsonschema::is_valid(&schema, &doc));
    assert_eq!(doc["verdict"], "passed");
}

#[test]
fn markdown_drift_exits_1_with_a_diff_and_write_restores() {
    let (_g, ex) = example_copy();
    let md = ex.join("docs/PIPELINE_CONTRACT.md");
    let original = std::fs::read_to_string(&md).unwrap();
    replace_in(
        &md,
        "| 5 | `vol_20` | float32 |",
        "| 5 | `vol_21` | float32 |",
    );
    replace_in(
        &md,
        "Write anything you like",
        "Write anything you like (edited prose)",
    );
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(
            "error[docs-drift]: docs/PIPELINE_CONTRACT.md is out of date (block `features`)"
        ),
        "{out}"
    );
    assert!(out.contains("--> docs/PIPELINE_CONTRACT.md:33"), "{out}");
    assert!(out.contains("::: pipeline/features.py:13"), "{out}");
    assert!(out.contains("--- docs/PIPELINE_CONTRACT.md (committed)\n+++ derived from code and checkpoints\n@@ -31,5 +31,5 @@"), "{out}");
    assert!(
        out.contains("-| 5 | `vol_21` | float32 |\n+| 5 | `vol_20` | float32 |"),
        "{out}"
    );
    assert!(
        out.contains("help: run `plumbline docs --write` and commit the result"),
        "{out}"
    );

    let o = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("docs/PIPELINE_CONTRACT.md: updated"));
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // Writing again changes nothing and says so.
    let o = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(
        stderr(&o),
        "docs/PIPELINE_CONTRACT.json: up to date\ndocs/PIPELINE_CONTRACT.md: up to date\n"
    );
    // Only the generated part changed back; the prose edit stays.
    let now = std::fs::read_to_string(&md).unwrap();
    assert_eq!(
        now,
        original.replacen(
            "Write anything you like",
            "Write anything you like (edited prose)",
            1
        )
    );
}

#[test]
fn code_change_drifts_docs_and_breaks_alignment() {
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("pipeline/features.py"),
        "\"vol_20\",",
        "\"vol_21\",",
    );
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("error[feature-set-mismatch]"), "{out}");
    assert!(
        out.contains("in the code, not in the checkpoint: `vol_21`"),
        "{out}"
    );
    assert!(out.contains("error[docs-drift]"), "{out}");
    assert!(out.contains("+| 5 | `vol_21` | float32 |"), "{out}");
}

#[test]
fn docs_json_problems_are_errors_with_locations() {
    let (_g, ex) = example_copy();
    let json = ex.join("docs/PIPELINE_CONTRACT.json");
    replace_in(&json, "\"name\": \"vol_20\"", "\"name\": \"vol_21\"");
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error[docs-drift]: docs/PIPELINE_CONTRACT.json is out of date"),
        "{}",
        stdout(&o)
    );

    replace_in(&json, "\"pipeline\": \"momentum\",", "\"pipeline\": 7,");
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("error[docs-schema-invalid]: /pipeline: 7 is not of type \"string\""),
        "{out}"
    );

    std::fs::write(&json, "{\n  \"contract-format\": 1,\n").unwrap();
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error[docs-unparsable]"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("--> docs/PIPELINE_CONTRACT.json:3:"),
        "{}",
        stdout(&o)
    );

    std::fs::remove_file(&json).unwrap();
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("error[docs-missing]"));
    let o = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("docs/PIPELINE_CONTRACT.json: created"));
    assert_eq!(plumbline(&ex, &["docs", "--check"]).status.code(), Some(0));

    // A Markdown file that does not exist yet: named as such, then created with every block.
    let md = ex.join("docs/PIPELINE_CONTRACT.md");
    std::fs::remove_file(&md).unwrap();
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(
            "error[docs-missing]: the docs file docs/PIPELINE_CONTRACT.md does not exist yet"
        ),
        "{}",
        stdout(&o)
    );
    let o = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("docs/PIPELINE_CONTRACT.md: created"));
    let text = std::fs::read_to_string(&md).unwrap();
    for name in plumbline::docs::render::BLOCK_NAMES {
        assert!(
            text.contains(&format!("<!-- plumbline:begin {name} -->\n| ")),
            "{name}: {text}"
        );
    }
    assert!(text.starts_with("# momentum: pipeline contract\n"));
    assert_eq!(plumbline(&ex, &["docs", "--check"]).status.code(), Some(0));
}

#[test]
fn markdown_without_markers_is_an_error_and_write_touches_nothing() {
    let (_g, ex) = example_copy();
    let md = ex.join("docs/PIPELINE_CONTRACT.md");
    std::fs::write(&md, "# Contract\n\nNo generated blocks here.\n").unwrap();
    let json = ex.join("docs/PIPELINE_CONTRACT.json");
    replace_in(&json, "\"name\": \"vol_20\"", "\"name\": \"vol_21\"");
    let json_before = std::fs::read(&json).unwrap();
    let o = plumbline(&ex, &["docs", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error[docs-markers-invalid]: no generated blocks"),
        "{}",
        stdout(&o)
    );
    let o = plumbline(&ex, &["docs", "--write"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("docs/PIPELINE_CONTRACT.md:1: no generated blocks"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(&md).unwrap(),
        "# Contract\n\nNo generated blocks here.\n"
    );
    assert_eq!(
        std::fs::read(&json).unwrap(),
        json_before,
        "a failed write must not touch any file"
    );
}

#[test]
fn bad_config_exits_2_with_file_line_column() {
    let (_g, ex) = example_copy();
    let cfg = ex.join("plumbline.toml");
    replace_in(&cfg, "[docs]", "[docs]\nhtml = \"x\"");
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: plumbline.toml:36:1: unknown field `html`"),
        "{err}"
    );

    let (_g, ex) = example_copy();
    replace_in(&ex.join("plumbline.toml"), "globs = [", "globs = 3\nx = [");
    let err = stderr(&plumbline(&ex, &["check"]));
    assert!(
        err.contains("plumbline.toml:32:9: invalid type: integer `3`, expected a sequence"),
        "{err}"
    );
}

#[test]
fn underivable_fact_exits_2_naming_expression_and_line() {
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("pipeline/labels.py"),
        "HORIZON = 5",
        "HORIZON = int(\"5\")",
    );
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("pipeline/labels.py:6:11: unsupported expression `int(\"5\")`"),
        "{err}"
    );
}

#[test]
fn gate_command_and_unknown_gate() {
    let o = run(&["--config", CFG, "gate", "feature-schema"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("✓ feature-schema"));
    let o = run(&["--config", CFG, "gate", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no gate `nope` (gates: checkpoint-inventory, feature-schema, norm-stats, labels, heads, forward-contract, output-distribution, feature-parity, leakage, label-definition, ruleset-smoke, inference-parity, interpretation-parity, docs-drift, contract-changes)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn inventory_lists_and_hashes() {
    let o = run(&["--config", CFG, "inventory"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("examples/momentum/checkpoints/momentum_v3.pt (production)  torch"),
        "{out}"
    );
    assert!(out.contains("momentum_v3.safetensors"), "{out}");
    let o = run(&["--config", CFG, "--format", "json", "inventory", "--hash"]);
    assert_eq!(o.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = doc["checkpoints"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let expected =
        plumbline::checkpoint::sha256_file(&example().join("checkpoints/momentum_v3.pt")).unwrap();
    assert_eq!(rows[0]["sha256"], serde_json::json!(expected));
    assert_eq!(rows[0]["model-version"], "3");
    assert_eq!(
        rows[1]["heads"],
        serde_json::json!(["direction", "magnitude"])
    );
}

#[test]
fn inventory_reports_unreadable_files() {
    let (_g, ex) = example_copy();
    std::fs::write(ex.join("checkpoints/broken.pt"), b"PK\x03\x04 truncated").unwrap();
    let o = plumbline(&ex, &["inventory"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error[checkpoint-unreadable]"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("--> checkpoints/broken.pt"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn severity_overrides_and_fail_on() {
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("docs/PIPELINE_CONTRACT.md"),
        "| 5 | `vol_20` |",
        "| 5 | `vol_21` |",
    );
    let cfg = ex.join("plumbline.toml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap() + "\n[severity]\ndocs-drift = \"warning\"\n",
    )
    .unwrap();
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("warning[docs-drift]"));
    assert_eq!(
        plumbline(&ex, &["--fail-on", "warning", "check"])
            .status
            .code(),
        Some(1)
    );
    replace_in(&cfg, "docs-drift = \"warning\"", "docs-drift = \"off\"");
    let o = plumbline(&ex, &["--fail-on", "note", "check"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stdout(&o).contains("docs-drift]"));
    replace_in(&cfg, "docs-drift = \"off\"", "no-such-code = \"off\"");
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown finding code `no-such-code`"));
}

#[test]
fn schema_command_prints_the_derived_schema() {
    let o = run(&["schema", "report"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        plumbline::cli::schema(plumbline::cli::SchemaName::Report)
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["docs"]).status.code(), Some(2));
    assert_eq!(run(&["docs", "--check", "--write"]).status.code(), Some(2));
    assert_eq!(run(&["--format", "xml", "check"]).status.code(), Some(2));
}

#[test]
fn color_is_off_when_piped() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_plumbline"))
        .args(["--config", CFG, "check"])
        .current_dir(repo())
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!o.stdout.contains(&0x1b), "ANSI escapes in piped output");
}

/// Every source kind, end to end: the example's facts moved into a Rust file, a TOML file, a JSON
/// file, the checkpoint and a command give the same contract bytes as the Python constants.
#[test]
fn every_source_kind_derives_the_same_contract() {
    let (_g, ex) = example_copy();
    std::fs::write(
        ex.join("facts.rs"),
        "pub const MODEL_VERSION: i64 = 3;\npub const DTYPES: &str = \"float32\";\n",
    )
    .unwrap();
    std::fs::write(ex.join("facts.toml"), "[model]\nheads-version = 2\n").unwrap();
    std::fs::write(
        ex.join("facts.json"),
        "{\"nan\": {\"policy\": \"zero-fill\"}}\n",
    )
    .unwrap();
    let cfg = ex.join("plumbline.toml");
    replace_in(
        &cfg,
        "version = { python = \"pipeline/model.py\", name = \"MODEL_VERSION\" }",
        "version = { rust = \"facts.rs\", name = \"MODEL_VERSION\" }",
    );
    replace_in(
        &cfg,
        "heads-version = { python = \"pipeline/model.py\", name = \"HEADS_VERSION\" }",
        "heads-version = { toml = \"facts.toml\", key = \"model.heads-version\" }",
    );
    replace_in(
        &cfg,
        "dtypes = { python = \"pipeline/features.py\", name = \"FEATURE_DTYPES\" }",
        "dtypes = { rust = \"facts.rs\", name = \"DTYPES\" }",
    );
    replace_in(
        &cfg,
        "nan-policy = { python = \"pipeline/features.py\", name = \"NAN_POLICY\" }",
        "nan-policy = { json = \"facts.json\", key = \"nan.policy\" }",
    );
    replace_in(
        &cfg,
        "horizon = { python = \"pipeline/labels.py\", name = \"HORIZON\" }",
        "horizon = { checkpoint = \"production\", key = \"targets.horizon\" }",
    );
    replace_in(
        &cfg,
        "thresholds = { python = \"pipeline/labels.py\", name = \"THRESHOLDS\" }",
        "thresholds = { command = [\"sh\", \"-c\", \"echo '{\\\"t\\\": {\\\"long\\\": 0.006, \\\"short\\\": -0.006}}'\"], key = \"t\", timeout-secs = 10 }",
    );
    let o = plumbline(&ex, &["derive"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        std::fs::read_to_string(example().join("docs/PIPELINE_CONTRACT.json")).unwrap()
    );

    // A failing command is exit 2 with its stderr.
    replace_in(
        &cfg,
        "key = \"t\", timeout-secs = 10",
        "key = \"missing\", timeout-secs = 10",
    );
    let o = plumbline(&ex, &["derive"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("its JSON has no key `missing`"),
        "{}",
        stderr(&o)
    );
}

/// `plumbline check | head` on a failing pipeline: the reader is gone, the verdict is not.
#[test]
fn closed_stdout_keeps_a_failing_verdict() {
    use clap::Parser;
    struct ClosedPipe;
    impl std::io::Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("docs/PIPELINE_CONTRACT.md"),
        "| 5 | `vol_20` |",
        "| 5 | `vol_21` |",
    );
    let cfg = ex.join("plumbline.toml");
    let cli =
        plumbline::cli::Cli::parse_from(["plumbline", "--config", cfg.to_str().unwrap(), "check"]);
    let mut err = Vec::new();
    assert_eq!(plumbline::cli::run(&cli, &mut ClosedPipe, &mut err), 1);
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
}

/// The inventory gate inside `check`: a second, broken checkpoint fails the run; files the glob
/// matches that are not checkpoints (notes, a directory named like one) are not read at all.
#[test]
fn check_reads_every_globbed_checkpoint() {
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("plumbline.toml"),
        "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\"]",
        "globs = [\"checkpoints/*\"]",
    );
    // A file the glob matches and plumbline cannot read is reported, not skipped (issue 15).
    std::fs::write(ex.join("checkpoints/NOTES.txt"), "trained on the 2024 data").unwrap();
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("--> checkpoints/NOTES.txt")
            && stdout(&o).contains("unknown checkpoint extension"),
        "{}",
        stdout(&o)
    );
    std::fs::remove_file(ex.join("checkpoints/NOTES.txt")).unwrap();
    // A directory is not a file to read; one named like a checkpoint (`old.pt/`) is reported instead
    // (issue 18; tests/it/checkpoints.rs).
    std::fs::create_dir(ex.join("checkpoints/runs")).unwrap();
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("✓ checkpoint-inventory    2 checkpoints"),
        "{}",
        stdout(&o)
    );
    std::fs::write(ex.join("checkpoints/momentum_v2.pt"), b"not a zip").unwrap();
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("✗ checkpoint-inventory") && out.contains("error[checkpoint-unreadable]"),
        "{out}"
    );
    assert!(out.contains("--> checkpoints/momentum_v2.pt"), "{out}");
}

/// A production checkpoint no glob covers is a finding, and no other file is taken for it.
#[test]
fn production_outside_the_globs() {
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("plumbline.toml"),
        "production = \"checkpoints/momentum_v3.pt\"",
        "production = \"elsewhere/momentum_v3.pt\"",
    );
    let o = plumbline(&ex, &["--format", "json", "inventory"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["findings"][0]["code"], "checkpoint-production-unlisted");
    assert!(
        doc["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["production"] == false)
    );
}

/// The progress bar: drawn on a terminal after a second, never when `CI` is set (or when piped, which
/// every other test covers). Uses util-linux `script` for a pseudo-terminal; skipped without it.
#[test]
fn a_progress_bar_only_on_a_terminal_and_not_in_ci() {
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_script {
        eprintln!("skipped: needs util-linux `script` for a pseudo-terminal");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_plumbline");
    let dir = tempfile::tempdir().unwrap();
    let run = |ci: bool| {
        let log = dir.path().join(if ci { "ci.log" } else { "tty.log" });
        let inner =
            format!("stty cols 100 rows 30; '{bin}' --config '{CFG}' gate leakage >/dev/null");
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-q", "-e", "-c", &format!("sh -c \"{inner}\"")])
            .arg(&log)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .env_remove("CI");
        if ci {
            cmd.env("CI", "true");
        }
        assert!(cmd.status().unwrap().success());
        String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned()
    };
    let tty = run(false);
    assert!(tty.contains("0/1 leakage 1s"), "{tty}");
    assert!(tty.contains("\x1b[2K"), "the bar is cleared at the end");
    assert!(!run(true).contains("0/1 leakage"));
}
