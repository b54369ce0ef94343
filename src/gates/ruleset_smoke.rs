//! # ruleset-smoke (plan script 06_ruleset_execution_smoke)
//!
//! **What it does.** Loads the interpretation ruleset (`[ruleset] path`) and checks it: the signal
//! classes name `long` and `short` once each, the entry thresholds are probabilities in (0, 1], sizing is
//! positive and finite, every risk gate reads a feature or head output that exists and has a bound
//! (`block-below` < `block-above` when both are set), gate names are unique (that the heads it names
//! exist with the right kinds is the heads gate's `ruleset-head-mismatch`). Then it runs plumbline's
//! reference interpreter on the model's outputs for every slice row: no NaN size, every size within
//! [0, max-size], every action reachable. Last, each risk gate gets a synthetic extreme input (its value
//! pushed past its bound, within what the value can be: a probability stays in [0, 1]); the gate must
//! block and the action must be flat.
//!
//! **Why is this bad?** A threshold above 1 never trades, a sizing head that can be NaN sends NaN orders,
//! and a risk gate whose bound its input can never cross protects nothing: all pass every unit test of
//! the code that reads them.
//!
//! **Example.** `flat-confidence` reads `head.direction.1` (a probability) with `block-above = 1.2`:
//! `risk-gate-never-fires` at the gate's `name` line of ruleset.toml.

use super::{Context, Gate, Id, Model, Needs, Profile, Report};
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::ruleset::{self, Read, Side, SliceRow, extreme_failures};

const fn code(id: &'static str, severity: Severity, summary: &'static str) -> Code {
    Code {
        id,
        gate: "ruleset-smoke",
        contract: ContractKind::Interpretation,
        severity,
        summary,
    }
}

pub const INVALID: Code = code(
    "ruleset-invalid",
    Severity::Error,
    "a ruleset value is out of range or inconsistent (thresholds, classes, sizing, gate bounds, reads)",
);
pub const NAN_SIZE: Code = code(
    "ruleset-nan-size",
    Severity::Error,
    "the reference interpreter gives a NaN size on a slice row",
);
pub const SIZE_OUT_OF_BOUNDS: Code = code(
    "ruleset-size-out-of-bounds",
    Severity::Error,
    "a size is negative or above max-size",
);
pub const ACTION_UNUSED: Code = code(
    "ruleset-action-unused",
    Severity::Warning,
    "an action (long, short, flat) is never taken on the slice",
);
pub const GATE_NEVER_FIRES: Code = code(
    "risk-gate-never-fires",
    Severity::Error,
    "a risk gate does not block on a synthetic extreme input",
);

pub const GATE: Gate = Gate {
    id: Id::RulesetSmoke,
    name: "ruleset-smoke",
    plan_script: Some("06_ruleset_execution_smoke"),
    codes: &[
        INVALID,
        NAN_SIZE,
        SIZE_OUT_OF_BOUNDS,
        ACTION_UNUSED,
        GATE_NEVER_FIRES,
    ],
    needs: Needs {
        engine: true,
        slice: true,
        base: false,
    },
    profiles: &[Profile::PreBacktest, Profile::PreLive],
    run,
};

/// Static checks of a ruleset against the contract's heads and features.
pub fn validate(rl: &ruleset::Loaded, features: &[String]) -> Vec<Finding> {
    let rs = &rl.ruleset;
    let mut out = Vec::new();
    let mut bad = |key: &str, msg: String| {
        out.push(
            Finding::new(&INVALID, msg)
                .at(rl.location(key))
                .help("docs/ruleset.md lists each key's range"),
        );
    };
    for c in ["long", "short"] {
        let n = rs.signal.classes.iter().filter(|x| *x == c).count();
        if n != 1 {
            bad(
                "signal.classes",
                format!("`signal.classes` must name `{c}` exactly once (it names it {n} times)"),
            );
        }
    }
    for (key, v) in [
        ("signal.enter-long", rs.signal.enter_long),
        ("signal.enter-short", rs.signal.enter_short),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            bad(
                key,
                format!("`{key}` is {v}: an entry threshold is a probability in (0, 1]"),
            );
        }
    }
    for (key, v) in [
        ("sizing.per-unit", rs.sizing.per_unit),
        ("sizing.max-size", rs.sizing.max_size),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bad(
                key,
                format!("`{key}` is {v}: it must be a positive finite number"),
            );
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, g) in rs.risk_gates.iter().enumerate() {
        let key = format!("risk-gates.{i}.name");
        if !names.insert(g.name.as_str()) {
            bad(&key, format!("risk gate `{}` is defined twice", g.name));
        }
        match g.read() {
            None => bad(
                &format!("risk-gates.{i}.reads"),
                format!(
                    "risk gate `{}` reads `{}`: expected `feature.NAME` or `head.NAME.K`",
                    g.name, g.reads
                ),
            ),
            Some(Read::Feature(f)) if !features.contains(&f) => bad(
                &format!("risk-gates.{i}.reads"),
                format!(
                    "risk gate `{}` reads feature `{f}`, which is not a model input",
                    g.name
                ),
            ),
            _ => {}
        }
        match (g.block_below, g.block_above) {
            (None, None) => bad(
                &key,
                format!(
                    "risk gate `{}` has neither `block-above` nor `block-below`",
                    g.name
                ),
            ),
            (Some(b), Some(a)) if b >= a => bad(
                &key,
                format!(
                    "risk gate `{}`: block-below {b} is not below block-above {a}",
                    g.name
                ),
            ),
            (b, a) if b.is_some_and(|x| !x.is_finite()) || a.is_some_and(|x| !x.is_finite()) => {
                bad(
                    &key,
                    format!("risk gate `{}` has a non-finite bound", g.name),
                )
            }
            _ => {}
        }
    }
    out
}

pub fn run(cx: &Context) -> Result<Report> {
    let Some(rl) = cx.ruleset()? else {
        return Ok(Report::skipped(
            "not configured: no `[ruleset]` in plumbline.toml",
        ));
    };
    let rs = &rl.ruleset;
    let features = cx.facts.model_feature_names()?;
    let mut out = validate(rl, &features);
    let soft_owned = crate::contract::softmax_heads(cx.facts.heads().unwrap_or_default());
    let soft: Vec<&str> = soft_owned.iter().map(String::as_str).collect();
    let heads = cx.facts.heads()?.to_vec();
    let width = |h: &str| {
        heads
            .iter()
            .find(|x| x.name == h)
            .map(|x| x.shape.iter().product::<u64>() as usize)
    };
    let mut summary = format!("{} risk gates", rs.risk_gates.len());
    let Some(slice) = cx.slice else {
        return Ok(Report {
            findings: out,
            summary: summary + " · no [slice]: not run on the model's outputs",
            skipped: None,
        });
    };
    let Model::Ready(engine) = cx.model else {
        return Ok(Report {
            findings: out,
            summary: summary + " · the model cannot be built (forward-contract says why)",
            skipped: None,
        });
    };
    let outputs = match cx.slice_outputs(engine.as_ref(), slice) {
        Ok(o) => o,
        Err(_) => {
            return Ok(Report {
                findings: out,
                summary: summary + " · the model does not run (forward-contract says why)",
                skipped: None,
            });
        }
    };
    let mut counts = [0usize; 3];
    let mut nan_rows = Vec::new();
    let mut oob_rows = Vec::new();
    for r in 0..slice.len() {
        let row = SliceRow {
            outputs,
            slice,
            names: &features,
            row: r,
        };
        let d = ruleset::interpret(rs, &row, &soft);
        counts[d.side as usize] += 1;
        if d.size.is_nan() {
            nan_rows.push(r);
        } else if d.size < 0.0 || d.size > rs.sizing.max_size {
            oob_rows.push((r, d.size));
        }
    }
    if let Some(&r) = nan_rows.first() {
        out.push(
            Finding::new(
                &NAN_SIZE,
                format!(
                    "the size is NaN on slice row {} ({} of {} rows)",
                    slice.key(r),
                    nan_rows.len(),
                    slice.len()
                ),
            )
            .at(rl.location("sizing.head"))
            .related(slice.location(r))
            .help("the sizing head's output is NaN on this row: check the model's inputs there"),
        );
    }
    if let Some(&(r, size)) = oob_rows.first() {
        out.push(
            Finding::new(
                &SIZE_OUT_OF_BOUNDS,
                format!(
                    "size {size} on slice row {} is outside [0, {}]",
                    slice.key(r),
                    rs.sizing.max_size
                ),
            )
            .at(rl.location("sizing.max-size"))
            .related(slice.location(r)),
        );
    }
    for (side, n) in [Side::Long, Side::Short, Side::Flat].iter().zip(counts) {
        if n == 0 {
            let key = match side {
                Side::Long => "signal.enter-long",
                Side::Short => "signal.enter-short",
                Side::Flat => "signal",
            };
            out.push(
                Finding::new(
                    &ACTION_UNUSED,
                    format!(
                        "`{}` is never taken on the {} slice rows",
                        side.as_str(),
                        slice.len()
                    ),
                )
                .at(rl.location(key))
                .help("the thresholds cannot be reached by the model's outputs on the slice"),
            );
        }
    }
    if !slice.is_empty() {
        let base = SliceRow {
            outputs,
            slice,
            names: &features,
            row: 0,
        };
        for (i, why) in extreme_failures(rs, &base, &soft, width) {
            out.push(
                Finding::new(&GATE_NEVER_FIRES, why)
                    .at(rl.location(&format!("risk-gates.{i}.name")))
                    .help("a bound the input can never cross protects nothing: for a probability, keep it inside (0, 1)"),
            );
        }
    }
    let total = slice.len().max(1) as f64;
    summary = format!(
        "{} rows · long {:.0}% short {:.0}% flat {:.0}% · {} risk gates",
        slice.len(),
        100.0 * counts[0] as f64 / total,
        100.0 * counts[1] as f64 / total,
        100.0 * counts[2] as f64 / total,
        rs.risk_gates.len()
    );
    Ok(Report {
        findings: out,
        summary,
        skipped: None,
    })
}
