//! Integrated gradients (Sundararajan et al., 2017) through the engine's gradients (burn autodiff):
//! `attr_i = (x_i − b_i) · ∫₀¹ ∂f/∂x_i (b + α(x − b)) dα`, never rescaled.
//!
//! The integral is adaptive. The path starts as 32 equal intervals; each interval's integral is taken
//! with the trapezoid rule on its ends (coarse) and on its ends and midpoint (fine), and |fine − coarse|
//! (as attribution, summed over features, the largest over outputs) estimates its error. Intervals whose
//! error is above `tol × width` are halved, round after round, until the summed error estimate and every
//! output's completeness delta |Σ attr − (f(x) − f(b))| are at most `tol`, or the row has used
//! `max-steps` gradient evaluations (then it is reported as not converged). `tol` is `tolerance ×
//! max(1, |f(x)|, |f(b)|)` over the row's outputs: absolute for outputs up to 1, relative beyond. When
//! every interval looks settled but the delta is still over, all intervals are halved (something
//! happens between the points). A ReLU network is linear between the points where a unit switches, so
//! intervals without a switch are exact at once and the refinement closes in on the switches: the
//! result matches the exact piecewise-linear integral. Rows go in blocks of 256; all rows of a block's
//! round go through the engine as one batch.

use super::Unit;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// The first pass splits the path into this many intervals.
pub const INITIAL_INTERVALS: usize = 32;
/// Rows per engine call (memory bound on very long rounds).
const CHUNK: usize = 65_536;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub tolerance: f64,
    pub max_steps: usize,
}

/// Integrated gradients of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowAttribution {
    /// Per unit (in the order asked), per feature.
    pub attributions: Vec<Vec<f64>>,
    /// f(x) − f(baseline) per unit.
    pub difference: Vec<f64>,
    /// Σ attributions − (f(x) − f(baseline)) per unit.
    pub delta: Vec<f64>,
    /// The estimated quadrature error (largest over units).
    pub error_bound: f64,
    /// Gradient evaluations on the path.
    pub steps: usize,
    pub converged: bool,
}

/// One interval of a row's path: its ends (indices into the row's points) and, once its midpoint is
/// evaluated, the midpoint, the fine estimate of ∫ g over it and its error.
struct Interval {
    a: f64,
    b: f64,
    ga: usize,
    gb: usize,
    mid: Option<usize>,
    /// Fine integral per unit per feature (of the gradient, not yet times x − b).
    fine: Vec<f64>,
    error: f64,
}

impl Interval {
    fn new(a: f64, b: f64, ga: usize, gb: usize) -> Interval {
        Interval {
            a,
            b,
            ga,
            gb,
            mid: None,
            fine: Vec::new(),
            error: f64::INFINITY,
        }
    }
}

struct RowState {
    /// Gradients at each evaluated point: units × features, flattened.
    points: Vec<Vec<f64>>,
    intervals: Vec<Interval>,
    done: bool,
    result: Option<RowAttribution>,
}

/// Integrated gradients of `units` for every row of `inputs` (scaled), from `baseline`.
pub fn attribute(
    engine: &dyn Engine,
    inputs: &Matrix,
    baseline: &[f64],
    units: &[Unit],
    settings: Settings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RowAttribution>> {
    // Rows go in blocks: every evaluated point's gradients are kept until the row is done, so memory
    // grows with the rows refined at once, not with the slice (a row's result does not depend on its
    // block).
    let mut out = Vec::with_capacity(inputs.rows);
    for start in (0..inputs.rows).step_by(BLOCK) {
        let end = (start + BLOCK).min(inputs.rows);
        let done = out.len();
        let block = attribute_block(
            engine,
            &inputs.slice_rows(start..end),
            baseline,
            units,
            settings,
            &mut |n, _| progress(done + n, inputs.rows),
        )?;
        out.extend(block);
    }
    Ok(out)
}

/// Rows refined together.
const BLOCK: usize = 256;

/// Integrated gradients of one block of rows: round by round, the midpoints of the intervals still
/// open, until every row has converged or used its steps.
fn attribute_block(
    engine: &dyn Engine,
    inputs: &Matrix,
    baseline: &[f64],
    units: &[Unit],
    settings: Settings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RowAttribution>> {
    let (rows, cols) = (inputs.rows, inputs.cols);
    if baseline.len() != cols {
        return Err(Error::msg(format!(
            "integrated gradients: the baseline has {} values, the inputs {cols} columns",
            baseline.len()
        )));
    }
    let (difference, tolerance) = differences(engine, inputs, baseline, units, settings.tolerance)?;
    let dx = offsets(inputs, baseline);
    let mut states = first_round(engine, inputs, baseline, units)?;
    let mut finished = 0;
    loop {
        let Midpoints { requests, owners } = midpoints(&states);
        if requests.is_empty() {
            break;
        }
        let grads = gradients(engine, inputs, baseline, units, &requests)?;
        record_midpoints(&mut states, owners, grads, &dx, units.len());
        for (r, st) in states.iter_mut().enumerate() {
            if st.done {
                continue;
            }
            let row = summarize(st, &dx[r], &difference[r], units.len(), cols);
            let tol = tolerance[r];
            let ok = row.error_bound <= tol && row.delta.iter().all(|d| d.abs() <= tol);
            let split = if ok {
                Vec::new()
            } else {
                to_split(st, tol, settings.max_steps)
            };
            if split.is_empty() {
                st.done = true;
                st.result = Some(RowAttribution {
                    converged: ok,
                    ..row
                });
                finished += 1;
                progress(finished, rows);
                continue;
            }
            halve(st, split);
        }
    }
    Ok(states
        .into_iter()
        .map(|s| s.result.expect("every row finishes"))
        .collect())
}

/// f(x) − f(b) per row and unit, and each row's tolerance: `tolerance` × max(1, |f(x)|, |f(b)|) over
/// its units (absolute for outputs up to 1, relative beyond: a float32 model cannot resolve
/// f(x) − f(b) better than its outputs' own rounding).
fn differences(
    engine: &dyn Engine,
    inputs: &Matrix,
    baseline: &[f64],
    units: &[Unit],
    tolerance: f64,
) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let (rows, cols) = (inputs.rows, inputs.cols);
    // f(x) and f(b) per unit.
    let fx = engine.forward(inputs)?;
    let fb = engine.forward(&Matrix::new(1, cols, baseline.to_vec()))?;
    let mut difference = Vec::with_capacity(rows);
    let mut tolerances = Vec::with_capacity(rows);
    for r in 0..rows {
        let mut d = Vec::with_capacity(units.len());
        let mut scale: f64 = 1.0;
        for u in units {
            let (a, b) = (unit_value(&fx, u, r)?, unit_value(&fb, u, 0)?);
            d.push(a - b);
            scale = scale.max(a.abs()).max(b.abs());
        }
        difference.push(d);
        tolerances.push(tolerance * scale);
    }
    Ok((difference, tolerances))
}

/// Output `u` of row `r` of `o`.
fn unit_value(o: &crate::engine::Outputs, u: &Unit, r: usize) -> Result<f64> {
    o.get(&u.head)
        .filter(|m| u.unit < m.cols)
        .map(|m| m.row(r)[u.unit])
        .ok_or_else(|| {
            Error::msg(format!(
                "integrated gradients: the model has no output {} of head `{}`",
                u.unit, u.head
            ))
        })
}

/// x − b per row.
fn offsets(inputs: &Matrix, baseline: &[f64]) -> Vec<Vec<f64>> {
    (0..inputs.rows)
        .map(|r| {
            inputs
                .row(r)
                .iter()
                .zip(baseline)
                .map(|(x, b)| x - b)
                .collect()
        })
        .collect()
}

/// Round 0: every row with the gradients at the ends of the initial intervals, each interval
/// still needing its midpoint.
fn first_round(
    engine: &dyn Engine,
    inputs: &Matrix,
    baseline: &[f64],
    units: &[Unit],
) -> Result<Vec<RowState>> {
    let n0 = INITIAL_INTERVALS;
    let alphas: Vec<f64> = (0..=n0).map(|k| k as f64 / n0 as f64).collect();
    let requests: Vec<(usize, f64)> = (0..inputs.rows)
        .flat_map(|r| alphas.iter().map(move |&a| (r, a)))
        .collect();
    let grads = gradients(engine, inputs, baseline, units, &requests)?;
    Ok((0..inputs.rows)
        .map(|r| {
            let points = grads[r * (n0 + 1)..(r + 1) * (n0 + 1)].to_vec();
            let intervals = (0..n0)
                .map(|k| Interval::new(alphas[k], alphas[k + 1], k, k + 1))
                .collect();
            RowState {
                points,
                intervals,
                done: false,
                result: None,
            }
        })
        .collect())
}

/// The midpoints a round evaluates.
struct Midpoints {
    /// `(row, α)` of each midpoint.
    requests: Vec<(usize, f64)>,
    /// `(row, interval)` of each midpoint.
    owners: Vec<(usize, usize)>,
}

/// The midpoints of every interval that has none yet, for every row still refining.
fn midpoints(states: &[RowState]) -> Midpoints {
    let mut requests = Vec::new();
    let mut owners = Vec::new();
    for (r, st) in states.iter().enumerate() {
        if st.done {
            continue;
        }
        for (i, iv) in st.intervals.iter().enumerate() {
            if iv.mid.is_none() {
                requests.push((r, 0.5 * (iv.a + iv.b)));
                owners.push((r, i));
            }
        }
    }
    Midpoints { requests, owners }
}

/// Each midpoint's gradients `grads` kept with its row, and its interval's fine estimate and error.
fn record_midpoints(
    states: &mut [RowState],
    owners: Vec<(usize, usize)>,
    grads: Vec<Vec<f64>>,
    dx: &[Vec<f64>],
    units: usize,
) {
    for ((r, i), g) in owners.into_iter().zip(grads) {
        let st = &mut states[r];
        st.points.push(g);
        let gm = st.points.len() - 1;
        let iv = &st.intervals[i];
        let (fine, error) = estimate(
            &st.points[iv.ga],
            &st.points[gm],
            &st.points[iv.gb],
            iv.b - iv.a,
            &dx[r],
            units,
        );
        let iv = &mut st.intervals[i];
        iv.mid = Some(gm);
        iv.fine = fine;
        iv.error = error;
    }
}

/// The intervals of a row not yet within `tol` to halve next, in order: those whose error is over
/// their share of it (all of them when none is), largest errors first within the row's budget of
/// `max_steps`.
fn to_split(st: &RowState, tol: f64, max_steps: usize) -> Vec<usize> {
    let mut over: Vec<usize> = (0..st.intervals.len())
        .filter(|&i| {
            let iv = &st.intervals[i];
            iv.error > tol * (iv.b - iv.a)
        })
        .collect();
    if over.is_empty() {
        // Every interval looks settled, yet the sum is off: something happens inside an
        // interval that its three points do not see (a unit switching on and off again).
        // Halve them all, so the next round samples everywhere.
        over = (0..st.intervals.len()).collect();
    }
    // Largest errors first, within the row's budget (each split costs two midpoints).
    over.sort_by(|&x, &y| {
        st.intervals[y]
            .error
            .total_cmp(&st.intervals[x].error)
            .then(x.cmp(&y))
    });
    let room = max_steps.saturating_sub(st.points.len()) / 2;
    over.truncate(room);
    over.sort_unstable();
    over
}

/// Halve each interval of `split` (ascending) at its (known) midpoint; the halves need their own
/// midpoints.
fn halve(st: &mut RowState, split: Vec<usize>) {
    let mut next = Vec::with_capacity(st.intervals.len() + split.len());
    let mut chosen = split.into_iter().peekable();
    for (i, iv) in std::mem::take(&mut st.intervals).into_iter().enumerate() {
        if chosen.peek() == Some(&i) {
            chosen.next();
            let m = 0.5 * (iv.a + iv.b);
            let gm = iv.mid.expect("an evaluated interval has a midpoint");
            next.push(Interval::new(iv.a, m, iv.ga, gm));
            next.push(Interval::new(m, iv.b, gm, iv.gb));
        } else {
            next.push(iv);
        }
    }
    st.intervals = next;
}

/// The fine trapezoid integral of the gradient over an interval of width `w` (ends and midpoint) and the
/// estimated error of the resulting attributions: Σ_i |(fine − coarse)_i · dx_i|, the largest over units.
fn estimate(
    ga: &[f64],
    gm: &[f64],
    gb: &[f64],
    w: f64,
    dx: &[f64],
    units: usize,
) -> (Vec<f64>, f64) {
    let cols = dx.len();
    let mut fine = Vec::with_capacity(ga.len());
    let mut error: f64 = 0.0;
    for u in 0..units {
        let mut e = 0.0;
        for (i, d) in dx.iter().enumerate() {
            let k = u * cols + i;
            let f = 0.25 * w * (ga[k] + 2.0 * gm[k] + gb[k]);
            let c = 0.5 * w * (ga[k] + gb[k]);
            fine.push(f);
            e += ((f - c) * d).abs();
        }
        error = error.max(e);
    }
    (fine, error)
}

/// The row's attributions from its intervals' fine estimates (summed left to right).
fn summarize(
    st: &RowState,
    dx: &[f64],
    difference: &[f64],
    units: usize,
    cols: usize,
) -> RowAttribution {
    let mut integral = vec![0.0; units * cols];
    let mut error_bound = 0.0;
    for iv in &st.intervals {
        for (acc, f) in integral.iter_mut().zip(&iv.fine) {
            *acc += f;
        }
        error_bound += iv.error;
    }
    let attributions: Vec<Vec<f64>> = (0..units)
        .map(|u| (0..cols).map(|i| integral[u * cols + i] * dx[i]).collect())
        .collect();
    let delta = attributions
        .iter()
        .zip(difference)
        .map(|(a, d)| a.iter().sum::<f64>() - d)
        .collect();
    RowAttribution {
        attributions,
        difference: difference.to_vec(),
        delta,
        error_bound,
        steps: st.points.len(),
        converged: false,
    }
}

/// Gradients of every unit at `b + α (x_r − b)` for each `(r, α)`, as units × features per request.
fn gradients(
    engine: &dyn Engine,
    inputs: &Matrix,
    baseline: &[f64],
    units: &[Unit],
    requests: &[(usize, f64)],
) -> Result<Vec<Vec<f64>>> {
    let cols = inputs.cols;
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(CHUNK) {
        let mut data = Vec::with_capacity(chunk.len() * cols);
        for &(r, a) in chunk {
            data.extend(
                inputs
                    .row(r)
                    .iter()
                    .zip(baseline)
                    .map(|(x, b)| b + a * (x - b)),
            );
        }
        let path = Matrix::new(chunk.len(), cols, data);
        let mut per_unit = Vec::with_capacity(units.len());
        for u in units {
            let g = engine.gradients(&path, &u.head, u.unit).ok_or_else(|| {
                Error::msg(format!(
                    "the {} engine has no gradients: integrated gradients need the native engine (use `audit.method = \"permutation\"`)",
                    engine.kind()
                ))
            })??;
            per_unit.push(g);
        }
        for p in 0..chunk.len() {
            let mut v = Vec::with_capacity(units.len() * cols);
            for g in &per_unit {
                v.extend_from_slice(g.row(p));
            }
            out.push(v);
        }
    }
    Ok(out)
}
