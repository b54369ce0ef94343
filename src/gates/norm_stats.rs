//! # norm-stats (plan script 03_norm_stats_sanity)
//!
//! **What it does.** Checks the scaler statistics the production checkpoint carries: median and MAD
//! hold one number per feature, every number is finite, every MAD is above `mad-epsilon`; the scaler was
//! computed in the run that wrote the weights (`scaler.run_id` = `run.run_id` when both exist); the NaN
//! policy stored in the checkpoint is the code's. With `recompute = true` it recomputes median and MAD on
//! the slice and compares them in units of the stored MAD (`tolerance`).
//!
//! **Why is this bad?** `(x - median) / mad` with a zero MAD is ±inf or NaN for every row; statistics
//! from another run put every input off-centre by an amount nobody sees; a NaN policy the model was not
//! trained under feeds it values it never saw.
//!
//! **Example.** `scaler.mad[6]` (`vol_ratio`) is 0.0: `norm-stats-mad-too-small` naming the feature,
//! its index and the code line that lists it.

use super::{Context, Gate, Id, Needs, Profile, Report};
use crate::error::Result;
use crate::facts::{CheckpointFact, Facts};
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::scaler::numbers;

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
        DRIFT,
    ],
    needs: Needs {
        engine: false,
        slice: true,
        base: false,
    },
    profiles: &[Profile::PostTrain, Profile::PreBacktest, Profile::PreLive],
    run,
};

pub fn run(cx: &Context) -> Result<Report> {
    let facts = cx.facts;
    let ck = &facts.checkpoint;
    let keys = &cx.loaded.config.checkpoints.keys;
    let settings = &cx.loaded.config.gates.norm_stats;
    // The statistics are indexed like the checkpoint's features (the model's inputs).
    let names = facts.model_feature_names()?;
    let code_names = facts.feature_names()?;
    let feature_at = |i: usize| match code_names.iter().position(|n| *n == names[i]) {
        Some(k) => facts
            .code
            .columns
            .item(k)
            .with_label(format!("feature `{}`", names[i])),
        None => facts.code.columns.origin.clone(),
    };
    let mut out = Vec::new();

    // Missing median/MAD are feature-schema's `checkpoint-missing-fact`; here only what is present.
    let mut stats = Vec::new();
    for f in [&ck.median, &ck.mad] {
        let Some(v) = &f.value else { continue };
        match numbers(v) {
            Some(values) => stats.push((f, values)),
            None if v.is_object() => out.push(
                Finding::new(
                    &VALUES_UNAVAILABLE,
                    format!("`{}` is a tensor: its values are not read, so finiteness and MAD > 0 are unchecked", f.key),
                )
                .at(f.location.clone())
                .help("store the statistics as lists of floats in the metadata (docs/checkpoint-metadata.md)"),
            ),
            None => {} // a wrong type is feature-schema's `checkpoint-fact-invalid`
        }
    }
    for (f, values) in &stats {
        if values.len() != names.len() {
            out.push(
                Finding::new(
                    &LENGTH,
                    format!(
                        "`{}` holds {} numbers for {} features",
                        f.key,
                        values.len(),
                        names.len()
                    ),
                )
                .at(f.location.clone())
                .related(facts.code.columns.origin.clone())
                .help("recompute the scaler on the training rows of the current feature list"),
            );
            continue;
        }
        let bad: Vec<usize> = (0..values.len())
            .filter(|&i| !values[i].is_finite())
            .collect();
        if let Some(&i) = bad.first() {
            out.push(
                Finding::new(
                    &NOT_FINITE,
                    format!("`{}[{i}]` (`{}`) is {}", f.key, names[i], values[i]),
                )
                .at(f.location.clone())
                .related(feature_at(i))
                .note(format!(
                    "{} of {} values are not finite",
                    bad.len(),
                    values.len()
                ))
                .help("a NaN statistic usually means the feature was all-NaN in the training rows"),
            );
        }
    }
    if let Some((f, mad)) = stats.iter().find(|(f, _)| std::ptr::eq(*f, &ck.mad))
        && mad.len() == names.len()
    {
        let small: Vec<usize> = (0..mad.len())
            .filter(|&i| mad[i].is_finite() && mad[i] <= settings.mad_epsilon)
            .collect();
        for &i in &small {
            out.push(
                Finding::new(
                    &MAD_TOO_SMALL,
                    format!(
                        "the MAD of `{}` (index {i}) is {}, at or below mad-epsilon {:e}",
                        names[i], mad[i], settings.mad_epsilon
                    ),
                )
                .at(feature_at(i))
                .related(f.location.clone())
                .help("a constant feature carries no signal: drop it, or floor the MAD in the training script"),
            );
        }
    }

    out.extend(run_mismatch(facts, keys));
    out.extend(nan_policy(cx));

    let mut summary = format!("{} features", names.len());
    if settings.recompute {
        match cx.slice {
            None => summary.push_str(" · recompute: no [slice]"),
            Some(slice) => {
                if let (Some((_, median)), Some((mad_f, mad))) = (
                    stats.iter().find(|(f, _)| std::ptr::eq(*f, &ck.median)),
                    stats.iter().find(|(f, _)| std::ptr::eq(*f, &ck.mad)),
                ) && median.len() == names.len()
                    && mad.len() == names.len()
                {
                    let mut worst = 0.0f64;
                    for j in 0..names.len() {
                        let col: Vec<f64> = slice
                            .features
                            .column(j)
                            .into_iter()
                            .filter(|v| v.is_finite())
                            .collect();
                        let Some((m, d)) = median_mad(col) else {
                            out.push(
                                Finding::new(
                                    &RECOMPUTE_EMPTY,
                                    format!(
                                        "`{}` has no finite value in the {} rows of the slice: its statistics cannot be recomputed",
                                        names[j],
                                        slice.len()
                                    ),
                                )
                                .at(slice_location(slice))
                                .related(feature_at(j))
                                .help("the slice must hold the feature's raw values; an empty or all-NaN column compares nothing"),
                            );
                            continue;
                        };
                        if mad[j].is_nan() || mad[j] <= 0.0 {
                            continue;
                        }
                        let dm = (m - median[j]).abs() / mad[j];
                        let dd = (d - mad[j]).abs() / mad[j];
                        worst = worst.max(dm).max(dd);
                        if dm > settings.tolerance || dd > settings.tolerance {
                            out.push(
                                Finding::new(&DRIFT, format!(
                                    "`{}`: on the slice median {m:.6} and MAD {d:.6}; stored {:.6} and {:.6} ({:.2} and {:.2} MADs apart, tolerance {})",
                                    names[j], median[j], mad[j], dm, dd, settings.tolerance
                                ))
                                .at(feature_at(j))
                                .related(mad_f.location.clone())
                                .related(slice_location(slice))
                                .help("the data moved since training, or the scaler belongs to another data set: retrain or check the slice"),
                            );
                        }
                    }
                    summary.push_str(&format!(
                        " · recomputed on {} rows, within {worst:.2} MAD",
                        slice.len()
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

fn slice_location(slice: &crate::slice::Slice) -> crate::finding::Location {
    crate::finding::Location::file(&slice.path).with_label("slice")
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
