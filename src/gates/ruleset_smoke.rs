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

use super::{Context, Gate, Model, Report};
use crate::engine::Outputs;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::ruleset::{self, Read, RowInputs, Ruleset, Side};
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
    name: "ruleset-smoke",
    plan_script: Some("06_ruleset_execution_smoke"),
    codes: &[
        INVALID,
        NAN_SIZE,
        SIZE_OUT_OF_BOUNDS,
        ACTION_UNUSED,
        GATE_NEVER_FIRES,
    ],
    needs_engine: true,
    run,
};

/// One slice row (or a synthetic one) as interpreter input: raw head outputs and raw features.
pub struct SliceRow<'a> {
    pub outputs: &'a Outputs,
    pub slice: &'a Slice,
    pub names: &'a [String],
    pub row: usize,
}

impl RowInputs for SliceRow<'_> {
    fn head(&self, name: &str) -> Option<Vec<f64>> {
        self.outputs.get(name).map(|m| m.row(self.row).to_vec())
    }
    fn feature(&self, name: &str) -> Option<f64> {
        let j = self.names.iter().position(|n| n == name)?;
        Some(self.slice.features.row(self.row)[j])
    }
}

/// A row with one value overridden.
pub struct Overridden<'a> {
    pub base: &'a dyn RowInputs,
    pub head: Option<(String, Vec<f64>)>,
    pub feature: Option<(String, f64)>,
}

impl RowInputs for Overridden<'_> {
    fn head(&self, name: &str) -> Option<Vec<f64>> {
        match &self.head {
            Some((h, v)) if h == name => Some(v.clone()),
            _ => self.base.head(name),
        }
    }
    fn feature(&self, name: &str) -> Option<f64> {
        match &self.feature {
            Some((f, v)) if f == name => Some(*v),
            _ => self.base.feature(name),
        }
    }
}

/// Names of the contract's softmax heads (their outputs are logits).
pub fn softmax_heads(cx: &Context) -> Vec<String> {
    crate::contract::heads(&cx.facts.code.heads)
        .map(|hs| {
            hs.into_iter()
                .filter(|h| h.kind == "softmax")
                .map(|h| h.name)
                .collect()
        })
        .unwrap_or_default()
}

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

/// One synthetic input per risk-gate bound: `base` with the gate's input pushed past the bound, within
/// what the value can be (a softmax head's probability goes to 1 or 0 through its logits).
pub struct Extreme<'a> {
    pub gate: usize,
    /// `true` for `block-above`, `false` for `block-below`.
    pub up: bool,
    /// What was set, for messages (`feature `vol_20` = 10.0095`).
    pub what: String,
    pub row: Overridden<'a>,
}

pub fn extremes<'a>(
    rs: &Ruleset,
    base: &'a dyn RowInputs,
    softmax: &[&str],
    head_width: impl Fn(&str) -> Option<usize>,
) -> Vec<Extreme<'a>> {
    let mut out = Vec::new();
    for (i, g) in rs.risk_gates.iter().enumerate() {
        for (bound, up) in [(g.block_above, true), (g.block_below, false)] {
            let Some(bound) = bound else { continue };
            let pushed = if up {
                bound + 10.0 * bound.abs().max(1.0)
            } else {
                bound - 10.0 * bound.abs().max(1.0)
            };
            let (what, head, feature) = match g.read() {
                Some(Read::Feature(f)) => {
                    (format!("feature `{f}` = {pushed}"), None, Some((f, pushed)))
                }
                Some(Read::Head(h, k)) if softmax.contains(&h.as_str()) => {
                    let Some(w) = head_width(&h) else { continue };
                    // All mass on class k (p → 1) or none on it (p → 0).
                    let logits: Vec<f64> = (0..w)
                        .map(|j| if (j == k) == up { 50.0 } else { -50.0 })
                        .collect();
                    (
                        format!("p({h}.{k}) = {}", if up { "1" } else { "0" }),
                        Some((h, logits)),
                        None,
                    )
                }
                Some(Read::Head(h, k)) => {
                    let Some(w) = head_width(&h) else { continue };
                    let mut v = base.head(&h).unwrap_or_else(|| vec![0.0; w]);
                    if k < v.len() {
                        v[k] = pushed;
                    }
                    (format!("{h}[{k}] = {pushed}"), Some((h, v)), None)
                }
                None => continue,
            };
            out.push(Extreme {
                gate: i,
                up,
                what,
                row: Overridden {
                    base,
                    head,
                    feature,
                },
            });
        }
    }
    out
}

/// For each risk gate: does it block, and turn the action flat, on an input pushed past its bound?
/// Returns the gates that do not, with why.
pub fn extreme_failures(
    rs: &Ruleset,
    base: &dyn RowInputs,
    softmax: &[&str],
    head_width: impl Fn(&str) -> Option<usize>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for e in extremes(rs, base, softmax, head_width) {
        let d = ruleset::interpret(rs, &e.row, softmax);
        if !d.blocked[e.gate] || d.side != Side::Flat {
            out.push((e.gate, format!("risk gate `{}` does not block with {} (its bound cannot be crossed, or it does not turn the action flat)", rs.risk_gates[e.gate].name, e.what)));
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
    let soft_owned = softmax_heads(cx);
    let soft: Vec<&str> = soft_owned.iter().map(String::as_str).collect();
    let heads = crate::contract::heads(&cx.facts.code.heads)?;
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
