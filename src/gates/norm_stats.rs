//! # norm-stats (plan script 03_norm_stats_sanity)
//!
//! **What it does.** Checks the scaler statistics the production checkpoint carries, by the scaler's
//! kind (median and MAD for `robust`, mean and std for `standard`, min and max for `min-max`; nothing
//! for `identity`): both hold one number per feature, every number is finite, every spread (MAD, std,
//! max − min) is above `mad-epsilon`; the kind, factor, epsilon and clip the code declares under
//! `[scaler]` are the checkpoint's; the scaler was computed in the run that wrote the weights
//! (`scaler.run_id` = `run.run_id` when both exist); the NaN policy stored in the checkpoint is the
//! code's. With `recompute = true` it recomputes the kind's statistics on the slice in the same units
//! (median and raw MAD, mean and population std, min and max) and compares them in units of the stored
//! spread (`tolerance`). Without statistics it is skipped and says so (feature-schema reports them
//! missing).
//!
//! **Why is this bad?** `(x - median) / mad` with a zero MAD is ±inf or NaN for every row; statistics
//! from another run put every input off-centre by an amount nobody sees; a NaN policy the model was not
//! trained under feeds it values it never saw.
//!
//! **Example.** `scaler.mad[6]` (`vol_ratio`) is 0.0: `norm-stats-mad-too-small` naming the feature,
//! its index and the code line that lists it.

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::error::Result;
use crate::facts::{CheckpointFact, CheckpointFacts, CodeFacts, Facts};
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::scaler::{Kind, numbers};
use crate::slice::Slice;

const fn code(id: &'static str, severity: Severity, summary: &'static str) -> Code {
    Code {
        id,
        gate: "norm-stats",
        contract: ContractKind::Checkpoint,
        severity,
        summary,
    }
}

pub const LENGTH: Code = code(
    "norm-stats-length",
    Severity::Error,
    "the scaler's median or MAD does not hold one number per feature",
);
pub const NOT_FINITE: Code = code(
    "norm-stats-not-finite",
    Severity::Error,
    "a scaler median or MAD is NaN or infinite",
);
pub const MAD_TOO_SMALL: Code = code(
    "norm-stats-mad-too-small",
    Severity::Error,
    "a feature's MAD is at or below `mad-epsilon`: scaling divides by it",
);
pub const VALUES_UNAVAILABLE: Code = code(
    "norm-stats-values-unavailable",
    Severity::Warning,
    "the scaler statistics are stored as tensors, whose values a header-only read does not see",
);
pub const RUN_MISMATCH: Code = code(
    "norm-stats-run-mismatch",
    Severity::Error,
    "the scaler was computed in another training run than the weights",
);
pub const NAN_POLICY_MISMATCH: Code = code(
    "nan-policy-mismatch",
    Severity::Error,
    "the checkpoint was trained under another NaN policy than the code declares",
);
pub const RECOMPUTE_EMPTY: Code = code(
    "norm-stats-slice-empty",
    Severity::Error,
    "the slice has no finite value for a feature, so its statistics cannot be recomputed",
);
pub const SCALER_MISMATCH: Code = code(
    "scaler-mismatch",
    Severity::Error,
    "the scaler the code declares (kind, factor, epsilon, clip) is not the checkpoint's",
);
pub const DRIFT: Code = code(
    "norm-stats-drift",
    Severity::Error,
    "median or MAD recomputed on the slice differ from the stored ones by more than the tolerance",
);

pub const GATE: Gate = Gate {
    id: Id::NormStats,
    name: "norm-stats",
    plan_script: Some("03_norm_stats_sanity"),
    codes: &[
        LENGTH,
        NOT_FINITE,
        MAD_TOO_SMALL,
        VALUES_UNAVAILABLE,
        RUN_MISMATCH,
        NAN_POLICY_MISMATCH,
        RECOMPUTE_EMPTY,
        SCALER_MISMATCH,
        DRIFT,
    ],
    needs: Needs {
        slice: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PostTrain, Profile::PreBacktest, Profile::PreLive],
    run,
};

/// `f` is stored as a tensor, whose values a header-only read does not see.
fn values_unavailable(f: &CheckpointFact) -> Finding {
    Finding::new(
        &VALUES_UNAVAILABLE,
        format!(
            "`{}` is a tensor: its values are not read, so finiteness and MAD > 0 are unchecked",
            f.key
        ),
    )
    .at(f.location.clone())
    .help("store the statistics as lists of floats in the metadata (docs/checkpoint-metadata.md)")
}

/// `f` holds `len` numbers for `features` features.
fn length(f: &CheckpointFact, len: usize, features: usize, code: &CodeFacts) -> Finding {
    Finding::new(
        &LENGTH,
        format!("`{}` holds {len} numbers for {features} features", f.key),
    )
    .at(f.location.clone())
    .related(code.columns.origin.clone())
    .help("recompute the scaler on the training rows of the current feature list")
}

/// `f`'s value `i` (for input `i`) is not finite; `bad` of its values are not.
fn not_finite(
    inputs: &Inputs,
    f: &CheckpointFact,
    values: &[f64],
    i: usize,
    bad: usize,
) -> Finding {
    Finding::new(
        &NOT_FINITE,
        format!("`{}[{i}]` (`{}`) is {}", f.key, inputs.names[i], values[i]),
    )
    .at(f.location.clone())
    .related(inputs.feature_at(i))
    .note(format!("{bad} of {} values are not finite", values.len()))
    .help("a NaN statistic usually means the feature was all-NaN in the training rows")
}

/// The MAD of input `i` is `mad`, at or below `epsilon`.
fn mad_too_small(
    inputs: &Inputs,
    i: usize,
    mad: f64,
    epsilon: f64,
    mad_fact: &CheckpointFact,
) -> Finding {
    Finding::new(
        &MAD_TOO_SMALL,
        format!(
            "the {} of `{}` (index {i}) is {mad}, at or below mad-epsilon {epsilon:e}",
            spread_name(inputs.facts.checkpoint.kind),
            inputs.names[i]
        ),
    )
    .at(inputs.feature_at(i))
    .related(mad_fact.location.clone())
    .help("a constant feature carries no signal: drop it, or floor the MAD in the training script")
}

/// Input `j` has no finite value in the slice.
fn slice_empty(inputs: &Inputs, j: usize, slice: &Slice) -> Finding {
    Finding::new(
        &RECOMPUTE_EMPTY,
        format!(
            "`{}` has no finite value in the {} rows of the slice: its statistics cannot be recomputed",
            inputs.names[j],
            slice.len()
        ),
    )
    .at(slice_location(slice))
    .related(inputs.feature_at(j))
    .help("the slice must hold the feature's raw values; an empty or all-NaN column compares nothing")
}

/// An input's statistics on the slice are further from the stored ones than `tolerance` MADs.
fn drift(
    inputs: &Inputs,
    d: &Recomputed,
    tolerance: f64,
    mad: &CheckpointFact,
    slice: &Slice,
) -> Finding {
    let (j, (dm, dd)) = (d.input, d.apart());
    let (a, b) = inputs
        .facts
        .checkpoint
        .kind
        .stats()
        .unwrap_or(("median", "mad"));
    let b = if b == "mad" { "MAD" } else { b };
    let unit = spread_name(inputs.facts.checkpoint.kind);
    Finding::new(&DRIFT, format!(
        "`{}`: on the slice {a} {:.6} and {b} {:.6}; stored {:.6} and {:.6} ({:.2} and {:.2} stored {unit}s apart, tolerance {})",
        inputs.names[j], d.median, d.mad, d.stored_median, d.stored_mad, dm, dd, tolerance
    ))
    .at(inputs.feature_at(j))
    .related(mad.location.clone())
    .related(slice_location(slice))
    .help("the data moved since training, or the scaler belongs to another data set: retrain or check the slice")
}

/// The model's inputs, which index the statistics, and where the code lists each.
struct Inputs<'a> {
    facts: &'a Facts,
    /// The model's feature names (the checkpoint's order).
    names: Vec<String>,
    /// The code's feature names.
    code_names: Vec<String>,
}

impl Inputs<'_> {
    /// Where the code lists input `i`, else the code's list itself.
    fn feature_at(&self, i: usize) -> Location {
        let columns = &self.facts.code.columns;
        match self.code_names.iter().position(|n| *n == self.names[i]) {
            Some(k) => columns
                .item(k)
                .with_label(format!("feature `{}`", self.names[i])),
            None => columns.origin.clone(),
        }
    }
}

/// What the spread of a kind is called in messages.
fn spread_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Robust => "MAD",
        Kind::Standard => "std",
        Kind::MinMax | Kind::Identity => "range",
    }
}

/// One input's two statistics (the kind's: median and MAD, mean and std, min and max) recomputed on
/// the slice, beside the stored ones, and the stored spread they are measured in.
struct Recomputed {
    /// The input's index.
    input: usize,
    median: f64,
    mad: f64,
    stored_median: f64,
    stored_mad: f64,
    /// The stored spread (MAD, std, or max − min) distances are measured in.
    unit: f64,
}

impl Recomputed {
    /// How far apart the two statistics are, in stored spreads.
    fn apart(&self) -> (f64, f64) {
        (
            (self.median - self.stored_median).abs() / self.unit,
            (self.mad - self.stored_mad).abs() / self.unit,
        )
    }
}

/// A statistic the checkpoint stores as numbers, with its fact.
type Stat<'a> = (&'a CheckpointFact, Vec<f64>);

pub fn run(cx: &Context) -> Result<Report> {
    let facts = cx.facts;
    let ck = &facts.checkpoint;
    let settings = &cx.loaded.config.gates.norm_stats;
    // The statistics are indexed like the checkpoint's features (the model's inputs).
    let inputs = Inputs {
        facts,
        names: facts.model_feature_names()?,
        code_names: facts.feature_names()?,
    };
    let n = inputs.names.len();
    let mut out = Vec::new();
    out.extend(scaler_mismatches(facts));
    if let Some(why) = absent(ck) {
        out.extend(run_mismatch(facts, &cx.loaded.config.checkpoints.keys));
        out.extend(nan_policy(cx));
        return Ok(Report {
            findings: out,
            summary: String::new(),
            skipped: Some(why),
        });
    }
    let stats = stored_stats(ck, &mut out);
    for (f, values) in &stats {
        out.extend(check_values(&inputs, f, values));
    }
    out.extend(small_mads(&inputs, &stats, settings.mad_epsilon));
    out.extend(run_mismatch(facts, &cx.loaded.config.checkpoints.keys));
    out.extend(nan_policy(cx));
    let mut summary = format!("{n} features · {}", ck.kind.name());
    if ck.stats().is_none() {
        summary.push_str(": no statistics to check");
    }
    if settings.recompute {
        match cx.slice {
            None => summary.push_str(" · recompute: no [slice]"),
            Some(slice) => {
                let slice = slice.bars();
                if let Some(worst) = recompute(&inputs, &stats, slice, settings.tolerance, &mut out)
                {
                    summary.push_str(&format!(
                        " · recomputed on {} rows, within {worst:.2} {}",
                        slice.len(),
                        spread_name(ck.kind)
                    ));
                }
            }
        }
    }
    Ok(Report {
        findings: out,
        summary,
        skipped: None,
    })
}

/// The median and MAD the checkpoint stores as numbers. Missing ones are feature-schema's
/// `checkpoint-missing-fact`, a wrong type its `checkpoint-fact-invalid`; a tensor is a finding here.
fn stored_stats<'a>(ck: &'a CheckpointFacts, out: &mut Vec<Finding>) -> Vec<Stat<'a>> {
    let mut stats = Vec::new();
    let Some((a, b)) = ck.stats() else {
        return stats;
    };
    for f in [a, b] {
        let Some(v) = &f.value else { continue };
        match numbers(v) {
            Some(values) => stats.push((f, values)),
            None if v.is_object() => out.push(values_unavailable(f)),
            None => {} // a wrong type is feature-schema's `checkpoint-fact-invalid`
        }
    }
    stats
}

/// The stored statistic of fact `which`, when it is stored as numbers.
fn stat<'s, 'a>(stats: &'s [Stat<'a>], which: &CheckpointFact) -> Option<&'s Stat<'a>> {
    stats.iter().find(|(f, _)| std::ptr::eq(*f, which))
}

/// A statistic's length against the inputs, else its first value that is not finite.
fn check_values(inputs: &Inputs, f: &CheckpointFact, values: &[f64]) -> Option<Finding> {
    if values.len() != inputs.names.len() {
        return Some(length(
            f,
            values.len(),
            inputs.names.len(),
            &inputs.facts.code,
        ));
    }
    let bad: Vec<usize> = (0..values.len())
        .filter(|&i| !values[i].is_finite())
        .collect();
    let &i = bad.first()?;
    Some(not_finite(inputs, f, values, i, bad.len()))
}

/// The stored spread of each input (MAD, std, or max − min) and the fact it is read from (the MAD,
/// the std, the max); `None` unless the statistics hold one number per input.
fn spreads<'a>(inputs: &Inputs, stats: &[Stat<'a>]) -> Option<(&'a CheckpointFact, Vec<f64>)> {
    let ck = &inputs.facts.checkpoint;
    let (a, b) = ck.stats()?;
    let n = inputs.names.len();
    let (fact, second) = stat(stats, b)?;
    if second.len() != n {
        return None;
    }
    if ck.kind != Kind::MinMax {
        return Some((fact, second.clone()));
    }
    let (_, first) = stat(stats, a)?;
    (first.len() == n).then(|| {
        (
            *fact,
            first.iter().zip(second).map(|(lo, hi)| hi - lo).collect(),
        )
    })
}

/// A finding per input whose stored spread is finite and at or below `epsilon` (none unless the
/// statistics hold one number per input).
fn small_mads(inputs: &Inputs, stats: &[Stat], epsilon: f64) -> Vec<Finding> {
    let Some((f, mad)) = spreads(inputs, stats) else {
        return Vec::new();
    };
    (0..mad.len())
        .filter(|&i| mad[i].is_finite() && mad[i] <= epsilon)
        .map(|i| mad_too_small(inputs, i, mad[i], epsilon, f))
        .collect()
}

/// Median and MAD recomputed on the slice against the stored ones: a finding per input that drifted or
/// has no finite value. Returns the largest distance, in stored MADs; `None` (nothing compared) unless
/// both statistics hold one number per input.
fn recompute(
    inputs: &Inputs,
    stats: &[Stat],
    slice: &Slice,
    tolerance: f64,
    out: &mut Vec<Finding>,
) -> Option<f64> {
    let ck = &inputs.facts.checkpoint;
    let (a, b) = ck.stats()?;
    let ((_, median), (mad_fact, mad)) = (stat(stats, a)?, stat(stats, b)?);
    let (_, unit) = spreads(inputs, stats)?;
    if median.len() != inputs.names.len() {
        return None;
    }
    let mut worst = 0.0f64;
    for j in 0..inputs.names.len() {
        let col: Vec<f64> = slice
            .features
            .column(j)
            .into_iter()
            .filter(|v| v.is_finite())
            .collect();
        let Some((m, d)) = like_units(ck.kind, col) else {
            out.push(slice_empty(inputs, j, slice));
            continue;
        };
        if unit[j].is_nan() || unit[j] <= 0.0 {
            continue;
        }
        let r = Recomputed {
            input: j,
            median: m,
            mad: d,
            stored_median: median[j],
            stored_mad: mad[j],
            unit: unit[j],
        };
        let (dm, dd) = r.apart();
        worst = worst.max(dm).max(dd);
        if dm > tolerance || dd > tolerance {
            out.push(drift(inputs, &r, tolerance, mad_fact, slice));
        }
    }
    Some(worst)
}

/// Where findings about the slice point: its file.
fn slice_location(slice: &Slice) -> Location {
    Location::file(&slice.path).with_label("slice")
}

fn run_mismatch(facts: &Facts, keys: &crate::config::CheckpointKeys) -> Option<Finding> {
    let scaler = CheckpointFact::lookup(&facts.production, "scaler-run-id", &keys.scaler_run_id);
    let run = CheckpointFact::lookup(&facts.production, "run-id", &keys.run_id);
    let (a, b) = (scaler.value.as_ref()?, run.value.as_ref()?);
    (a != b).then(|| {
        Finding::new(
            &RUN_MISMATCH,
            format!("`{}` is {a}, but `{}` is {b}", scaler.key, run.key),
        )
        .at(scaler.location.clone())
        .related(run.location.clone())
        .help("save the scaler fitted in the same run as the weights; a scaler from another run shifts every input")
    })
}

fn nan_policy(cx: &Context) -> Option<Finding> {
    let keys = &cx.loaded.config.checkpoints.keys;
    let stored = CheckpointFact::lookup(&cx.facts.production, "nan-policy", &keys.nan_policy);
    let code = &cx.facts.code.nan_policy;
    // A policy the code does not declare has nothing to compare with the checkpoint's.
    cx.loaded.config.features.nan_policy.as_ref()?;
    let (s, c) = (stored.value.as_ref()?, &code.value);
    (s != c).then(|| {
        Finding::new(
            &NAN_POLICY_MISMATCH,
            format!("the code declares NaN policy {c}, the checkpoint was trained under {s}"),
        )
        .at(code.origin.clone())
        .related(stored.location.clone())
        .help("handle NaN inputs as the model was trained, or retrain under the new policy")
    })
}

/// The kind's two statistics of non-empty data, in the units the checkpoint stores them.
fn like_units(kind: Kind, v: Vec<f64>) -> Option<(f64, f64)> {
    match kind {
        Kind::Robust | Kind::Identity => median_mad(v),
        Kind::Standard => mean_std(&v),
        Kind::MinMax => {
            let lo = v.iter().copied().reduce(f64::min)?;
            Some((lo, v.iter().copied().fold(lo, f64::max)))
        }
    }
}

/// Mean and population standard deviation (ddof 0, as scikit-learn's StandardScaler) of non-empty data.
pub fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// Why the gate cannot check the statistics: the checkpoint states none for its kind.
fn absent(ck: &CheckpointFacts) -> Option<String> {
    if let Some(kind) = &ck.unknown_kind {
        return Some(format!(
            "the checkpoint's scaler kind `{kind}` is not one plumbline knows (feature-schema reports it)"
        ));
    }
    let (a, b) = ck.stats()?;
    let missing: Vec<String> = [a, b]
        .iter()
        .filter(|f| f.value.is_none())
        .map(|f| format!("`{}`", f.key))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the checkpoint states no {} (feature-schema reports it missing)",
            missing.join(" or ")
        )
    })
}

/// The scaler the code declares against the checkpoint's: each of kind, factor, epsilon and clip that
/// both state and that differ.
fn scaler_mismatches(facts: &Facts) -> Vec<Finding> {
    let (ck, code) = (&facts.checkpoint, &facts.code.scaler);
    // Each side as words: `none` for a null (not stated in code), the stated text for a kind
    // plumbline does not know.
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => Some("none".to_owned()),
        _ => v
            .as_str()
            .map(|s| Kind::parse(s).map_or(s.to_owned(), |k| k.name().to_owned())),
    };
    let num = |v: &serde_json::Value| match v {
        serde_json::Value::Null => Some("none".to_owned()),
        _ => v.as_f64().map(|x| x.to_string()),
    };
    let clip = |v: &serde_json::Value| match v {
        serde_json::Value::Null => Some("none".to_owned()),
        _ => crate::scaler::clip(v).map(|(a, b)| format!("[{a}, {b}]")),
    };
    type Norm = fn(&serde_json::Value) -> Option<String>;
    let pairs: [(&CheckpointFact, &Option<crate::source::Fact>, &str, Norm); 4] = [
        (&ck.scaler_kind, &code.kind, "kind", kind),
        (&ck.factor, &code.factor, "factor", num),
        (&ck.epsilon, &code.epsilon, "epsilon", num),
        (&ck.clip, &code.clip, "clip", clip),
    ];
    pairs
        .into_iter()
        .filter_map(|(f, c, what, norm)| {
            let (c, stored) = (c.as_ref()?, f.value.as_ref()?);
            let (a, b) = (norm(&c.value)?, norm(stored)?);
            (a != b).then(|| {
                Finding::new(
                    &SCALER_MISMATCH,
                    format!("the code declares scaler {what} {a}, the checkpoint states {b}"),
                )
                .at(c.origin.clone())
                .related(f.location.clone())
                .help("scale at inference as the model was trained: declare the checkpoint's value, or retrain")
            })
        })
        .collect()
}

/// Median and MAD (median absolute deviation from the median, unscaled) of non-empty data.
pub fn median_mad(mut v: Vec<f64>) -> Option<(f64, f64)> {
    let m = median(&mut v)?;
    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    Some((m, median(&mut dev)?))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_match_numpy() {
        // numpy: np.median([1, 2, 4, 8]) = 3.0; np.median(|x - 3|) = median([2, 1, 1, 5]) = 1.5
        assert_eq!(median_mad(vec![8.0, 1.0, 4.0, 2.0]), Some((3.0, 1.5)));
        assert_eq!(median_mad(vec![5.0]), Some((5.0, 0.0)));
        assert_eq!(median_mad(vec![]), None);
    }
}
