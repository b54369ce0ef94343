//! # forward-contract (plan script 04_model_forward_contract)
//!
//! **What it does.** Runs the production model (native engine) on probe inputs: raw zeros, the scaler
//! median, seeded standard-normal draws (in scaled units), rows of the slice, and rows of NaN under the
//! declared NaN policy. The outputs must be keyed by the contract's head names with the contracted
//! shapes, finite, identical over two runs, and batch-invariant (row i of the batch equals row i run
//! alone, within `batch-tolerance`). With `reference` set, the outputs on the reference rows must match
//! the reference outputs (e.g. PyTorch's, written by the training script) within `reference-tolerance`,
//! the reference must have been written from the production checkpoint (its sha256), and the `arch` it
//! records must be the checkpoint's. The pre-live profile requires a reference for the native engine:
//! an activation or a slope leaves the tensors unchanged, only outputs show it.
//!
//! **Why is this bad?** A model that returns NaN for a warm-up row, a different answer on a re-run, or a
//! different answer for the same row depending on what else is in the batch gives a backtest that cannot
//! be reproduced and a live process that disagrees with it.
//!
//! **Example.** The reference file says row 12's `direction`[1] logit is -0.18448, the checkpoint's model
//! gives -0.19448: `forward-reference-mismatch` at the reference file's line of that value.

mod reference;

use super::{Context, Gate, Id, Model, Needs, Parts, Profile, Report};
use crate::contract::Head;
use crate::engine::{Engine, EngineKind, Outputs};
use crate::error::{Error, Result};
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::matrix::Matrix;
use crate::normal::Normal;
use crate::scaler::{NanPolicy, Scaler};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "forward-contract",
        contract: ContractKind::HeadMapping,
        severity: Severity::Error,
        summary,
    }
}

pub const MODEL_UNAVAILABLE: Code = code(
    "forward-model-unavailable",
    "the model cannot be built from the production checkpoint (arch, weights)",
);
pub const INPUTS_UNAVAILABLE: Code = code(
    "forward-inputs-unavailable",
    "the probes cannot be scaled: the checkpoint's scaler statistics are not usable lists of numbers",
);
pub const HEADS_MISMATCH: Code = code(
    "forward-heads-mismatch",
    "the model's outputs are not keyed by the contract's head names",
);
pub const SHAPE_MISMATCH: Code = code(
    "forward-shape-mismatch",
    "a head's output has another width than its contracted shape",
);
pub const NOT_FINITE: Code = code(
    "forward-not-finite",
    "the model returns NaN or infinity for a probe",
);
pub const NONDETERMINISTIC: Code = code(
    "forward-nondeterministic",
    "two runs on the same inputs give different outputs",
);
pub const BATCH_VARIANCE: Code = code(
    "forward-batch-variance",
    "a row's output depends on the other rows in its batch",
);
pub const REFERENCE_MISMATCH: Code = code(
    "forward-reference-mismatch",
    "the model's outputs differ from the reference outputs",
);
pub const REFERENCE_MISSING: Code = code(
    "forward-reference-missing",
    "the pre-live profile runs the native engine without PyTorch reference outputs",
);
pub const REFERENCE_STALE: Code = code(
    "forward-reference-stale",
    "the reference outputs were not written from the production checkpoint",
);
pub const ARCH_DIFFERS: Code = code(
    "forward-arch-differs",
    "the checkpoint's `arch` is not the architecture of the model the reference outputs came from",
);
pub const NAN_PROBE_SKIPPED: Code = Code {
    severity: Severity::Note,
    ..code(
        "forward-nan-probe-skipped",
        "the NaN policy cannot be applied to single rows, so the NaN probe did not run",
    )
};

pub const GATE: Gate = Gate {
    id: Id::ForwardContract,
    name: "forward-contract",
    plan_script: Some("04_model_forward_contract"),
    codes: &[
        MODEL_UNAVAILABLE,
        INPUTS_UNAVAILABLE,
        HEADS_MISMATCH,
        SHAPE_MISMATCH,
        NOT_FINITE,
        NONDETERMINISTIC,
        BATCH_VARIANCE,
        REFERENCE_MISMATCH,
        REFERENCE_MISSING,
        REFERENCE_STALE,
        ARCH_DIFFERS,
        NAN_PROBE_SKIPPED,
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

/// The model was not built from the production checkpoint: `message` says why.
fn model_not_built(cx: &Context, message: &str) -> Finding {
    Finding::new(&MODEL_UNAVAILABLE, message)
        .at(cx.production_location())
        .help("the checkpoint's `arch` (in it, or in a sidecar beside it) must describe the model and name every layer's weights (docs/checkpoint-metadata.md#the-arch-format)")
}

/// The model failed to run on its inputs.
fn model_failed(cx: &Context, e: &Error) -> Finding {
    Finding::new(&MODEL_UNAVAILABLE, e.to_string()).at(cx.production_location())
}

/// The model's output heads (`got`, sorted) are not the contract's (`want`).
fn heads_mismatch(cx: &Context, got: &[&str], want: &[&str], here: &Location) -> Finding {
    Finding::new(
        &HEADS_MISMATCH,
        format!(
            "the model outputs heads [{}], the contract has [{}]",
            got.join(", "),
            want.join(", ")
        ),
    )
    .at(here.clone())
    .related(cx.facts.code.heads.origin.clone())
    .help("name the model's heads as the code's head map does (arch.heads in the checkpoint)")
}

/// Head `h` (the code's head `i`) gives `m` for `rows` probe rows, not its contracted shape.
fn shape_mismatch(
    cx: &Context,
    (i, h): (usize, &Head),
    m: &Matrix,
    rows: usize,
    here: &Location,
) -> Finding {
    Finding::new(
        &SHAPE_MISMATCH,
        format!(
            "head `{}` gives {} × {} for {rows} rows; the contract says shape {:?}",
            h.name, m.rows, m.cols, h.shape
        ),
    )
    .at(here.clone())
    .related(
        cx.facts
            .code
            .heads
            .item(i)
            .with_label(format!("head `{}`", h.name)),
    )
}

/// Head output `m` is not finite on probe row `r` (`probe`), the first of `count` such rows.
fn not_finite(
    head: &str,
    m: &Matrix,
    (r, probe): (usize, &str),
    count: usize,
    here: &Location,
) -> Finding {
    Finding::new(
        &NOT_FINITE,
        format!("head `{head}` is not finite for {probe}: {:?}", m.row(r)),
    )
    .at(here.clone())
    .note(format!(
        "{count} of {} probe rows give NaN or infinity",
        m.rows
    ))
}

/// A head's output on `probe` differs between two runs (`runs`: the first's row, the second's).
fn nondeterministic(head: &str, probe: &str, runs: (&[f64], &[f64]), here: &Location) -> Finding {
    Finding::new(
        &NONDETERMINISTIC,
        format!("head `{head}` differs between two runs on {probe}"),
    )
    .at(here.clone())
    .note(format!("run 1: {:?}", runs.0))
    .note(format!("run 2: {:?}", runs.1))
}

/// A row's output (`probe`) depends on the other rows of its batch: `v` by more than `tol`.
fn batch_varies(v: &Variance, probe: &str, tol: f64, here: &Location) -> Finding {
    Finding::new(
        &BATCH_VARIANCE,
        format!(
            "head `{}` on {probe} differs by {:e} between the batch and the row alone (tolerance {tol:e})",
            v.head, v.diff
        ),
    )
    .at(here.clone())
    .note(format!("in the batch: {:?}", v.batch))
    .note(format!("alone:        {:?}", v.alone))
    .help("batch statistics (batch norm in training mode, dropout) or padding leak between rows; call eval()")
}

/// The production checkpoint's scaler, or why it cannot be used (an inputs-unavailable finding).
fn scaler(cx: &Context) -> std::result::Result<Scaler, Box<Finding>> {
    cx.facts.scaler().map_err(|u| {
        Box::new(
            Finding::new(&INPUTS_UNAVAILABLE, u.message)
                .at(u.location)
                .help("state the scaler the pipeline applies (docs/checkpoint-metadata.md#scalers); feature-schema and norm-stats name what is missing or wrong"),
        )
    })
}

/// The probe batch in raw units, with a name for each row.
fn probes(
    cx: &Context,
    engine: &dyn Engine,
    scaler: &Scaler,
    policy: &NanPolicy,
) -> (Matrix, Vec<String>, Vec<Finding>) {
    let s = &cx.loaded.config.gates.forward_contract;
    let f = scaler.center.len();
    // A model that takes windows gets windows: constant ones, draws for every bar, the slice's own.
    let bars = engine.window().unwrap_or(1);
    let n = f * bars;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut names = Vec::new();
    let mut notes = Vec::new();
    rows.push(vec![0.0; n]);
    names.push("raw zeros".to_owned());
    rows.push(scaler.center.repeat(bars));
    names.push("the scaler median".to_owned());
    let mut normal = Normal::new(s.seed);
    for k in 0..s.normal_rows {
        rows.push(
            (0..n)
                .map(|j| scaler.center[j % f] + normal.sample() * scaler.spread[j % f])
                .collect(),
        );
        names.push(format!("normal draw {k} (seed {})", s.seed));
    }
    if let Some(slice) = cx.slice
        && !slice.is_empty()
    {
        let m = s.slice_rows.min(slice.len());
        for k in 0..m {
            let i = if m == 1 {
                0
            } else {
                k * (slice.len() - 1) / (m - 1)
            };
            rows.push(slice.raw_input(i));
            names.push(format!(
                "slice row {} ({}:{})",
                slice.key(i),
                slice.path,
                slice.lines[i]
            ));
        }
    }
    match policy {
        NanPolicy::ZeroFill => {
            rows.push(vec![f64::NAN; n]);
            names.push("a row of NaN (zero-fill)".to_owned());
            rows.push(
                (0..n)
                    .map(|j| {
                        let j = j % f;
                        if j.is_multiple_of(2) { f64::NAN } else { scaler.center[j] + scaler.spread[j] }
                    })
                    .collect(),
            );
            names.push("NaN in every other feature (zero-fill)".to_owned());
        }
        NanPolicy::Other(p) => notes.push(
            Finding::new(
                &NAN_PROBE_SKIPPED,
                if p == crate::source::NOT_STATED {
                    "the NaN policy is not stated (`features.nan-policy`), so no NaN row is probed".to_owned()
                } else {
                    format!("NaN policy `{p}` is applied before the model sees a row, so no NaN row is probed")
                },
            )
            .at(cx.facts.code.nan_policy.origin.clone()),
        ),
    }
    (Matrix::from_rows(n, &rows), names, notes)
}

pub fn run(cx: &Context) -> Result<Report> {
    let engine = match model(cx) {
        Ok(e) => e,
        Err(report) => return Ok(report),
    };
    let scaler = match scaler(cx) {
        Ok(s) => s,
        Err(f) => return Ok(Report::stopped(*f, "inputs not scaled")),
    };
    let heads = cx.facts.heads()?;
    let policy = cx.facts.nan_policy();
    let (raw, names, mut out) = probes(cx, engine, &scaler, &policy);
    let x = scaler.scale(&raw, &policy);
    let first = match engine.forward(&x) {
        Ok(o) => o,
        Err(e) => return Ok(stopped(cx, e)),
    };
    let here = cx.production_location();
    out.extend(head_findings(cx, heads, &first, x.rows, &here));
    out.extend(not_finite_findings(&first, &names, &here));
    // Deterministic.
    let second = match engine.forward(&x) {
        Ok(o) => o,
        Err(e) => return Ok(stopped(cx, e)),
    };
    if let Some((head, r)) = first_difference(&first, &second, 0.0) {
        let runs = (first[&head].row(r), second[&head].row(r));
        out.push(nondeterministic(&head, &names[r], runs, &here));
    }
    // Batch-invariant.
    let tol = cx.loaded.config.gates.forward_contract.batch_tolerance;
    let (worst, first_bad) = match batch_variance(engine, &x, &first, tol) {
        Ok(v) => v,
        Err(e) => return Ok(stopped(cx, e)),
    };
    if let Some(v) = first_bad {
        out.push(batch_varies(&v, &names[v.row], tol, &here));
    }
    let mut summary = format!("{} probes · batch Δ {}", x.rows, short_float(worst));
    match &cx.loaded.config.gates.forward_contract.reference {
        Some(rel) => {
            let r = reference::check(cx, engine, rel)?;
            out.extend(r.findings);
            summary.push_str(&format!(
                " · reference {} rows Δ {}",
                r.rows,
                short_float(r.worst)
            ));
        }
        None if cx.profile == Some(Profile::PreLive)
            && EngineKind::of(cx.loaded) == EngineKind::Native =>
        {
            out.push(reference::missing(cx));
        }
        None => summary.push_str(" · no reference"),
    }
    Ok(Report {
        findings: out,
        summary,
        skipped: None,
    })
}

/// The production model, or the report that stops the gate because it was not built.
fn model<'a>(cx: &Context<'a>) -> std::result::Result<&'a dyn Engine, Report> {
    match cx.model {
        Model::Ready(e) => Ok(e.as_ref()),
        // An `arch` that cannot be read is checkpoint-inventory's `arch-invalid` when it runs too.
        Model::Failed(_)
            if cx.runs(Id::CheckpointInventory)
                && crate::inventory::reports_arch_invalid(cx.loaded, &cx.facts.production) =>
        {
            Err(Report::skipped(
                "the model cannot be built: `arch` cannot be read (checkpoint-inventory: arch-invalid)",
            ))
        }
        Model::Failed(msg) => Err(Report::stopped(model_not_built(cx, msg), "model not built")),
        Model::NotNeeded => unreachable!("check builds the model for gates that need it"),
    }
}

/// Findings on the outputs' keys and widths: the contract's head names, each head's contracted shape.
fn head_findings(
    cx: &Context,
    heads: &[Head],
    first: &Outputs,
    rows: usize,
    here: &Location,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let want: Vec<&str> = heads.iter().map(|h| h.name.as_str()).collect();
    let got: Vec<&str> = first.keys().map(String::as_str).collect();
    let mut sorted_want = want.clone();
    sorted_want.sort_unstable();
    if got != sorted_want {
        out.push(heads_mismatch(cx, &got, &want, here));
    }
    for (i, h) in heads.iter().enumerate() {
        let Some(m) = first.get(&h.name) else {
            continue;
        };
        let width: u64 = h.shape.iter().product();
        if m.cols as u64 != width || m.rows != rows {
            out.push(shape_mismatch(cx, (i, h), m, rows, here));
        }
    }
    out
}

/// One finding per head that is NaN or infinite on a probe row, at its first such row.
fn not_finite_findings(first: &Outputs, names: &[String], here: &Location) -> Vec<Finding> {
    first
        .iter()
        .filter_map(|(head, m)| {
            let bad = m.non_finite_rows();
            bad.first()
                .map(|&r| not_finite(head, m, (r, &names[r]), bad.len(), here))
        })
        .collect()
}

/// The model failed to run: one finding, nothing else to check.
fn stopped(cx: &Context, e: Error) -> Report {
    Report::stopped(model_failed(cx, &e), "model does not run")
}

/// The first row whose output alone differs from its output in the batch by more than `tol`.
pub struct Variance {
    pub head: String,
    pub row: usize,
    pub diff: f64,
    pub batch: Vec<f64>,
    pub alone: Vec<f64>,
}

/// Run each row alone and compare with the batch run `first`; returns the largest difference seen and
/// the first row over `tol`. NaN differences are skipped (non-finite outputs are reported on their own).
pub fn batch_variance(
    engine: &dyn Engine,
    x: &Matrix,
    first: &Outputs,
    tol: f64,
) -> Result<(f64, Option<Variance>)> {
    let mut worst = 0.0f64;
    let mut found = None;
    // A command engine costs a process per call: check 8 evenly spaced rows alone, not every row.
    let rows: Vec<usize> = if engine.kind() == "command" && x.rows > 8 {
        (0..8).map(|i| i * (x.rows - 1) / 7).collect()
    } else {
        (0..x.rows).collect()
    };
    for r in rows {
        let alone = engine.forward(&x.slice_rows(r..r + 1))?;
        for (head, m) in &alone {
            let Some(batch) = first.get(head) else {
                continue;
            };
            for (a, b) in m.row(0).iter().zip(batch.row(r)) {
                let d = (a - b).abs();
                if d.is_nan() {
                    continue;
                }
                worst = worst.max(d);
                if d > tol && found.is_none() {
                    found = Some(Variance {
                        head: head.clone(),
                        row: r,
                        diff: d,
                        batch: batch.row(r).to_vec(),
                        alone: m.row(0).to_vec(),
                    });
                }
            }
        }
    }
    Ok((worst, found))
}

/// `0` for an exact match, else one significant digit in scientific notation (`2.4e-7`).
fn short_float(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.1e}")
    }
}

pub fn first_difference(a: &Outputs, b: &Outputs, tol: f64) -> Option<(String, usize)> {
    for (head, m) in a {
        let o = b.get(head)?;
        for r in 0..m.rows {
            let differs = m
                .row(r)
                .iter()
                .zip(o.row(r))
                .any(|(x, y)| !(x.to_bits() == y.to_bits() || (x - y).abs() <= tol));
            if differs {
                return Some((head.clone(), r));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds the batch mean of column 0 to every output: what batch norm in training mode does.
    struct BatchDependent;
    impl Engine for BatchDependent {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn input_dim(&self) -> usize {
            2
        }
        fn window(&self) -> Option<usize> {
            None
        }
        fn forward(&self, x: &Matrix) -> Result<Outputs> {
            let mean = x.column(0).iter().sum::<f64>() / x.rows as f64;
            let data = (0..x.rows).map(|r| x.row(r)[1] + mean).collect();
            Ok(Outputs::from([(
                "y".to_owned(),
                Matrix::new(x.rows, 1, data),
            )]))
        }
    }

    /// Row-wise: a row's output depends on that row only.
    struct RowWise;
    impl Engine for RowWise {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn input_dim(&self) -> usize {
            2
        }
        fn window(&self) -> Option<usize> {
            None
        }
        fn forward(&self, x: &Matrix) -> Result<Outputs> {
            let data = (0..x.rows)
                .map(|r| x.row(r)[0] * 2.0 - x.row(r)[1])
                .collect();
            Ok(Outputs::from([(
                "y".to_owned(),
                Matrix::new(x.rows, 1, data),
            )]))
        }
    }

    #[test]
    fn batch_variance_finds_a_batch_dependent_model_and_passes_a_row_wise_one() {
        let x = Matrix::new(3, 2, vec![0.0, 1.0, 3.0, 1.0, 6.0, 1.0]);
        let first = BatchDependent.forward(&x).unwrap();
        let (worst, v) = batch_variance(&BatchDependent, &x, &first, 1e-6).unwrap();
        let v = v.expect("batch mean 3 vs each row's own value");
        assert_eq!((v.head.as_str(), v.row, v.diff), ("y", 0, 3.0));
        assert_eq!(worst, 3.0);
        let first = RowWise.forward(&x).unwrap();
        let (worst, v) = batch_variance(&RowWise, &x, &first, 1e-6).unwrap();
        assert!(v.is_none());
        assert_eq!(worst, 0.0);
    }

    #[test]
    fn first_difference_is_bitwise_at_zero_tolerance() {
        let a = Outputs::from([("h".to_owned(), Matrix::new(2, 1, vec![1.0, f64::NAN]))]);
        let b = Outputs::from([("h".to_owned(), Matrix::new(2, 1, vec![1.0, f64::NAN]))]);
        assert!(
            first_difference(&a, &b, 0.0).is_none(),
            "same NaN bits are the same output"
        );
        let c = Outputs::from([(
            "h".to_owned(),
            Matrix::new(2, 1, vec![1.0 + 1e-15, f64::NAN]),
        )]);
        assert_eq!(first_difference(&a, &c, 0.0), Some(("h".to_owned(), 0)));
    }

    #[test]
    fn normal_draws_are_seeded_and_look_normal() {
        let a: Vec<f64> = {
            let mut n = Normal::new(7);
            (0..20000).map(|_| n.sample()).collect()
        };
        let b: Vec<f64> = {
            let mut n = Normal::new(7);
            (0..20000).map(|_| n.sample()).collect()
        };
        assert_eq!(a, b);
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
        let mut c = Normal::new(8);
        assert_ne!(a[0], c.sample());
    }
}
