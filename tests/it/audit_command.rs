//! `audit conditions` on a command engine: permutation importance through the pipeline's own inference
//! code (no burn needed), seeded and repeatable.

use crate::util::{example_copy, plumbline, repo, stderr};

#[test]
fn permutation_importance_runs_through_the_command_engine() {
    if !crate::util::python3_or_skip("the command engine") {
        return;
    }
    let (_g, ex) = example_copy();
    let slice = ex.join("data/slice.csv");
    let text = std::fs::read_to_string(&slice).unwrap();
    let cut: Vec<&str> = text.lines().take(121).collect();
    std::fs::write(&slice, cut.join("\n") + "\n").unwrap();
    let script = repo().join("tests/fixtures/commands/scaled_engine.py");
    let engine = format!(
        "engine = {{ argv = [\"python3\", {:?}, \"backtest/infer.py\", \"checkpoints/momentum_v3.safetensors\", \"{{inputs}}\", \"{{out}}\"] }}",
        script.to_string_lossy()
    );
    let cfg = ex.join("plumbline.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let anchor = "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\n";
    std::fs::write(
        &cfg,
        text.replacen(anchor, &format!("{anchor}{engine}\n"), 1),
    )
    .unwrap();

    let o = plumbline(&ex, &["audit", "conditions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("permutation importance, 5 shuffles"),
        "{}",
        stderr(&o)
    );
    let out = ex.join("artifacts/learned_conditions");
    let csv = std::fs::read_to_string(out.join("attribution.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4 * 14, "{csv}");
    assert!(rows.iter().all(|l| l.starts_with("permutation,")), "{csv}");
    // Shuffling a feature the model uses moves its outputs.
    let top: f64 = rows[0].split(',').nth(5).unwrap().parse().unwrap();
    assert!(top > 0.0, "{csv}");
    let first = std::fs::read(out.join("attribution.csv")).unwrap();
    let o = plumbline(&ex, &["audit", "conditions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(first, std::fs::read(out.join("attribution.csv")).unwrap());

    // The occlusion factors of `audit decisions` run through the same command.
    let o = plumbline(&ex, &["audit", "decisions"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let d = std::fs::read_to_string(ex.join("artifacts/audit/decision_attribution.csv")).unwrap();
    assert_eq!(d.lines().count(), 121);
    assert!(
        d.lines().nth(1).unwrap().contains(",occlusion,"),
        "{d:.400}"
    );
}
