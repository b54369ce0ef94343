//! `audit conditions` on a command engine: permutation importance through the pipeline's own inference
//! code (no burn needed), seeded and repeatable.

use crate::util::{example_copy, plumbline, stderr};

#[test]
fn permutation_importance_runs_through_the_command_engine() {
    if !crate::util::python3_or_skip("the command engine") {
        return;
    }
    let (_g, ex) = example_copy();
    crate::util::cut_slice(&ex, 120);
    crate::util::use_command_engine(&ex);

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
