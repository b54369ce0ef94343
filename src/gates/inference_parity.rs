//! # inference-parity (plan phase D: dual-run inference)
//!
//! **What it does.** Runs the pipeline's backtest and live inference paths (`[inference]`: load the
//! checkpoint, scale, forward) on the slice's raw features and compares their outputs, per head output
//! `<head>.<k>` and row (joined on timestamp + symbol), with plumbline's engine on the same rows and
//! with each other, within `tolerance` (absolute, default 1e-5: the float32 model run by two float
//! implementations differs by ~1e-7).
//!
//! **Why is this bad?** The backtest approved one model; if the live path scales with other statistics,
//! loads another file or orders the heads differently, live trades a different model. Nothing crashes.
//!
//! **Example.** The live path scales `vol_20` with a median from the previous run:
//! `inference-mismatch` at `live/infer.py`: first at 1710169200 AAA, `direction.0` -0.5774 vs -0.6100
//! (plumbline's engine).

use std::path::PathBuf;

use super::{Context, Gate, Id, Model, Needs, Profile, Report};
use crate::config::CommandSpec;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::Command;
use crate::table::{Table, show_key};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "inference-parity",
        contract: ContractKind::HeadMapping,
        severity: Severity::Error,
        summary,
    }
}

pub const FAILED: Code = code(
    "inference-failed",
    "an inference path crashed, timed out, wrote no table or an unreadable one",
);
pub const OUTPUT_INVALID: Code = code(
    "inference-output-invalid",
    "an inference path's table lacks a head output column or a slice row",
);
pub const MISMATCH: Code = code(
    "inference-mismatch",
    "an inference path's outputs differ from plumbline's engine or from the other path",
);

pub const GATE: Gate = Gate {
    id: Id::InferenceParity,
    name: "inference-parity",
    plan_script: None,
    codes: &[FAILED, OUTPUT_INVALID, MISMATCH],
    needs: Needs {
        engine: true,
        slice: true,
        base: false,
    },
    profiles: &[Profile::PreLive],
    run,
};

struct PathOut<'a> {
    name: &'static str,
    cmd: Command<'a>,
    /// Per slice row, per output column (NaN where missing).
    values: Vec<Vec<f64>>,
}

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let Some(inf) = &loaded.config.inference else {
        return Ok(Report::skipped(
            "not configured: no `[inference]` in plumbline.toml",
        ));
    };
    let Some(slice) = cx.slice else {
        return Ok(Report::skipped(
            "not configured: no `[slice]` in plumbline.toml",
        ));
    };
    let Model::Ready(engine) = cx.model else {
        return Ok(Report::skipped(
            "the model cannot be built (forward-contract says why)",
        ));
    };
    let paths: Vec<(&'static str, &CommandSpec)> =
        [("backtest", &inf.backtest), ("live", &inf.live)]
            .into_iter()
            .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
            .collect();
    if paths.is_empty() {
        return Ok(Report::skipped(
            "not configured: no `inference.backtest` or `inference.live`",
        ));
    }
    let Ok(reference) = cx.slice_outputs(engine.as_ref(), slice) else {
        return Ok(Report::skipped(
            "the model does not run on the slice (forward-contract says why)",
        ));
    };
    let columns = crate::contract::output_columns(cx.facts.heads()?);
    let section = loaded
        .config
        .slice
        .as_ref()
        .expect("a slice is loaded only from [slice]");
    let checkpoint_rel = inf
        .checkpoint
        .as_deref()
        .unwrap_or(&loaded.config.checkpoints.production);
    let checkpoint = loaded.resolve(checkpoint_rel);
    let features = loaded.resolve(&section.features);
    let keys: Vec<&str> = [section.timestamp.as_str(), section.symbol.as_str()]
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let work = crate::protocol::workdir()?;
    let mut out = Vec::new();
    let mut ran: Vec<PathOut> = Vec::new();
    for (name, spec) in paths {
        let cmd = Command::new(
            spec,
            format!("inference.{name}"),
            format!("{name} inference path"),
            inf.timeout_secs,
        );
        let vars = [
            ("checkpoint", checkpoint.clone()),
            ("features", PathBuf::from(&features)),
        ];
        let table = match cmd.run_table(loaded, work.path(), &vars, &keys)? {
            Ok(t) => t,
            Err(failure) => {
                out.push(cmd.failed(&FAILED, loaded, &failure));
                continue;
            }
        };
        match align(&table, slice, section, &columns) {
            Ok(values) => ran.push(PathOut { name, cmd, values }),
            Err(msg) => out.push(
                Finding::new(&OUTPUT_INVALID, format!("the {name} inference path's table {msg}"))
                    .at(cmd.origin(cx.loaded))
                    .help("write `timestamp,symbol,<head>.<k>…` with one row per input row (docs/commands.md)"),
            ),
        }
    }
    let engine_values = |r: usize, (_, head, k): &(String, String, usize)| {
        reference.get(head).map_or(f64::NAN, |m| m.row(r)[*k])
    };
    let tol = inf.tolerance;
    let mut worst = 0.0f64;
    let mut against_engine = Vec::new();
    for p in &ran {
        let diff = compare(
            &p.values,
            |r, c| engine_values(r, &columns[c]),
            columns.len(),
            tol,
            &mut worst,
        );
        if let Some((r, c, n)) = diff {
            against_engine.push(p.name);
            out.push(mismatch(
                cx,
                slice,
                p,
                "plumbline's engine",
                &columns[c].0,
                r,
                p.values[r][c],
                engine_values(r, &columns[c]),
                n,
                tol,
                checkpoint_rel,
            ));
        }
    }
    if let [a, b] = ran.as_slice()
        && against_engine.is_empty()
        && let Some((r, c, n)) = compare(
            &b.values,
            |r, c| a.values[r][c],
            columns.len(),
            tol,
            &mut worst,
        )
    {
        out.push(mismatch(
            cx,
            slice,
            b,
            "the backtest path",
            &columns[c].0,
            r,
            b.values[r][c],
            a.values[r][c],
            n,
            tol,
            checkpoint_rel,
        ));
    }
    Ok(Report {
        findings: out,
        summary: format!(
            "{} paths · {} rows · max Δ {worst:.1e}",
            ran.len(),
            slice.len()
        ),
        skipped: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn mismatch(
    cx: &Context,
    slice: &crate::slice::Slice,
    p: &PathOut,
    other: &str,
    column: &str,
    r: usize,
    got: f64,
    want: f64,
    n: usize,
    tol: f64,
    checkpoint: &str,
) -> Finding {
    Finding::new(
        &MISMATCH,
        format!(
            "the {} inference path's `{column}` differs from {other}: first at {}: {got:?} vs {want:?}",
            p.name,
            slice.key(r),
        ),
    )
    .at(p.cmd.origin(cx.loaded))
    .related(slice.location(r))
    .related(Location::file(cx.loaded.display(checkpoint)).with_label("inference.checkpoint"))
    .note(format!("{n} row × output values differ by more than {tol:e}"))
    .help("both paths must load the same checkpoint, scale with its median/MAD and NaN policy, and key heads by name")
}

/// First (row, column) over tolerance and how many values are.
fn compare(
    a: &[Vec<f64>],
    b: impl Fn(usize, usize) -> f64,
    cols: usize,
    tol: f64,
    worst: &mut f64,
) -> Option<(usize, usize, usize)> {
    let mut first = None;
    let mut n = 0;
    for (r, row) in a.iter().enumerate() {
        for (c, v) in row.iter().enumerate().take(cols) {
            let d = (v - b(r, c)).abs();
            if d.is_nan() || d > tol {
                n += 1;
                first.get_or_insert((r, c));
            } else {
                *worst = worst.max(d);
            }
        }
    }
    first.map(|(r, c)| (r, c, n))
}

/// The path's values in slice row order, or what is wrong with its table.
fn align(
    t: &Table,
    slice: &crate::slice::Slice,
    section: &crate::config::SliceSection,
    columns: &[(String, String, usize)],
) -> std::result::Result<Vec<Vec<f64>>, String> {
    let keys = t
        .keys(&section.timestamp, &section.symbol)
        .map_err(|e| e.to_string())?;
    let index = t.index(&keys).map_err(|e| e.to_string())?;
    let cols: Vec<&[f64]> = columns
        .iter()
        .map(|(c, _, _)| {
            t.numbers(c).ok_or_else(|| {
                format!(
                    "has no numeric column `{c}` (columns: {})",
                    t.names().join(", ")
                )
            })
        })
        .collect::<std::result::Result<_, _>>()?;
    (0..slice.len())
        .map(|r| {
            let key = slice.key_tuple(r);
            let &i = index
                .get(&key)
                .ok_or_else(|| format!("has no row {}", show_key(&key)))?;
            Ok(cols.iter().map(|c| c[i]).collect())
        })
        .collect()
}
