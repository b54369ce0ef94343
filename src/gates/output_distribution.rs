//! # output-distribution (plan script 05_output_distribution)
//!
//! **What it does.** Runs the production model on every row of the slice and checks, per head of the
//! contract: the model outputs it; every value is finite; no output has collapsed (standard deviation
//! above `collapse-epsilon`); for a `softmax` head (whose outputs are logits: the gate applies softmax)
//! each class's share of the predictions
//! (argmax) lies within [`class-share-min`, `class-share-max`]; and, with a stored `baseline`, the
//! distribution of each output has not drifted: population stability index (PSI) and Jensen–Shannon
//! divergence (base 2) over the baseline's decile bins stay under `psi-threshold` and `js-threshold`.
//! `plumbline baseline` writes the baseline from the current model and slice.
//!
//! **Why is this bad?** A model that predicts "flat" for every row passes every shape check and never
//! trades; one whose outputs moved after a retrain or a data change trades differently than the backtest
//! that approved it.
//!
//! **Example.** A checkpoint whose direction layer has zero weights predicts class 2 on 100% of the
//! slice: `output-collapsed` for each class, `output-class-share` (outside [5%, 90%]) and `output-drift`
//! with PSI 5.3 for the class shares.

use super::{Context, Gate, Id, Model, Needs, Profile, Report};
use crate::contract::Head;
use crate::distribution::{
    Baseline, Evaluation, HeadValues, bin_shares, class_shares, evaluate, js, psi, read_baseline,
};
use crate::engine::Engine;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::slice::Slice;

const fn code(id: &'static str, severity: Severity, summary: &'static str) -> Code {
    Code {
        id,
        gate: "output-distribution",
        contract: ContractKind::HeadMapping,
        severity,
        summary,
    }
}

pub const MODEL_UNAVAILABLE: Code = code(
    "output-model-unavailable",
    Severity::Error,
    "the model cannot be built (when forward-contract is not in the run) or cannot be run on the slice",
);
pub const COLLAPSED: Code = code(
    "output-collapsed",
    Severity::Error,
    "a head output is (nearly) constant over the slice",
);
pub const NOT_FINITE: Code = code(
    "output-not-finite",
    Severity::Error,
    "a head's output is NaN or infinite on rows of the slice",
);
pub const HEAD_MISSING: Code = code(
    "output-head-missing",
    Severity::Error,
    "the model does not output a head of the contract",
);
pub const CLASS_SHARE: Code = code(
    "output-class-share",
    Severity::Error,
    "a class's share of the predictions on the slice is outside the configured bounds",
);
pub const DRIFT: Code = code(
    "output-drift",
    Severity::Warning,
    "a head output's distribution drifted from the stored baseline (PSI or Jensen-Shannon over threshold)",
);
pub const BASELINE_STALE: Code = code(
    "output-baseline-stale",
    Severity::Warning,
    "the baseline was written for another model version or another slice",
);

pub const GATE: Gate = Gate {
    id: Id::OutputDistribution,
    name: "output-distribution",
    plan_script: Some("05_output_distribution"),
    codes: &[
        MODEL_UNAVAILABLE,
        HEAD_MISSING,
        NOT_FINITE,
        COLLAPSED,
        CLASS_SHARE,
        DRIFT,
        BASELINE_STALE,
    ],
    needs: Needs {
        engine: true,
        slice: true,
        base: false,
    },
    profiles: &[Profile::PreLive],
    run,
};

fn std_dev(v: &[f64]) -> f64 {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

fn unit_name(head: &Head, j: usize) -> String {
    if head.kind == "softmax" {
        format!("`{}` class {j}", head.name)
    } else if head.shape.iter().product::<u64>() == 1 {
        format!("`{}`", head.name)
    } else {
        format!("`{}`[{j}]", head.name)
    }
}

pub fn run(cx: &Context) -> Result<Report> {
    let Some(slice) = cx.slice else {
        return Ok(Report::skipped(
            "not configured: no `[slice]` in plumbline.toml",
        ));
    };
    let engine: &dyn Engine = match cx.model {
        Model::Ready(e) => e.as_ref(),
        Model::Failed(_) if cx.runs(Id::ForwardContract) => {
            return Ok(Report::skipped(
                "the model cannot be built (forward-contract says why)",
            ));
        }
        Model::Failed(msg) => {
            return Ok(Report::stopped(
                Finding::new(&MODEL_UNAVAILABLE, msg.clone()).at(cx.production_location()),
                "model not built",
            ));
        }
        Model::NotNeeded => unreachable!("check builds the model for gates that need it"),
    };
    if cx.facts.scaler().is_err() && cx.runs(Id::ForwardContract) {
        return Ok(Report::skipped(
            "the slice cannot be scaled (forward-contract says why)",
        ));
    }
    let s = &cx.loaded.config.gates.output_distribution;
    let Evaluation {
        heads: values,
        missing,
    } = match cx
        .slice_outputs(engine, slice)
        .and_then(|out| Ok(evaluate(out, cx.facts.heads()?.to_vec())))
    {
        Ok(v) => v,
        Err(e) => {
            return Ok(Report::stopped(
                Finding::new(&MODEL_UNAVAILABLE, e.to_string()).at(cx.production_location()),
                "model does not run",
            ));
        }
    };
    let here = cx.production_location();
    let slice_at = Location::file(&slice.path).with_label("slice");
    let mut out = Vec::new();
    for h in &missing {
        out.push(
            Finding::new(
                &HEAD_MISSING,
                format!("the model does not output head `{}` of the contract", h.name),
            )
            .at(head_location(cx, h))
            .related(here.clone())
            .help("name the model's heads as the code's head map does (`arch.heads` in the checkpoint)"),
        );
    }
    let mut finite = Vec::new();
    for hv in &values {
        let head_at = head_location(cx, &hv.head);
        let bad = hv.values.non_finite_rows();
        if let Some(&r) = bad.first() {
            // Shares, spreads and drift of NaN are noise: one finding per head, nothing else about it.
            out.push(
                Finding::new(
                    &NOT_FINITE,
                    format!(
                        "`{}` is NaN or infinite on {} of {} slice rows (first: {}: {:?})",
                        hv.head.name,
                        bad.len(),
                        slice.len(),
                        slice.key(r),
                        hv.values.row(r)
                    ),
                )
                .at(slice.location(r))
                .related(head_at.clone())
                .related(here.clone())
                .help("a non-finite input after scaling (a zero MAD, an unhandled NaN) or overflowing weights"),
            );
            continue;
        }
        finite.push(hv);
        for j in 0..hv.values.cols {
            let col = hv.values.column(j);
            let sd = std_dev(&col);
            if sd.is_nan() || sd <= s.collapse_epsilon {
                out.push(
                    Finding::new(
                        &COLLAPSED,
                        format!("{} is constant over {} slice rows (standard deviation at or below collapse-epsilon {:e})", unit_name(&hv.head, j), slice.len(), s.collapse_epsilon),
                    )
                    .note(format!("standard deviation {sd:e}"))
                    .at(head_at.clone())
                    .related(here.clone())
                    .related(slice_at.clone())
                    .help("the model predicts the same value for every row: check the scaler (a huge MAD flattens inputs) and the training run"),
                );
            }
        }
        if hv.head.kind == "softmax" {
            let p = &hv.values;
            for (k, share) in class_shares(p).iter().enumerate() {
                if *share < s.class_share_min || *share > s.class_share_max {
                    out.push(
                        Finding::new(
                            &CLASS_SHARE,
                            format!(
                                "{} is predicted on {:.1}% of {} slice rows, outside [{:.0}%, {:.0}%]",
                                unit_name(&hv.head, k),
                                share * 100.0,
                                slice.len(),
                                s.class_share_min * 100.0,
                                s.class_share_max * 100.0
                            ),
                        )
                        .at(head_at.clone())
                        .related(slice_at.clone())
                        .help("a class the model (almost) never or always predicts: check the labels' thresholds and the class balance of the training run; bounds are `gates.output-distribution.class-share-min/max`"),
                    );
                }
            }
        }
    }
    let mut summary = format!("{} heads on {} rows", values.len(), slice.len());
    if let Some(rel) = &s.baseline {
        let display = cx.loaded.display(rel);
        let (base, text) = read_baseline(cx.loaded, rel)?;
        let (worst_psi, fs) = drift(cx, &base, &finite, &display, &text, slice);
        out.extend(fs);
        summary.push_str(&format!(" · PSI ≤ {worst_psi:.3}"));
    }
    Ok(Report {
        findings: out,
        summary,
        skipped: None,
    })
}

fn drift(
    cx: &Context,
    base: &Baseline,
    values: &[&HeadValues],
    display: &str,
    text: &str,
    slice: &Slice,
) -> (f64, Vec<Finding>) {
    let s = &cx.loaded.config.gates.output_distribution;
    let mut out = Vec::new();
    let at_key = |key: &str| {
        crate::source::keypath::json_key(display, text, key)
            .map(|f| f.origin)
            .unwrap_or_else(|_| Location::file(display))
    };
    let version = cx.contract.map(|c| c.model_version.as_str());
    let slice_sha = s
        .baseline
        .as_ref()
        .and(cx.loaded.config.slice.as_ref())
        .and_then(|sec| crate::checkpoint::sha256_file(&cx.loaded.resolve(&sec.features)).ok());
    if version.is_some_and(|v| v != base.model_version)
        || base.slice.rows != slice.len()
        || slice_sha.is_some_and(|h| h != base.slice.sha256)
    {
        out.push(
            Finding::new(
                &BASELINE_STALE,
                format!(
                    "the baseline was written for model v{} on another slice or model ({} rows, {}); this is model v{} on {} rows",
                    base.model_version,
                    base.slice.rows,
                    base.slice.path,
                    version.unwrap_or("?"),
                    slice.len()
                ),
            )
            .at(at_key("model-version"))
            .help("review the drift below, then run `plumbline baseline` and commit the result"),
        );
    }
    let stale = |message: String, key: &str| {
        Finding::new(&BASELINE_STALE, message)
            .at(at_key(key))
            .help("run `plumbline baseline` and commit the result")
    };
    let contract_heads = cx.facts.heads().map(<[Head]>::to_vec).unwrap_or_default();
    for name in base.heads.keys() {
        if !contract_heads.iter().any(|h| &h.name == name) {
            out.push(stale(
                format!("the baseline has head `{name}`, which the contract does not"),
                &format!("heads.{name}"),
            ));
        }
    }
    let mut worst = 0.0f64;
    for hv in values {
        let Some(hb) = base.heads.get(&hv.head.name) else {
            out.push(
                stale(
                    format!("head `{}` is not in the baseline", hv.head.name),
                    "heads",
                )
                .related(head_location(cx, &hv.head)),
            );
            continue;
        };
        if hb.kind != hv.head.kind {
            out.push(
                Finding::new(
                    &BASELINE_STALE,
                    format!(
                        "head `{}` is {} in the baseline and {} now: its distributions are not comparable",
                        hv.head.name, hb.kind, hv.head.kind
                    ),
                )
                .at(at_key(&format!("heads.{}.kind", hv.head.name)))
                .related(head_location(cx, &hv.head)),
            );
            continue;
        }
        let classes = if hv.head.kind == "softmax" {
            hv.values.cols
        } else {
            0
        };
        if hb.units.len() != hv.values.cols || hb.class_shares.len() != classes {
            out.push(
                stale(
                    format!(
                        "head `{}` has {} outputs now and {} ({} class shares) in the baseline",
                        hv.head.name,
                        hv.values.cols,
                        hb.units.len(),
                        hb.class_shares.len()
                    ),
                    &format!("heads.{}", hv.head.name),
                )
                .related(head_location(cx, &hv.head)),
            );
            continue;
        }
        let mut dists: Vec<(String, String, Vec<f64>, Vec<f64>)> = Vec::new();
        if !hb.class_shares.is_empty() {
            dists.push((
                format!("`{}` class shares", hv.head.name),
                format!("heads.{}.class-shares", hv.head.name),
                hb.class_shares.clone(),
                class_shares(&hv.values),
            ));
        }
        for (j, h) in hb.units.iter().enumerate() {
            dists.push((
                unit_name(&hv.head, j),
                format!("heads.{}.units.{j}", hv.head.name),
                h.shares.clone(),
                bin_shares(&h.edges, &hv.values.column(j)),
            ));
        }
        for (what, key, expected, actual) in dists {
            let p = psi(&expected, &actual);
            let j = js(&expected, &actual);
            worst = worst.max(p);
            if p > s.psi_threshold || j > s.js_threshold {
                out.push(
                    Finding::new(
                        &DRIFT,
                        format!("{what} drifted from the baseline: PSI {p:.3} (threshold {}), Jensen-Shannon {j:.3} (threshold {})", s.psi_threshold, s.js_threshold),
                    )
                    .at(at_key(&key))
                    .related(head_location(cx, &hv.head))
                    .note(format!("baseline shares: {}", fmt_shares(&expected)))
                    .note(format!("now:             {}", fmt_shares(&actual)))
                    .help("if the change is intended (a retrain), run `plumbline baseline` and commit the new baseline"),
                );
            }
        }
    }
    (worst, out)
}

fn fmt_shares(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{:.3}", x))
        .collect::<Vec<_>>()
        .join(" ")
}

fn head_location(cx: &Context, head: &Head) -> Location {
    cx.facts
        .code
        .heads
        .item(head.index as usize)
        .with_label(format!("head `{}`", head.name))
}
