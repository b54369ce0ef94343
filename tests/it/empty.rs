//! Too little data is a finding or a clear error, never a panic and never a pass on nothing: every table
//! a gate reads, empty (a header only) or too short (one bar per symbol).

use std::path::Path;

use crate::util::{example_copy, plumbline, stderr, stdout};

fn run(ex: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = plumbline(ex, args);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!text.contains("panicked"), "{args:?} panicked:\n{text}");
    (o.status.code(), text)
}

/// Keep the header of a CSV and, per symbol, its first `per_symbol` rows.
fn shorten(path: &Path, per_symbol: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let sym = header.split(',').position(|c| c == "symbol").unwrap();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let mut out = format!("{header}\n");
    for l in lines {
        let n = seen
            .entry(l.split(',').nth(sym).unwrap().to_owned())
            .or_default();
        if *n < per_symbol {
            out.push_str(l);
            out.push('\n');
        }
        *n += 1;
    }
    std::fs::write(path, out).unwrap();
}

/// Make a Python script write its output table's header only.
#[cfg(feature = "native")]
fn header_only(path: &Path, loop_head: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(text.matches(loop_head).count(), 1, "{loop_head:?}");
    std::fs::write(
        path,
        text.replacen(
            loop_head,
            &loop_head.replace(" in rows:", " in rows[:0]:"),
            1,
        ),
    )
    .unwrap();
}

#[test]
fn header_only_prices_are_findings_in_every_builder_gate() {
    let (_guard, ex) = example_copy();
    shorten(&ex.join("data/prices_recent.csv"), 0);
    let (code, out) = run(&ex, &["gate", "leakage"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[leakage-too-little-data]: the prices hold 0 distinct timestamps (0 rows); leakage needs at least 10 for 5 cut points"),
        "{out}"
    );
    let (code, out) = run(&ex, &["gate", "feature-parity"]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.matches("error[builder-no-rows]").count(), 3, "{out}");
    assert!(
        !out.contains("feature-anchor-unusable"),
        "reported once, as builder-no-rows: {out}"
    );
}

#[test]
fn one_bar_per_symbol_passes_nothing() {
    let (_guard, ex) = example_copy();
    shorten(&ex.join("data/prices_recent.csv"), 1);
    let (code, out) = run(&ex, &["gate", "feature-parity"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[builder-no-rows]: the training builder writes 3 rows and none has every feature set"),
        "{out}"
    );
    let (code, out) = run(&ex, &["gate", "leakage"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the prices hold 1 distinct timestamps (3 rows)"),
        "{out}"
    );
}

#[test]
fn a_header_only_slice_is_a_clear_error() {
    let (_guard, ex) = example_copy();
    shorten(&ex.join("data/slice.csv"), 0);
    let (code, out) = run(&ex, &["check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("data/slice.csv:1: the slice has a header and no rows: the model gates need at least one row to run on"),
        "{out}"
    );
}

#[test]
fn header_only_builder_and_label_tables_are_findings() {
    let (_guard, ex) = example_copy();
    // The labels builder writes its header only: leakage has nothing to test.
    let labels = ex.join("pipeline/build_labels.py");
    let text = std::fs::read_to_string(&labels).unwrap();
    std::fs::write(
        &labels,
        text.replacen("w.writerows(rows)", "w.writerows(rows[:0])", 1),
    )
    .unwrap();
    let (code, out) = run(&ex, &["gate", "leakage"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[leakage-too-little-data]: the labels builder writes 0 rows on the full prices and no value"),
        "{out}"
    );
    // The live feature builder writes its header only.
    let live = ex.join("live/features.py");
    let text = std::fs::read_to_string(&live).unwrap();
    std::fs::write(
        &live,
        text.replacen(
            "for ts, sym, bar in bars:",
            "for ts, sym, bar in bars[:0]:",
            1,
        ),
    )
    .unwrap();
    let (code, out) = run(&ex, &["gate", "feature-parity"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[builder-no-rows]: the live builder writes 0 rows"),
        "{out}"
    );
}

/// The inference and interpretation gates run the model (the native engine here).
#[cfg(feature = "native")]
#[test]
fn header_only_inference_and_interpreter_tables_are_findings() {
    let (_guard, ex) = example_copy();
    // The live inference path and the live interpreter write their headers only.
    header_only(
        &ex.join("live/infer.py"),
        "        for ts, sym, feats in rows:\n",
    );
    let (code, out) = run(&ex, &["gate", "inference-parity"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[inference-output-invalid]: the live inference path's table has no row"),
        "{out}"
    );
    header_only(
        &ex.join("live/interpret.py"),
        "        for ts, sym, values in rows:\n",
    );
    let (code, out) = run(&ex, &["gate", "interpretation-parity"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[interpreter-output-invalid]: the live interpreter's table has no row"),
        "{out}"
    );
}

/// The label definition fails closed: a class column the labels table lacks is a finding, prices too
/// short for one known label are a finding, and classes that are not long, flat and short are a config
/// error.
#[test]
fn a_label_definition_that_compares_nothing_is_a_finding() {
    let (_guard, ex) = example_copy();
    let (code, out) = run(&ex, &["gate", "label-definition"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("2385 labels · horizon 5 · log returns"),
        "{out}"
    );
    let cfg = ex.join("plumbline.toml");
    crate::util::replace_in(&cfg, "label-column = \"label\"", "label-column = \"class\"");
    let (code, out) = run(&ex, &["gate", "label-definition"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[label-definition-unusable]: the labels table has no numeric column `class` (`targets.definition`)"),
        "{out}"
    );
    crate::util::replace_in(&cfg, "label-column = \"class\"", "label-column = \"label\"");
    shorten(&ex.join("data/prices_recent.csv"), 3);
    let (code, out) = run(&ex, &["gate", "label-definition"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("error[label-definition-unusable]: no bar of the prices has 5 bars after it: no label is known"),
        "{out}"
    );
    crate::util::replace_in(
        &cfg,
        "classes = { short = 0, flat = 1, long = 2 }",
        "classes = { short = 0, long = 2 }",
    );
    let (code, out) = run(&ex, &["gate", "label-definition"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("`targets.definition.classes` must name exactly `long`, `flat` and `short`, not long, short"),
        "{out}"
    );
}

/// A missing input file names the config key that points at it.
#[test]
fn a_missing_input_names_its_config_key() {
    let (_guard, ex) = example_copy();
    std::fs::remove_file(ex.join("data/prices_recent.csv")).unwrap();
    let (code, out) = run(&ex, &["gate", "leakage"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("error: plumbline.toml: `data.prices` names data/prices_recent.csv, which does not exist"),
        "{out}"
    );
    std::fs::remove_file(ex.join("data/slice.csv")).unwrap();
    let (code, out) = run(&ex, &["check"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "error: plumbline.toml: `slice.features` names data/slice.csv, which does not exist"
        ),
        "{out}"
    );
}

/// The reference outputs, the output baseline and the ruleset name their keys too.
#[cfg(feature = "native")]
#[test]
fn missing_reference_baseline_and_ruleset_name_their_keys() {
    for (file, gate, key) in [
        (
            "reference/outputs.json",
            "forward-contract",
            "gates.forward-contract.reference",
        ),
        (
            "reference/output_baseline.json",
            "output-distribution",
            "gates.output-distribution.baseline",
        ),
        ("ruleset.toml", "ruleset-smoke", "ruleset.path"),
    ] {
        let (_guard, ex) = example_copy();
        std::fs::remove_file(ex.join(file)).unwrap();
        let (code, out) = run(&ex, &["gate", gate]);
        assert_eq!(code, Some(2), "{out}");
        let want = format!("error: plumbline.toml: `{key}` names {file}, which does not exist");
        assert!(out.contains(&want), "{want}\n{out}");
    }
}
