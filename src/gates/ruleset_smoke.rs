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

use super::{Context, Gate, Id, Model, Needs, Parts, Profile, Report};
use crate::contract::Head;
use crate::engine::Outputs;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::ruleset::{self, Read, RiskGate, Side, SliceRow, extreme_failures};
use crate::slice::Slice;

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
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreBacktest, Profile::PreLive],
    run,
};

/// A ruleset value out of range or inconsistent, at its key.
fn invalid(rl: &ruleset::Loaded, key: &str, message: String) -> Finding {
    Finding::new(&INVALID, message)
        .at(rl.location(key))
        .help("docs/ruleset.md lists each key's range")
}

/// A NaN size on slice row `r`, the first of `count` such rows.
fn nan_size(rl: &ruleset::Loaded, slice: &Slice, r: usize, count: usize) -> Finding {
    Finding::new(
        &NAN_SIZE,
        format!(
            "the size is NaN on slice row {} ({count} of {} rows)",
            slice.key(r),
            slice.len()
        ),
    )
    .at(rl.location("sizing.head"))
    .related(slice.location(r))
    .help("the sizing head's output is NaN on this row: check the model's inputs there")
}

/// A size outside [0, max-size] on slice row `r`.
fn size_out_of_bounds(rl: &ruleset::Loaded, slice: &Slice, r: usize, size: f64) -> Finding {
    Finding::new(
        &SIZE_OUT_OF_BOUNDS,
        format!(
            "size {size} on slice row {} is outside [0, {}]",
            slice.key(r),
            rl.ruleset.sizing.max_size
        ),
    )
    .at(rl.location("sizing.max-size"))
    .related(slice.location(r))
}

/// An action never taken on the slice, at the threshold that leads to it.
fn action_unused(rl: &ruleset::Loaded, side: Side, rows: usize) -> Finding {
    let key = match side {
        Side::Long => "signal.enter-long",
        Side::Short => "signal.enter-short",
        Side::Flat => "signal",
    };
    Finding::new(
        &ACTION_UNUSED,
        format!(
            "`{}` is never taken on the {rows} slice rows",
            side.as_str()
        ),
    )
    .at(rl.location(key))
    .help("the thresholds cannot be reached by the model's outputs on the slice")
}

/// Risk gate `i` does not block on its synthetic extreme input (`why` says with what).
fn gate_never_fires(rl: &ruleset::Loaded, i: usize, why: String) -> Finding {
    Finding::new(&GATE_NEVER_FIRES, why)
        .at(rl.location(&format!("risk-gates.{i}.name")))
        .help("a bound the input can never cross protects nothing: for a probability, keep it inside (0, 1)")
}

/// Static checks of a ruleset against the contract's heads and features.
pub fn validate(rl: &ruleset::Loaded, features: &[String]) -> Vec<Finding> {
    let rs = &rl.ruleset;
    let mut out = signal_problems(rl);
    out.extend(sizing_problems(rl));
    let mut names = std::collections::BTreeSet::new();
    for (i, g) in rs.risk_gates.iter().enumerate() {
        if !names.insert(g.name.as_str()) {
            out.push(invalid(
                rl,
                &format!("risk-gates.{i}.name"),
                format!("risk gate `{}` is defined twice", g.name),
            ));
        }
        out.extend(gate_read_problem(rl, i, g, features));
        out.extend(gate_bounds_problem(rl, i, g));
    }
    out
}

/// The signal's classes (`long` and `short` once each) and entry thresholds (probabilities).
fn signal_problems(rl: &ruleset::Loaded) -> Vec<Finding> {
    let signal = &rl.ruleset.signal;
    let mut out = Vec::new();
    for c in ["long", "short"] {
        let n = signal.classes.iter().filter(|x| *x == c).count();
        if n != 1 {
            out.push(invalid(
                rl,
                "signal.classes",
                format!("`signal.classes` must name `{c}` exactly once (it names it {n} times)"),
            ));
        }
    }
    for (key, v) in [
        ("signal.enter-long", signal.enter_long),
        ("signal.enter-short", signal.enter_short),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            out.push(invalid(
                rl,
                key,
                format!("`{key}` is {v}: an entry threshold is a probability in (0, 1]"),
            ));
        }
    }
    out
}

/// The sizing values: positive and finite.
fn sizing_problems(rl: &ruleset::Loaded) -> Vec<Finding> {
    let sizing = &rl.ruleset.sizing;
    [
        ("sizing.per-unit", sizing.per_unit),
        ("sizing.max-size", sizing.max_size),
    ]
    .into_iter()
    .filter(|(_, v)| !(v.is_finite() && *v > 0.0))
    .map(|(key, v)| {
        invalid(
            rl,
            key,
            format!("`{key}` is {v}: it must be a positive finite number"),
        )
    })
    .collect()
}

/// What risk gate `i` reads: a `feature.NAME` of the model's inputs or a `head.NAME.K`.
fn gate_read_problem(
    rl: &ruleset::Loaded,
    i: usize,
    g: &RiskGate,
    features: &[String],
) -> Option<Finding> {
    let key = format!("risk-gates.{i}.reads");
    match g.read() {
        None => Some(invalid(
            rl,
            &key,
            format!(
                "risk gate `{}` reads `{}`: expected `feature.NAME` or `head.NAME.K`",
                g.name, g.reads
            ),
        )),
        Some(Read::Feature(f)) if !features.contains(&f) => Some(invalid(
            rl,
            &key,
            format!(
                "risk gate `{}` reads feature `{f}`, which is not a model input",
                g.name
            ),
        )),
        _ => None,
    }
}

/// Risk gate `i`'s bounds: at least one, finite, block-below under block-above.
fn gate_bounds_problem(rl: &ruleset::Loaded, i: usize, g: &RiskGate) -> Option<Finding> {
    let message = match (g.block_below, g.block_above) {
        (None, None) => format!(
            "risk gate `{}` has neither `block-above` nor `block-below`",
            g.name
        ),
        (Some(b), Some(a)) if b >= a => format!(
            "risk gate `{}`: block-below {b} is not below block-above {a}",
            g.name
        ),
        (b, a) if b.is_some_and(|x| !x.is_finite()) || a.is_some_and(|x| !x.is_finite()) => {
            format!("risk gate `{}` has a non-finite bound", g.name)
        }
        _ => return None,
    };
    Some(invalid(rl, &format!("risk-gates.{i}.name"), message))
}

/// The model's outputs on the slice, with the names the interpreter reads them by.
struct OnSlice<'a> {
    slice: &'a Slice,
    outputs: &'a Outputs,
    features: &'a [String],
    soft: &'a [&'a str],
}

impl OnSlice<'_> {
    /// Slice row `row` as interpreter input.
    fn row(&self, row: usize) -> SliceRow<'_> {
        SliceRow {
            outputs: self.outputs,
            slice: self.slice,
            names: self.features,
            row,
        }
    }
}

/// The reference interpreter's decisions over the slice: actions taken, NaN and out-of-bounds sizes.
#[derive(Default)]
struct Tally {
    /// Rows per side, in `Side` order (long, short, flat).
    counts: [usize; 3],
    nan_rows: Vec<usize>,
    oob_rows: Vec<(usize, f64)>,
}

pub fn run(cx: &Context) -> Result<Report> {
    let Some(rl) = cx.ruleset()? else {
        return Ok(Report::skipped(cx.not_configured("`[ruleset]`")));
    };
    let rs = &rl.ruleset;
    let features = cx.facts.model_feature_names()?;
    let mut out = validate(rl, &features);
    let soft_owned = crate::contract::softmax_heads(cx.facts.heads().unwrap_or_default());
    let soft: Vec<&str> = soft_owned.iter().map(String::as_str).collect();
    let heads = cx.facts.heads()?;
    let (slice, outputs) = match model_outputs(cx) {
        Ok(v) => v,
        Err(why) => {
            return Ok(Report {
                findings: out,
                summary: format!("{} risk gates", rs.risk_gates.len()) + why,
                skipped: None,
            });
        }
    };
    let on = OnSlice {
        slice,
        outputs,
        features: &features,
        soft: &soft,
    };
    let tally = interpret_slice(rs, &on);
    out.extend(tally_findings(rl, slice, &tally));
    if !slice.is_empty() {
        out.extend(never_fires(rl, &on, heads));
    }
    Ok(Report {
        findings: out,
        summary: summary(slice.len(), &tally.counts, rs.risk_gates.len()),
        skipped: None,
    })
}

/// The slice and the model's outputs on it, or why the ruleset is not run on them (a summary suffix).
fn model_outputs<'a>(
    cx: &'a Context,
) -> std::result::Result<(&'a Slice, &'a Outputs), &'static str> {
    let Some(slice) = cx.slice else {
        return Err(" · no [slice]: not run on the model's outputs");
    };
    let Model::Ready(engine) = cx.model else {
        return Err(" · the model cannot be built (forward-contract says why)");
    };
    match cx.slice_outputs(engine.as_ref(), slice) {
        Ok(o) => Ok((slice, o)),
        Err(_) => Err(" · the model does not run (forward-contract says why)"),
    }
}

/// Runs the reference interpreter on every slice row.
fn interpret_slice(rs: &ruleset::Ruleset, on: &OnSlice) -> Tally {
    let mut tally = Tally::default();
    for r in 0..on.slice.len() {
        let d = ruleset::interpret(rs, &on.row(r), on.soft);
        tally.counts[d.side as usize] += 1;
        if d.size.is_nan() {
            tally.nan_rows.push(r);
        } else if d.size < 0.0 || d.size > rs.sizing.max_size {
            tally.oob_rows.push((r, d.size));
        }
    }
    tally
}

/// Findings on the interpreter's decisions: the first NaN size, the first size out of bounds, each
/// action never taken.
fn tally_findings(rl: &ruleset::Loaded, slice: &Slice, tally: &Tally) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(&r) = tally.nan_rows.first() {
        out.push(nan_size(rl, slice, r, tally.nan_rows.len()));
    }
    if let Some(&(r, size)) = tally.oob_rows.first() {
        out.push(size_out_of_bounds(rl, slice, r, size));
    }
    for (side, n) in [Side::Long, Side::Short, Side::Flat]
        .into_iter()
        .zip(tally.counts)
    {
        if n == 0 {
            out.push(action_unused(rl, side, slice.len()));
        }
    }
    out
}

/// The risk gates that do not block on a synthetic extreme input (built on slice row 0).
fn never_fires(rl: &ruleset::Loaded, on: &OnSlice, heads: &[Head]) -> Vec<Finding> {
    let width = |h: &str| {
        heads
            .iter()
            .find(|x| x.name == h)
            .map(|x| x.shape.iter().product::<u64>() as usize)
    };
    let base = on.row(0);
    extreme_failures(&rl.ruleset, &base, on.soft, width)
        .into_iter()
        .map(|(i, why)| gate_never_fires(rl, i, why))
        .collect()
}

/// The summary: slice rows, each action's share of them, risk gates.
fn summary(rows: usize, counts: &[usize; 3], gates: usize) -> String {
    let total = rows.max(1) as f64;
    format!(
        "{} rows · long {:.0}% short {:.0}% flat {:.0}% · {}",
        rows,
        100.0 * counts[0] as f64 / total,
        100.0 * counts[1] as f64 / total,
        100.0 * counts[2] as f64 / total,
        crate::text::plural(gates, "risk gate")
    )
}
