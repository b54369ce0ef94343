//! The gate framework from the command line: profiles, skips, disabling, the baseline, determinism.

use crate::util::{example_copy, plumbline, replace_in, repo, stderr, stdout};

const CFG: &str = "examples/momentum/plumbline.toml";

fn run(args: &[&str]) -> std::process::Output {
    plumbline(&repo(), args)
}

/// Gate names in a human `check` output, in order, with ✓/–.
fn table(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("  ✓ ") || l.starts_with("  – ") || l.starts_with("  ✗ "))
        .map(|l| {
            l[2..]
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn profiles_run_the_plans_workflows() {
    let o = run(&["--config", CFG, "check", "--profile", "pre-backtest"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "plumbline 0.1.0 · momentum · model v3 · heads v2 · profile pre-backtest\n"
        )
    );
    #[cfg(feature = "native")]
    assert_eq!(
        table(&out),
        [
            "✓ checkpoint-inventory",
            "✓ feature-schema",
            "✓ norm-stats",
            "✓ forward-contract",
            "– ruleset-smoke"
        ]
    );
    assert!(
        out.contains("ruleset-smoke          skipped: not configured"),
        "{out}"
    );

    let o = run(&["--config", CFG, "check", "--profile", "post-train"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        table(&stdout(&o)),
        [
            "✓ checkpoint-inventory",
            "✓ feature-schema",
            "✓ norm-stats",
            "✓ labels",
            "✓ heads"
        ]
    );

    let o = run(&[
        "--config",
        CFG,
        "--format",
        "json",
        "check",
        "--profile",
        "pre-live",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["profile"], "pre-live");
    let gates = v["gates"].as_array().unwrap();
    assert_eq!(
        gates.len(),
        plumbline::gates::GATES.len() + plumbline::gates::PLANNED.len()
    );
}

#[cfg(feature = "native")]
#[test]
fn json_report_with_the_model_gates_is_byte_identical_across_runs() {
    let a = run(&["--config", CFG, "--format", "json", "check"]);
    let b = run(&["--config", CFG, "--format", "json", "check"]);
    assert_eq!(a.status.code(), Some(0));
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    assert!(text.contains("\"gate\": \"output-distribution\""), "{text}");
}

#[cfg(feature = "native")]
#[test]
fn baseline_reproduces_the_committed_one_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.json");
    let o = run(&["--config", CFG, "baseline", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let committed =
        std::fs::read(crate::util::example().join("reference/output_baseline.json")).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), committed);
}

#[cfg(feature = "native")]
#[test]
fn a_model_gate_asked_for_by_name_that_cannot_run_is_an_error() {
    let (_g, ex) = example_copy();
    let text = std::fs::read_to_string(ex.join("plumbline.toml")).unwrap();
    let cut = text.find("# The reference slice").unwrap();
    let no_slice = text[..cut].to_owned()
        + "[gates.output-distribution]\nbaseline = \"reference/output_baseline.json\"\n";
    std::fs::write(ex.join("plumbline.toml"), no_slice).unwrap();
    let o = plumbline(&ex, &["gate", "output-distribution"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("gate `output-distribution` cannot run: not configured: no `[slice]`"),
        "{}",
        stderr(&o)
    );
    // In `check` the same gate is a visible skip, and forward-contract still probes without the slice.
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("– output-distribution     skipped: not configured: no `[slice]`"));
    assert!(
        stdout(&o).contains("✓ forward-contract        36 probes"),
        "{}",
        stdout(&o)
    );
    let o = plumbline(&ex, &["baseline"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("a baseline needs a `[slice]`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn disabled_gates_are_listed_as_skipped_and_unknown_names_are_config_errors() {
    let (_g, ex) = example_copy();
    let cfg = ex.join("plumbline.toml");
    replace_in(
        &cfg,
        "[gates.norm-stats]",
        "[gates]\ndisable = [\"labels\"]\n\n[gates.norm-stats]",
    );
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("– labels                  skipped: disabled in plumbline.toml"),
        "{}",
        stdout(&o)
    );
    replace_in(&cfg, "disable = [\"labels\"]", "disable = [\"lables\"]");
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`gates.disable` names unknown gate `lables`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_slice_missing_a_model_column_is_an_error_naming_it() {
    let (_g, ex) = example_copy();
    replace_in(&ex.join("data/slice.csv"), ",rsi_14,", ",rsi_15,");
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("data/slice.csv:1: the slice has no column for 1 contract feature: rsi_14"),
        "{}",
        stderr(&o)
    );
}
