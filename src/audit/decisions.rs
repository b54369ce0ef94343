//! `plumbline audit decisions` (plan §3.2 `generate_decision_factor_attribution.py`): one CSV row per
//! (timestamp, symbol) decision on the slice — raw and scaled inputs, head outputs, the ruleset's action
//! and size, each risk gate's outcome, and the top-k factors behind the decision (docs/audit.md lists
//! every column).
//!
//! A decision's factors attribute the signal head's output for the class the decision took (its logit):
//! integrated gradients from the configured baseline for the native engine; for a command engine,
//! occlusion (the output minus the output with that one feature set to the baseline), which needs no
//! gradients and runs as one batch.

use std::path::PathBuf;

use super::integrated_gradients as ig;
use super::{Inputs, Unit, num};
use crate::config::{AttributionMethod, Loaded};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::ruleset::{self, Side};

pub const FILE: &str = "artifacts/audit/decision_attribution.csv";

pub fn default_path(loaded: &Loaded) -> PathBuf {
    loaded.resolve(FILE)
}

/// Per-row attributions of the decided class's signal output, and which output that was.
pub struct Factors {
    /// `units[r]`: the output attributed for row `r`.
    pub units: Vec<Unit>,
    /// `values[r][j]`: feature `j`'s attribution for row `r`.
    pub values: Vec<Vec<f64>>,
    pub method: &'static str,
    /// Rows whose integrated gradients did not converge.
    pub not_converged: usize,
}

pub fn factors(
    loaded: &Loaded,
    inputs: &Inputs,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Factors> {
    let rl = inputs.ruleset.as_ref().ok_or_else(|| {
        Error::msg(
            "`audit decisions` reads the ruleset's actions, and the config has no `[ruleset]` (docs/ruleset.md)",
        )
    })?;
    let signal = &rl.ruleset.signal;
    let units: Vec<Unit> = inputs
        .decisions
        .iter()
        .map(|d| {
            Ok(Unit {
                head: signal.head.clone(),
                unit: class_of(rl, d.side)?,
            })
        })
        .collect::<Result<_>>()?;
    let s = &loaded.config.audit;
    let baseline = inputs.baseline(s.baseline);
    match super::conditions::method(loaded) {
        AttributionMethod::Permutation => occlusion(inputs, &signal.head, &baseline, units),
        _ => {
            let settings = ig::Settings {
                tolerance: s.tolerance,
                max_steps: s.max_steps,
            };
            integrated(inputs, &signal.head, &baseline, units, settings, progress)
        }
    }
}

/// The signal class a side stands for: `long` and `short` by name (the ruleset requires them);
/// `flat` by name, or the one class that is neither (docs/ruleset.md lets it have any name).
fn class_of(rl: &ruleset::Loaded, side: Side) -> Result<usize> {
    let signal = &rl.ruleset.signal;
    let by_name = signal.classes.iter().position(|c| c == side.as_str());
    let other = || {
        let rest: Vec<usize> = (0..signal.classes.len())
            .filter(|&i| signal.classes[i] != "long" && signal.classes[i] != "short")
            .collect();
        (rest.len() == 1).then(|| rest[0])
    };
    by_name
        .or_else(|| (side == Side::Flat).then(other).flatten())
        .ok_or_else(|| {
            Error::at(
                rl.location("signal.classes"),
                format!(
                    "`signal.classes` has no class for `{}` (by that name, or as the one class besides long and short): the decision cannot be attributed",
                    side.as_str()
                ),
            )
        })
}

/// Occlusion factors of `head`'s decided `units`: the output minus the output with one feature at
/// the baseline, every (row, feature) in one batch.
fn occlusion(inputs: &Inputs, head: &str, baseline: &[f64], units: Vec<Unit>) -> Result<Factors> {
    let (rows, cols) = (inputs.scaled.rows, inputs.scaled.cols);
    // Occlusion: row r with feature j at the baseline, for every (r, j), in one batch.
    let mut data = Vec::with_capacity(rows * cols * cols);
    for r in 0..rows {
        for j in 0..cols {
            let mut row = inputs.scaled.row(r).to_vec();
            row[j] = baseline[j];
            data.extend_from_slice(&row);
        }
    }
    let out = inputs
        .engine
        .forward(&Matrix::new(rows * cols, cols, data))?;
    let m = out
        .get(head)
        .ok_or_else(|| Error::msg(format!("the model gives no head `{head}`")))?;
    let base = &inputs.outputs[head];
    let values = (0..rows)
        .map(|r| {
            let k = units[r].unit;
            (0..cols)
                .map(|j| base.row(r)[k] - m.row(r * cols + j)[k])
                .collect()
        })
        .collect();
    Ok(Factors {
        units,
        values,
        method: "occlusion",
        not_converged: 0,
    })
}

/// Integrated-gradients factors: of every class of `head`, then each row's decided one (`units`).
fn integrated(
    inputs: &Inputs,
    head: &str,
    baseline: &[f64],
    units: Vec<Unit>,
    settings: ig::Settings,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Factors> {
    let width = inputs.outputs[head].cols;
    let all: Vec<Unit> = (0..width)
        .map(|k| Unit {
            head: head.to_owned(),
            unit: k,
        })
        .collect();
    let attr = ig::attribute(
        inputs.engine.as_ref(),
        &inputs.scaled,
        baseline,
        &all,
        settings,
        progress,
    )?;
    let not_converged = attr.iter().filter(|a| !a.converged).count();
    let values = attr
        .into_iter()
        .zip(&units)
        .map(|(mut a, u)| std::mem::take(&mut a.attributions[u.unit]))
        .collect();
    Ok(Factors {
        units,
        values,
        method: "integrated-gradients",
        not_converged,
    })
}

/// The CSV: a header, then one row per slice row in slice order.
pub fn csv(inputs: &Inputs, f: &Factors, top_k: usize) -> Result<String> {
    let rl = inputs
        .ruleset
        .as_ref()
        .expect("factors() checked the ruleset");
    let fs = &inputs.inputs;
    let k = top_k.min(fs.len());
    let mut header: Vec<String> = vec!["timestamp".into(), "symbol".into()];
    header.extend(inputs.features.iter().map(|n| format!("raw.{n}")));
    header.extend(fs.iter().map(|n| format!("scaled.{n}")));
    for h in &inputs.heads {
        for u in 0..inputs.outputs[&h.name].cols {
            header.push(format!("{}.{u}", h.name));
        }
    }
    header.extend(["action".into(), "size".into()]);
    header.extend(
        rl.ruleset
            .risk_gates
            .iter()
            .map(|g| format!("gate.{}", g.name)),
    );
    header.extend(["attributed".into(), "method".into()]);
    for i in 1..=k {
        header.push(format!("factor_{i}"));
        header.push(format!("factor_{i}_attribution"));
    }
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    let err = |e: csv::Error| Error::msg(format!("writing the decision CSV: {e}"));
    w.write_record(&header).map_err(err)?;
    for r in 0..inputs.slice.len() {
        let d = &inputs.decisions[r];
        let mut rec: Vec<String> = vec![
            inputs.slice.timestamps[r].clone(),
            inputs.slice.symbols[r].clone().unwrap_or_default(),
        ];
        rec.extend(inputs.slice.features.row(r).iter().map(|v| num(*v)));
        rec.extend(inputs.scaled.row(r).iter().map(|v| num(*v)));
        for h in &inputs.heads {
            rec.extend(inputs.outputs[&h.name].row(r).iter().map(|v| num(*v)));
        }
        rec.push(d.side.as_str().into());
        rec.push(num(d.size));
        rec.extend(
            d.blocked
                .iter()
                .map(|b| if *b { "block" } else { "pass" }.to_owned()),
        );
        let u = &f.units[r];
        rec.push(format!(
            "{}.{} ({})",
            u.head,
            u.unit,
            inputs.unit_label(&u.head, u.unit)
        ));
        rec.push(f.method.into());
        let v = &f.values[r];
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()).then(a.cmp(&b)));
        for &j in order.iter().take(k) {
            rec.push(fs[j].clone());
            rec.push(num(v[j]));
        }
        w.write_record(&rec).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::msg(format!("writing the decision CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::msg(format!("the decision CSV: {e}")))
}
