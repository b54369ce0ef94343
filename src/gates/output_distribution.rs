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

use super::{Context, Gate, Id, Model, Needs, Parts, Profile, Report};
use crate::config::OutputDistributionSettings;
use crate::contract::Head;
use crate::distribution::{
    Baseline, Evaluation, HeadBaseline, HeadValues, bin_shares, class_shares, evaluate, js, psi,
    read_baseline,
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
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
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

/// The model cannot be built or run: `message` says why.
fn model_unavailable(cx: &Context, message: String) -> Finding {
    Finding::new(&MODEL_UNAVAILABLE, message).at(cx.production_location())
}

/// A contract head the model does not output.
fn head_missing(cx: &Context, h: &Head, here: &Location) -> Finding {
    Finding::new(
        &HEAD_MISSING,
        format!(
            "the model does not output head `{}` of the contract",
            h.name
        ),
    )
    .at(head_location(cx, h))
    .related(here.clone())
    .help("name the model's heads as the code's head map does (`arch.heads` in the checkpoint)")
}

/// A head's output is NaN or infinite on slice row `r`, the first of `count` such rows.
fn not_finite(on: &OnSlice, hv: &HeadValues, r: usize, count: usize) -> Finding {
    Finding::new(
        &NOT_FINITE,
        format!(
            "`{}` is NaN or infinite on {count} of {} slice rows (first: {}: {:?})",
            hv.head.name,
            on.slice.len(),
            on.slice.key(r),
            hv.values.row(r)
        ),
    )
    .at(on.slice.location(r))
    .related(head_location(on.cx, &hv.head))
    .related(on.here.clone())
    .help("a non-finite input after scaling (a zero MAD, an unhandled NaN) or overflowing weights")
}

/// Output unit `j` of a head is (nearly) constant over the slice: standard deviation `sd`.
fn collapsed(on: &OnSlice, hv: &HeadValues, j: usize, sd: f64) -> Finding {
    Finding::new(
        &COLLAPSED,
        format!("{} is constant over {} slice rows (standard deviation at or below collapse-epsilon {:e})", unit_name(&hv.head, j), on.slice.len(), on.settings.collapse_epsilon),
    )
    .note(format!("standard deviation {sd:e}"))
    .at(head_location(on.cx, &hv.head))
    .related(on.here.clone())
    .related(on.slice_at.clone())
    .help("the model predicts the same value for every row: check the scaler (a huge MAD flattens inputs) and the training run")
}

/// Class `k` of a softmax head is predicted on a `share` of the slice outside the configured bounds.
fn class_share(on: &OnSlice, hv: &HeadValues, k: usize, share: f64) -> Finding {
    let s = on.settings;
    Finding::new(
        &CLASS_SHARE,
        format!(
            "{} is predicted on {:.1}% of {} slice rows, outside [{:.0}%, {:.0}%]",
            unit_name(&hv.head, k),
            share * 100.0,
            on.slice.len(),
            s.class_share_min * 100.0,
            s.class_share_max * 100.0
        ),
    )
    .at(head_location(on.cx, &hv.head))
    .related(on.slice_at.clone())
    .help("a class the model (almost) never or always predicts: check the labels' thresholds and the class balance of the training run; bounds are `gates.output-distribution.class-share-min/max`")
}

/// The baseline was written for another model version or another slice.
fn baseline_for_other(file: &BaselineFile, key: &str, changes: &[(&str, String)]) -> Finding {
    let what: Vec<&str> = changes.iter().map(|(_, w)| w.as_str()).collect();
    Finding::new(
        &BASELINE_STALE,
        format!(
            "the baseline was written for another model or slice ({}): {}",
            file.base.slice.path,
            what.join("; ")
        ),
    )
    .at(file.at(key))
    .help("review the drift below, then run `plumbline baseline` and commit the result")
}

/// The baseline's heads differ from the contract's, at `key` of the baseline.
fn stale(file: &BaselineFile, message: String, key: &str) -> Finding {
    Finding::new(&BASELINE_STALE, message)
        .at(file.at(key))
        .help("run `plumbline baseline` and commit the result")
}

/// A head's kind changed since the baseline, so its distributions are not comparable.
fn kind_changed(cx: &Context, file: &BaselineFile, hv: &HeadValues, hb: &HeadBaseline) -> Finding {
    Finding::new(
        &BASELINE_STALE,
        format!(
            "head `{}` is {} in the baseline and {} now: its distributions are not comparable",
            hv.head.name, hb.kind, hv.head.kind
        ),
    )
    .at(file.at(&format!("heads.{}.kind", hv.head.name)))
    .related(head_location(cx, &hv.head))
}

/// A distribution of a head drifted from the baseline: PSI `p`, Jensen-Shannon `j`.
fn drifted(
    cx: &Context,
    file: &BaselineFile,
    hv: &HeadValues,
    d: &Distribution,
    (p, j): (f64, f64),
) -> Finding {
    let s = &cx.loaded.config.gates.output_distribution;
    Finding::new(
        &DRIFT,
        format!("{} drifted from the baseline: PSI {p:.3} (threshold {}), Jensen-Shannon {j:.3} (threshold {})", d.what, s.psi_threshold, s.js_threshold),
    )
    .at(file.at(&d.key))
    .related(head_location(cx, &hv.head))
    .note(format!("baseline shares: {}", fmt_shares(d.expected)))
    .note(format!("now:             {}", fmt_shares(&d.actual)))
    .help("if the change is intended (a retrain), run `plumbline baseline` and commit the new baseline")
}

/// The model's per-head values on the slice, the settings they are checked with and where findings
/// about them point.
struct OnSlice<'a> {
    cx: &'a Context<'a>,
    settings: &'a OutputDistributionSettings,
    slice: &'a Slice,
    /// The production checkpoint.
    here: Location,
    /// The slice file.
    slice_at: Location,
}

/// The stored baseline and its file, which drift findings point into.
struct BaselineFile<'a> {
    base: &'a Baseline,
    display: &'a str,
    text: &'a str,
}

impl BaselineFile<'_> {
    /// The line of `key` in the baseline file, else the file.
    fn at(&self, key: &str) -> Location {
        crate::keypath::json_key(self.display, self.text, key)
            .map(|f| f.location)
            .unwrap_or_else(|_| Location::file(self.display))
    }
}

/// One distribution of a head compared with the baseline: what it is, its baseline key, the baseline's
/// shares and the shares now.
struct Distribution<'a> {
    what: String,
    key: String,
    expected: &'a [f64],
    actual: Vec<f64>,
}

pub fn run(cx: &Context) -> Result<Report> {
    let (slice, engine) = match ready(cx) {
        Ok(v) => v,
        Err(report) => return Ok(report),
    };
    let settings = &cx.loaded.config.gates.output_distribution;
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
                model_unavailable(cx, e.to_string()),
                "model does not run",
            ));
        }
    };
    let on = OnSlice {
        cx,
        settings,
        slice,
        here: cx.production_location(),
        slice_at: Location::file(&slice.path).with_label("slice"),
    };
    let mut out: Vec<Finding> = missing
        .iter()
        .map(|h| head_missing(cx, h, &on.here))
        .collect();
    let mut finite = Vec::new();
    for hv in &values {
        let bad = hv.values.non_finite_rows();
        if let Some(&r) = bad.first() {
            // Shares, spreads and drift of NaN are noise: one finding per head, nothing else about it.
            out.push(not_finite(&on, hv, r, bad.len()));
            continue;
        }
        finite.push(hv);
        out.extend(collapsed_units(&on, hv));
        out.extend(class_shares_outside(&on, hv));
    }
    let mut summary = format!(
        "{} on {}",
        crate::text::plural(values.len(), "head"),
        slice.describe()
    );
    if let Some(rel) = &settings.baseline {
        let display = cx.loaded.display(rel);
        let (base, text) = read_baseline(cx.loaded, rel)?;
        let file = BaselineFile {
            base: &base,
            display: &display,
            text: &text,
        };
        let (worst_psi, fs) = drift(cx, &file, &finite, slice);
        out.extend(fs);
        summary.push_str(&format!(" · PSI ≤ {worst_psi:.3}"));
    }
    Ok(Report {
        findings: out,
        summary,
        skipped: None,
    })
}

/// The slice and the model to run on it, or the report that skips or stops the gate.
fn ready<'a>(cx: &'a Context) -> std::result::Result<(&'a Slice, &'a dyn Engine), Report> {
    let Some(slice) = cx.slice else {
        return Err(Report::skipped(cx.not_configured("`[slice]`")));
    };
    let engine: &dyn Engine = match cx.model {
        Model::Ready(e) => e.as_ref(),
        Model::Failed(_) if cx.runs(Id::ForwardContract) => {
            return Err(Report::skipped(
                "the model cannot be built (forward-contract says why)",
            ));
        }
        Model::Failed(msg) => {
            return Err(Report::stopped(
                model_unavailable(cx, msg.clone()),
                "model not built",
            ));
        }
        Model::NotNeeded => unreachable!("check builds the model for gates that need it"),
    };
    if cx.facts.scaler().is_err() && cx.runs(Id::ForwardContract) {
        return Err(Report::skipped(
            "the slice cannot be scaled (forward-contract says why)",
        ));
    }
    Ok((slice, engine))
}

/// One finding per output unit of a head whose standard deviation over the slice is at or below
/// collapse-epsilon (or NaN).
fn collapsed_units(on: &OnSlice, hv: &HeadValues) -> Vec<Finding> {
    (0..hv.values.cols)
        .filter_map(|j| {
            let sd = std_dev(&hv.values.column(j));
            (sd.is_nan() || sd <= on.settings.collapse_epsilon).then(|| collapsed(on, hv, j, sd))
        })
        .collect()
}

/// One finding per class of a softmax head whose share of the predictions is outside the bounds.
fn class_shares_outside(on: &OnSlice, hv: &HeadValues) -> Vec<Finding> {
    if hv.head.kind != "softmax" {
        return Vec::new();
    }
    let s = on.settings;
    class_shares(&hv.values)
        .into_iter()
        .enumerate()
        .filter(|&(_, share)| share < s.class_share_min || share > s.class_share_max)
        .map(|(k, share)| class_share(on, hv, k, share))
        .collect()
}

/// The largest PSI over the heads' distributions, and findings on a stale baseline and on drift.
fn drift(
    cx: &Context,
    file: &BaselineFile,
    values: &[&HeadValues],
    slice: &Slice,
) -> (f64, Vec<Finding>) {
    let s = &cx.loaded.config.gates.output_distribution;
    let mut out: Vec<Finding> = written_for_other(cx, file, slice).into_iter().collect();
    out.extend(heads_not_in_contract(cx, file));
    let mut worst = 0.0f64;
    for hv in values {
        let hb = match head_baseline(cx, file, hv) {
            Ok(hb) => hb,
            Err(f) => {
                out.push(*f);
                continue;
            }
        };
        for d in distributions(hb, hv) {
            let p = psi(d.expected, &d.actual);
            let j = js(d.expected, &d.actual);
            worst = worst.max(p);
            if p > s.psi_threshold || j > s.js_threshold {
                out.push(drifted(cx, file, hv, &d, (p, j)));
            }
        }
    }
    (worst, out)
}

/// A finding when the baseline was written for another model version or slice file, saying what
/// changed: the model version, the slice's rows, bytes and sha256.
fn written_for_other(cx: &Context, file: &BaselineFile, slice: &Slice) -> Option<Finding> {
    let base = file.base;
    let slice_path = cx
        .loaded
        .config
        .slice
        .as_ref()
        .map(|sec| cx.loaded.resolve(&sec.features));
    let sha = slice_path
        .as_ref()
        .and_then(|p| crate::checkpoint::sha256_file(p).ok());
    let bytes = slice_path
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let short = |h: &str| {
        let c: Vec<char> = h.chars().collect();
        let head: String = c.iter().take(8).collect();
        let tail: String = c[c.len().saturating_sub(4)..].iter().collect();
        format!("{head}…{tail}")
    };
    let mut changes: Vec<(&str, String)> = Vec::new();
    let v = cx.contract.model_version.as_str();
    if v != base.model_version {
        changes.push((
            "model-version",
            format!("model version {} → {v}", base.model_version),
        ));
    }
    if base.slice.rows != slice.len() {
        changes.push((
            "slice.rows",
            format!("slice rows {} → {}", base.slice.rows, slice.len()),
        ));
    }
    if let (Some(was), Some(now)) = (base.slice.bytes, bytes)
        && was != now
    {
        changes.push(("slice.bytes", format!("slice bytes {was} → {now}")));
    }
    if let Some(now) = sha.filter(|h| *h != base.slice.sha256) {
        let what = format!(
            "slice sha256 {} → {}",
            short(&base.slice.sha256),
            short(&now)
        );
        changes.push(("slice.sha256", what));
    }
    let &(key, _) = changes.first()?;
    Some(baseline_for_other(file, key, &changes))
}

/// One finding per baseline head the contract does not have.
fn heads_not_in_contract(cx: &Context, file: &BaselineFile) -> Vec<Finding> {
    let contract_heads = cx.facts.heads().unwrap_or_default();
    file.base
        .heads
        .keys()
        .filter(|name| !contract_heads.iter().any(|h| &&h.name == name))
        .map(|name| {
            stale(
                file,
                format!("the baseline has head `{name}`, which the contract does not"),
                &format!("heads.{name}"),
            )
        })
        .collect()
}

/// A head's baseline, or the finding that says why its distributions cannot be compared with it
/// (not in the baseline, another kind, another number of outputs).
fn head_baseline<'a>(
    cx: &Context,
    file: &BaselineFile<'a>,
    hv: &HeadValues,
) -> std::result::Result<&'a HeadBaseline, Box<Finding>> {
    let head_at = || head_location(cx, &hv.head);
    let Some(hb) = file.base.heads.get(&hv.head.name) else {
        return Err(Box::new(
            stale(
                file,
                format!("head `{}` is not in the baseline", hv.head.name),
                "heads",
            )
            .related(head_at()),
        ));
    };
    if hb.kind != hv.head.kind {
        return Err(Box::new(kind_changed(cx, file, hv, hb)));
    }
    let classes = if hv.head.kind == "softmax" {
        hv.values.cols
    } else {
        0
    };
    if hb.units.len() != hv.values.cols || hb.class_shares.len() != classes {
        return Err(Box::new(
            stale(
                file,
                format!(
                    "head `{}` has {} outputs now and {} ({} class shares) in the baseline",
                    hv.head.name,
                    hv.values.cols,
                    hb.units.len(),
                    hb.class_shares.len()
                ),
                &format!("heads.{}", hv.head.name),
            )
            .related(head_at()),
        ));
    }
    Ok(hb)
}

/// A head's distributions beside the baseline's: its class shares (softmax heads), then each unit's
/// histogram over the baseline's bins.
fn distributions<'a>(hb: &'a HeadBaseline, hv: &HeadValues) -> Vec<Distribution<'a>> {
    let mut dists = Vec::new();
    if !hb.class_shares.is_empty() {
        dists.push(Distribution {
            what: format!("`{}` class shares", hv.head.name),
            key: format!("heads.{}.class-shares", hv.head.name),
            expected: &hb.class_shares,
            actual: class_shares(&hv.values),
        });
    }
    for (j, h) in hb.units.iter().enumerate() {
        dists.push(Distribution {
            what: unit_name(&hv.head, j),
            key: format!("heads.{}.units.{j}", hv.head.name),
            expected: &h.shares,
            actual: bin_shares(&h.edges, &hv.values.column(j)),
        });
    }
    dists
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
