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
            "✓ ruleset-smoke"
        ]
    );
    #[cfg(not(feature = "native"))]
    assert!(out.contains("– ruleset-smoke"), "{out}");

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
    assert_eq!(gates.len(), plumbline::gates::GATES.len());
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

#[test]
fn numeric_settings_must_be_finite_and_in_range() {
    let (_g, ex) = example_copy();
    let cfg = ex.join("plumbline.toml");
    replace_in(&cfg, "tolerance = 0.5", "tolerance = nan");
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`gates.norm-stats.tolerance` must be a finite number ≥ 0, not NaN"),
        "{}",
        stderr(&o)
    );
    replace_in(&cfg, "tolerance = nan", "tolerance = 0.5");
    replace_in(
        &cfg,
        "baseline = \"reference/output_baseline.json\"",
        "class-share-min = 0.6\nclass-share-max = 0.5",
    );
    let o = plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "`gates.output-distribution.class-share-min` (0.6) is above `class-share-max` (0.5)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn recomputation_on_a_column_without_values_is_a_finding_not_a_pass() {
    let (_g, ex) = example_copy();
    let path = ex.join("data/slice.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let col = header.split(',').position(|c| c == "vol_ratio").unwrap();
    let mut out = format!("{header}\n");
    for l in lines {
        let mut cells: Vec<&str> = l.split(',').collect();
        cells[col] = "";
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    let o = plumbline(&ex, &["gate", "norm-stats"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error[norm-stats-slice-empty]: `vol_ratio` has no finite value in the 2115 rows of the slice"),
        "{}",
        stdout(&o)
    );
}

#[cfg(feature = "native")]
#[test]
fn an_empty_reference_or_a_row_without_a_head_is_an_error() {
    let (_g, ex) = example_copy();
    let path = ex.join("reference/outputs.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["rows"][3]["outputs"]
        .as_object_mut()
        .unwrap()
        .remove("magnitude");
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let o = plumbline(&ex, &["gate", "forward-contract"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("reference outputs: row 3 has no outputs for head `magnitude`"),
        "{}",
        stderr(&o)
    );
    v["rows"] = serde_json::json!([]);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let o = plumbline(&ex, &["gate", "forward-contract"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no `rows` list, or an empty one"),
        "{}",
        stderr(&o)
    );
}

#[cfg(feature = "native")]
#[test]
fn baseline_refuses_a_model_with_non_finite_outputs_and_drift_names_baseline_gaps() {
    let (_g, ex) = example_copy();
    let committed = std::fs::read(ex.join("reference/output_baseline.json")).unwrap();
    std::fs::copy(
        crate::util::fixture("checkpoints/zero_mad.pt"),
        ex.join("checkpoints/momentum_v3.pt"),
    )
    .unwrap();
    let o = plumbline(&ex, &["baseline"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`direction` is NaN or infinite on 2115 of 2115 slice rows"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(ex.join("reference/output_baseline.json")).unwrap(),
        committed,
        "nothing written"
    );

    let (_g2, ex) = example_copy();
    let path = ex.join("reference/output_baseline.json");
    let mut v: serde_json::Value = serde_json::from_slice(&committed).unwrap();
    v["heads"].as_object_mut().unwrap().remove("magnitude");
    v["heads"]["direction"]["class-shares"] = serde_json::json!([0.5, 0.5]);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = plumbline(&ex, &["--format", "json", "gate", "output-distribution"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "drift findings are warnings: {}",
        stdout(&o)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let messages: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "output-baseline-stale")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "head `direction` has 3 outputs now and 3 (2 class shares) in the baseline",
            "head `magnitude` is not in the baseline"
        ]
    );

    // A baseline of another model and slice says what changed, at the first changed key.
    let mut v: serde_json::Value = serde_json::from_slice(&committed).unwrap();
    v["model-version"] = "2".into();
    v["slice"]["rows"] = 2000.into();
    v["slice"]["bytes"] = 1234.into();
    v["slice"]["sha256"] = "ab".repeat(32).into();
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let o = plumbline(&ex, &["--format", "json", "gate", "output-distribution"]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stale = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "output-baseline-stale")
        .unwrap();
    let message = stale["message"].as_str().unwrap();
    assert!(
        message.starts_with("the baseline was written for another model or slice (data/slice.csv): model version 2 → 3; slice rows 2000 → 2115; slice bytes 1234 → ")
            && message.contains("; slice sha256 abababab…abab → "),
        "{message}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("\"model-version\""))
        .unwrap()
        + 1;
    assert_eq!(stale["location"]["line"], line, "the `model-version` line");
}

/// The example's ruleset takes every action on a meaningful share of the slice (≥ 10% each), by the
/// reference interpreter (the interpreters agree with it: interpretation-parity).
#[cfg(feature = "native")]
#[test]
fn the_example_takes_every_action_on_at_least_a_tenth_of_the_slice() {
    let o = run(&[
        "--config",
        CFG,
        "--format",
        "json",
        "gate",
        "interpretation-parity",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let summary = v["gates"][0]["summary"].as_str().unwrap().to_owned();
    // "2115 rows + 6 synthetic + 3 ties · long 610 short 571 flat 934"
    let words: Vec<&str> = summary.split_whitespace().collect();
    let count = |side: &str| -> f64 {
        let i = words.iter().position(|w| *w == side).unwrap();
        words[i + 1].parse().unwrap()
    };
    let rows: f64 = words[0].parse().unwrap();
    for side in ["long", "short", "flat"] {
        assert!(count(side) / rows >= 0.10, "{side}: {summary}");
    }
}

/// Each gate's declared `needs.commands` is what it does: with the config's commands refused (as under
/// `pull_request_target`), exactly the gates that declare commands try to run one.
#[test]
fn declared_command_needs_are_what_each_gate_does() {
    let config = repo().join(CFG);
    for g in plumbline::gates::GATES {
        let mut loaded = plumbline::check::load(&config).unwrap();
        loaded.run.refuse_commands = Some("this test refuses every command".into());
        loaded.run.base = Some("HEAD".into());
        let outcome = match plumbline::check::run(&loaded, plumbline::check::Selection::Gate(g)) {
            Ok(o) => o,
            // A build without an engine cannot run the model gates: they say so instead.
            Err(e) if g.needs.engine && !cfg!(feature = "native") => {
                assert!(e.to_string().contains("native"), "{}: {e}", g.name);
                continue;
            }
            Err(e) => panic!("{}: {e}", g.name),
        };
        assert_eq!(
            outcome.commands_refused,
            g.needs.commands,
            "{}: declares commands = {}, but a command was{} refused",
            g.name,
            g.needs.commands,
            if outcome.commands_refused { "" } else { " not" }
        );
    }
}

/// `checkpoints/momentum_v3.safetensors` of a copied example with `extra` tensors (name, shape) added
/// to its state dict, zero-filled, as a BatchNorm the `arch` leaves out would add them.
fn with_extra_tensors(ex: &std::path::Path, extra: &[(&str, &[u64])]) {
    crate::util::safetensors_rewrite(
        &ex.join("checkpoints/momentum_v3.safetensors"),
        |header, data| {
            for (name, shape) in extra {
                let len = 4 * shape.iter().product::<u64>() as usize;
                header.insert(
                    (*name).to_owned(),
                    serde_json::json!({
                        "dtype": "F32",
                        "shape": shape,
                        "data_offsets": [data.len(), data.len() + len],
                    }),
                );
                data.extend(std::iter::repeat_n(0u8, len));
            }
        },
    );
}

#[test]
fn a_checkpoint_with_tensors_its_arch_does_not_use_fails_naming_them() {
    let (_d, ex) = example_copy();
    with_extra_tensors(
        &ex,
        &[
            ("trunk.1.weight", &[32]),
            ("trunk.1.bias", &[32]),
            ("trunk.1.running_mean", &[32]),
            ("trunk.1.running_var", &[32]),
        ],
    );
    let out = plumbline(&ex, &["gate", "checkpoint-inventory"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("error[arch-tensor-unused]: checkpoints/momentum_v3.safetensors: module `trunk.1` (`trunk.1.bias`, `trunk.1.running_mean`, `trunk.1.running_var`, `trunk.1.weight`) is in the state dict, but `arch` does not use it"),
        "{said}"
    );
    // The untouched production checkpoint accounts for every tensor.
    assert!(!said.contains("momentum_v3.pt: module"), "{said}");
}

/// The case, saved by real torch: Linear → BatchNorm1d → LeakyReLU(0.1) blocks described by an
/// `arch` as a plain Linear + ReLU MLP. Every other static gate passes on it; the tensor accounting
/// names both BatchNorm modules and all their tensors.
#[test]
fn a_batchnorm_left_out_of_arch_is_named_with_its_tensors() {
    let (_d, ex) = example_copy();
    std::fs::copy(
        crate::util::fixture("models/bn_leaky_as_relu.pt"),
        ex.join("checkpoints/bn_leaky_as_relu.pt"),
    )
    .unwrap();
    replace_in(
        &ex.join("plumbline.toml"),
        "production = \"checkpoints/momentum_v3.pt\"",
        "production = \"checkpoints/bn_leaky_as_relu.pt\"",
    );
    let out = plumbline(&ex, &["gate", "checkpoint-inventory"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stdout(&out);
    for module in ["trunk.1", "trunk.4"] {
        let line = format!(
            "error[arch-tensor-unused]: checkpoints/bn_leaky_as_relu.pt: module `{module}` (`{module}.bias`, `{module}.num_batches_tracked`, `{module}.running_mean`, `{module}.running_var`, `{module}.weight`) is in the state dict, but `arch` does not use it"
        );
        assert!(said.contains(&line), "{line}\n---\n{said}");
    }
    // The static gates that read the same checkpoint find nothing wrong with it.
    for gate in ["feature-schema", "heads"] {
        let out = plumbline(&ex, &["gate", gate]);
        assert_eq!(out.status.code(), Some(0), "{gate}: {}", stdout(&out));
    }
}
