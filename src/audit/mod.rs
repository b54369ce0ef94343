//! The audit tools (plan §3.2, docs/audit.md): heavier, on-demand exports of what the model learned and
//! why it decided what it did. They read what the gates read (config → facts → the model on the slice)
//! and write artifacts; they never change a verdict.
//!
//! - [`conditions`]: global attribution per head (integrated gradients for the native engine,
//!   permutation importance for a command) and surrogate decision rules of the model's actions.
//! - [`decisions`]: one row per slice decision with its inputs, outputs, risk gates and top factors.

pub mod command;
pub mod conditions;
pub mod decisions;
pub mod integrated_gradients;
pub mod permutation;
pub mod surrogate;

use std::path::Path;

use crate::config::{IgBaseline, Loaded};
use crate::contract::Head;
use crate::engine::{self, Engine, Outputs};
use crate::error::{Error, Result};
use crate::facts::{self, Facts};
use crate::matrix::Matrix;
use crate::paths::display_path;
use crate::ruleset::{self, Decision, RowInputs, Side};
use crate::slice::Slice;

/// Everything an audit reads: the model, the slice in raw and scaled units, its outputs, and the
/// ruleset's decisions when there is a ruleset.
pub struct Inputs {
    pub facts: Facts,
    /// The model's features, in order (a slice row's raw columns).
    pub features: Vec<String>,
    /// The model's input columns, in order: the features, or for windows each feature at each lag
    /// (`ret_1[t-7]` … `ret_1[t]`, oldest bar first). The columns of `scaled` and of every attribution.
    pub inputs: Vec<String>,
    pub slice: Slice,
    /// The model's inputs on each slice row, scaled (for windows, the row's window of bars).
    pub scaled: Matrix,
    pub engine: Box<dyn Engine>,
    pub outputs: Outputs,
    pub heads: Vec<Head>,
    pub ruleset: Option<ruleset::Loaded>,
    /// One decision per slice row (empty without a ruleset).
    pub decisions: Vec<Decision>,
    /// The checkpoint the model was built from and the slice, config-relative (the same text on every
    /// machine).
    pub checkpoint: String,
    pub slice_file: String,
}

/// Load the model (the production checkpoint), the slice and the ruleset. Every missing piece is an
/// error naming what to configure: an audit never runs on a guess.
pub fn prepare(loaded: &Loaded) -> Result<Inputs> {
    let section = loaded.config.slice.as_ref().ok_or_else(|| {
        Error::msg(format!(
            "{}: the audit runs the model on the reference slice, and the config has no `[slice]` (docs/config.md)",
            display_path(&loaded.path)
        ))
    })?;
    if let Some(why) = engine::unavailable(engine::EngineKind::of(loaded)) {
        return Err(Error::msg(format!("the audit {why}")));
    }
    let facts = facts::collect(loaded)?;
    let features = facts.model_feature_names()?;
    let slice = crate::slice::load(loaded, section, &facts)?;
    if slice.is_empty() {
        return Err(Error::msg(format!("{}: the slice has no rows", slice.path)));
    }
    let scaler = facts
        .scaler()
        .map_err(|f| Error::msg(format!("{}: {}", display_path(&loaded.path), f.message)))?;
    let policy = facts.nan_policy();
    let scaled = slice.model_inputs(&scaler, &policy);
    all_finite(&slice, &scaled, &facts)?;
    let engine = engine::for_check(loaded, &facts)?;
    let outputs = engine.forward(&scaled)?;
    let heads = facts.heads()?.to_vec();
    for h in &heads {
        if !outputs.contains_key(&h.name) {
            return Err(Error::msg(format!(
                "the model gives no head `{}` (the contract names it; heads and forward-contract say more)",
                h.name
            )));
        }
    }
    let ruleset = match &loaded.config.ruleset {
        Some(r) => Some(ruleset::load(&loaded.input("ruleset.path", &r.path)?)?),
        None => None,
    };
    let soft_owned = crate::contract::softmax_heads(&heads);
    let softmax: Vec<&str> = soft_owned.iter().map(String::as_str).collect();
    let decisions = match &ruleset {
        Some(rl) => (0..slice.len())
            .map(|r| {
                let row = crate::ruleset::SliceRow {
                    outputs: &outputs,
                    slice: &slice,
                    names: &features,
                    row: r,
                };
                ruleset::interpret(&rl.ruleset, &row as &dyn RowInputs, &softmax)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Inputs {
        checkpoint: loaded.config.checkpoints.production.clone(),
        slice_file: section.features.clone(),
        facts,
        inputs: slice.input_names(&features),
        features,
        slice,
        scaled,
        engine,
        outputs,
        heads,
        ruleset,
        decisions,
    })
}

/// Every input the model takes is a number after scaling; else an error at the row (for windows, at
/// the bar that holds the value: it may sit lines above the window's last bar).
fn all_finite(slice: &Slice, scaled: &Matrix, facts: &Facts) -> Result<()> {
    if let Some(&r) = scaled.non_finite_rows().first() {
        let bars = slice.bars();
        let row = match &slice.windows {
            None => r,
            Some(w) => {
                let f = slice.features.cols;
                let k = scaled
                    .row(r)
                    .iter()
                    .position(|v| !v.is_finite())
                    .unwrap_or(0);
                w.of(r)[k / f]
            }
        };
        return Err(Error::at(
            bars.location(row),
            format!(
                "slice row {} has a value the model cannot take after scaling (NaN policy `{}`)",
                bars.key(row),
                facts.code.nan_policy.value.as_str().unwrap_or("?")
            ),
        ));
    }
    Ok(())
}

impl Inputs {
    /// The integrated-gradients baseline in scaled units.
    pub fn baseline(&self, which: IgBaseline) -> Vec<f64> {
        match which {
            IgBaseline::Median => vec![0.0; self.scaled.cols],
            IgBaseline::SliceMean => (0..self.scaled.cols)
                .map(|j| {
                    // Summed in row order: the same inputs give the same bits.
                    self.scaled.column(j).iter().sum::<f64>() / self.scaled.rows as f64
                })
                .collect(),
        }
    }

    /// Every output unit of every head, in the contract's head order.
    pub fn units(&self) -> Vec<Unit> {
        self.heads
            .iter()
            .flat_map(|h| {
                let width = self.outputs[&h.name].cols;
                (0..width).map(move |k| Unit {
                    head: h.name.clone(),
                    unit: k,
                })
            })
            .collect()
    }

    /// A readable name for output `unit` of `head`: the ruleset's class name for the signal head.
    pub fn unit_label(&self, head: &str, unit: usize) -> String {
        match &self.ruleset {
            Some(rl) if rl.ruleset.signal.head == head => rl
                .ruleset
                .signal
                .classes
                .get(unit)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// The action the pipeline takes on each row: the ruleset's side, or without a ruleset the argmax
    /// class of the first softmax head. Returns the class names and each row's class index.
    pub fn actions(&self) -> Result<(String, Vec<String>, Vec<usize>)> {
        if self.ruleset.is_some() {
            let names = [Side::Short, Side::Flat, Side::Long].map(|s| s.as_str().to_owned());
            let idx = self
                .decisions
                .iter()
                .map(|d| match d.side {
                    Side::Short => 0,
                    Side::Flat => 1,
                    Side::Long => 2,
                })
                .collect();
            return Ok(("the ruleset's action".into(), names.to_vec(), idx));
        }
        let head = self
            .heads
            .iter()
            .find(|h| h.kind == "softmax")
            .ok_or_else(|| {
                Error::msg(
                    "the surrogate needs the model's actions: configure `[ruleset]`, or give the model a softmax head",
                )
            })?;
        let m = &self.outputs[&head.name];
        let idx = (0..m.rows)
            .map(|r| {
                let row = m.row(r);
                // First maximum wins, so ties break the same way everywhere.
                (0..row.len()).fold(0, |best, k| if row[k] > row[best] { k } else { best })
            })
            .collect();
        let names = (0..m.cols).map(|k| format!("{}={k}", head.name)).collect();
        Ok((format!("the argmax of head `{}`", head.name), names, idx))
    }
}

/// One output unit of one head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub head: String,
    pub unit: usize,
}

/// A number as the audit files write it: the shortest text that reads back to the same `f64`, so the
/// same bits give the same bytes everywhere.
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == 0.0 {
        // -0.0 and 0.0 print the same.
        "0".into()
    } else {
        format!("{v}")
    }
}

/// Write a file atomically, creating its directory.
pub fn write(path: &Path, contents: &str) -> Result<()> {
    crate::paths::atomic_write_creating(path, contents.as_bytes())
}

/// Canonical JSON (sorted keys, two-space indent, final newline), like every JSON file plumbline writes.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    crate::canonical::to_string(value)
        .map_err(|e| Error::msg(format!("serializing the audit: {e}")))
}
