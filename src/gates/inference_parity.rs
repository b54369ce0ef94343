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

use std::path::Path;

use super::{Context, Gate, Id, Model, Needs, Parts, Profile, Report};
use crate::config::{CommandSpec, InferenceSection, SliceSection};
use crate::engine::Outputs;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::Command;
use crate::slice::Slice;
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
        commands: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreLive],
    run,
};

/// An inference path's table lacks a column or a slice row (`msg` says which).
fn output_invalid(cx: &Context, name: &str, cmd: &Command, msg: &str) -> Finding {
    Finding::new(
        &OUTPUT_INVALID,
        format!("the {name} inference path's table {msg}"),
    )
    .at(cmd.origin(cx.loaded))
    .help("write `timestamp,symbol,<head>.<k>…` with one row per input row (docs/commands.md)")
}

/// An inference path's outputs differ from `m.other`'s.
fn mismatch(run: &Run, m: &Mismatch) -> Finding {
    let (cx, slice, r) = (run.cx, run.slice, m.row);
    Finding::new(
        &MISMATCH,
        format!(
            "the {} inference path's `{}` differs from {}: first at {}: {:?} vs {:?}",
            m.path.name,
            run.columns[m.column].0,
            m.other,
            slice.key(r),
            m.got,
            m.want,
        ),
    )
    .at(m.path.cmd.origin(cx.loaded))
    .related(row_location(slice, r))
    .related(Location::file(cx.loaded.display(run.checkpoint)).with_label("inference.checkpoint"))
    .note(format!(
        "{} row × output values differ by more than {:e}",
        m.count, run.tol
    ))
    .help("both paths must load the same checkpoint, scale with its scaler (kind, statistics, factor, epsilon, clip) and NaN policy, and key heads by name")
}

/// Where row `r` comes from: its slice line (for a NaN probe, the line of the row it is made from).
fn row_location(slice: &Slice, r: usize) -> Location {
    let at = slice.location(r);
    match slice.symbols[r].as_deref() {
        Some(s) if s.starts_with("~nan:") => at.with_label("the row this NaN probe is made from"),
        _ => at,
    }
}

struct PathOut<'a> {
    name: &'static str,
    cmd: Command<'a>,
    /// Per slice row, per output column (NaN where missing).
    values: Vec<Vec<f64>>,
}

/// What the gate runs on, once every input it needs is configured.
struct Setup<'a> {
    inf: &'a InferenceSection,
    slice: &'a Slice,
    paths: Vec<(&'static str, &'a CommandSpec)>,
    /// plumbline's engine's outputs on the slice.
    reference: &'a Outputs,
}

/// What the paths run on and are compared with: the slice, the output columns, the checkpoint both
/// load (as configured) and the tolerance.
struct Run<'a> {
    cx: &'a Context<'a>,
    /// The slice's rows, then the NaN probes.
    slice: &'a Slice,
    /// That table as the paths read it (`{features}`).
    features: &'a Path,
    section: &'a SliceSection,
    columns: &'a [(String, String, usize)],
    checkpoint: &'a str,
    tol: f64,
}

/// The first value over tolerance between a path and what it is compared with, and how many are.
struct Mismatch<'a> {
    path: &'a PathOut<'a>,
    /// What the path is compared with, for the message.
    other: &'static str,
    row: usize,
    column: usize,
    count: usize,
    got: f64,
    want: f64,
}

pub fn run(cx: &Context) -> Result<Report> {
    let setup = match setup(cx) {
        Ok(s) => s,
        Err(report) => return Ok(report),
    };
    let loaded = cx.loaded;
    let columns = crate::contract::output_columns(cx.facts.heads()?);
    let section = loaded
        .config
        .slice
        .as_ref()
        .expect("a slice is loaded only from [slice]");
    let work = crate::protocol::workdir()?;
    let names = cx.facts.model_feature_names()?;
    let (rows, reference, probes) = probed(cx, &setup, &names);
    let features = work.path().join("features.csv");
    rows.write_csv(&features, section, &names)?;
    let run = Run {
        cx,
        slice: &rows,
        features: &features,
        section,
        columns: &columns,
        checkpoint: setup
            .inf
            .checkpoint
            .as_deref()
            .unwrap_or(&loaded.config.checkpoints.production),
        tol: setup.inf.tolerance,
    };
    let (ran, mut out) = run_paths(&run, &setup, work.path())?;
    let mut worst = 0.0f64;
    let against_engine = against_engine(&run, &reference, &ran, &mut worst);
    let agree = against_engine.is_empty();
    out.extend(against_engine);
    if agree {
        out.extend(between_paths(&run, &ran, &mut worst));
    }
    Ok(Report {
        findings: out,
        summary: format!(
            "{} · {} {} + {probes} NaN probes · max Δ {worst:.1e}",
            crate::text::plural(ran.len(), "path"),
            setup.slice.len(),
            if setup.slice.windows.is_some() {
                "windows"
            } else {
                "rows"
            }
        ),
        skipped: None,
    })
}

/// The inference section, slice, paths and engine outputs the gate runs on, or why it skips.
fn setup<'a>(cx: &'a Context) -> std::result::Result<Setup<'a>, Report> {
    let Some(inf) = &cx.loaded.config.inference else {
        return Err(Report::skipped(cx.not_configured("`[inference]`")));
    };
    let Some(slice) = cx.slice else {
        return Err(Report::skipped(cx.not_configured("`[slice]`")));
    };
    let Model::Ready(engine) = cx.model else {
        return Err(Report::skipped(
            "the model cannot be built (forward-contract says why)",
        ));
    };
    let paths: Vec<(&'static str, &CommandSpec)> =
        [("backtest", &inf.backtest), ("live", &inf.live)]
            .into_iter()
            .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
            .collect();
    if paths.is_empty() {
        return Err(Report::skipped(
            "not configured: no `inference.backtest` or `inference.live`",
        ));
    }
    let Ok(reference) = cx.slice_outputs(engine.as_ref(), slice) else {
        return Err(Report::skipped(
            "the model does not run on the slice (forward-contract says why)",
        ));
    };
    Ok(Setup {
        inf,
        slice,
        paths,
        reference,
    })
}

/// The rows the paths run on, the engine's outputs on them, and how many are NaN probes: the slice, then
/// (with a symbol column) its first row with each feature NaN in turn and with every feature NaN, which
/// a slice without empty cells never shows a path (NaN filled before scaling instead of after).
fn probed(cx: &Context, setup: &Setup, names: &[String]) -> (Slice, Outputs, usize) {
    let whole = || (setup.slice.clone(), setup.reference.clone(), 0);
    // A policy that drops or rejects NaN rows acts before the model: there is no output to compare.
    let policy = cx.facts.nan_policy();
    if policy != crate::scaler::NanPolicy::ZeroFill {
        return whole();
    }
    let (Some(probes), Model::Ready(engine), Ok(scaler)) =
        (setup.slice.nan_probes(names), cx.model, cx.facts.scaler())
    else {
        return whole();
    };
    let scaled = probes.model_inputs(&scaler, &policy);
    let Ok(outputs) = engine.forward(&scaled) else {
        return whole();
    };
    let mut reference = setup.reference.clone();
    for (head, m) in &mut reference {
        let Some(more) = outputs.get(head) else {
            return whole();
        };
        m.data.extend_from_slice(&more.data);
        m.rows += more.rows;
    }
    (setup.slice.concat(&probes), reference, probes.len())
}

/// Runs each configured path: the paths that gave a usable table, and findings on those that did not.
fn run_paths<'a>(
    run: &Run,
    setup: &Setup<'a>,
    work: &Path,
) -> Result<(Vec<PathOut<'a>>, Vec<Finding>)> {
    let loaded = run.cx.loaded;
    let vars = [
        ("checkpoint", loaded.resolve(run.checkpoint)),
        ("features", run.features.to_path_buf()),
    ];
    let keys = run.section.key_columns();
    let mut out = Vec::new();
    let mut ran = Vec::new();
    for &(name, spec) in &setup.paths {
        let cmd = Command::new(
            spec,
            format!("inference.{name}"),
            format!("{name} inference path"),
            setup.inf.timeout_secs,
        );
        let table = match cmd.run_table(loaded, work, &vars, &keys)? {
            Ok(t) => t,
            Err(failure) => {
                out.push(cmd.failed(&FAILED, loaded, &failure));
                continue;
            }
        };
        match align(&table, run.slice, run.section, run.columns) {
            Ok(values) => ran.push(PathOut { name, cmd, values }),
            Err(msg) => out.push(output_invalid(run.cx, name, &cmd, &msg)),
        }
    }
    Ok((ran, out))
}

/// Each path's outputs against plumbline's engine: a finding per path that differs.
fn against_engine(
    run: &Run,
    reference: &Outputs,
    ran: &[PathOut],
    worst: &mut f64,
) -> Vec<Finding> {
    let engine_values = |r: usize, (_, head, k): &(String, String, usize)| {
        reference.get(head).map_or(f64::NAN, |m| m.row(r)[*k])
    };
    let mut out = Vec::new();
    for p in ran {
        let diff = compare(
            &p.values,
            |r, c| engine_values(r, &run.columns[c]),
            run.columns.len(),
            run.tol,
            worst,
        );
        if let Some((row, column, count)) = diff {
            out.push(mismatch(
                run,
                &Mismatch {
                    path: p,
                    other: "plumbline's engine",
                    row,
                    column,
                    count,
                    got: p.values[row][column],
                    want: engine_values(row, &run.columns[column]),
                },
            ));
        }
    }
    out
}

/// The live path's outputs against the backtest path's, when both ran.
fn between_paths(run: &Run, ran: &[PathOut], worst: &mut f64) -> Option<Finding> {
    let [a, b] = ran else {
        return None;
    };
    let (row, column, count) = compare(
        &b.values,
        |r, c| a.values[r][c],
        run.columns.len(),
        run.tol,
        worst,
    )?;
    Some(mismatch(
        run,
        &Mismatch {
            path: b,
            other: "the backtest path",
            row,
            column,
            count,
            got: b.values[row][column],
            want: a.values[row][column],
        },
    ))
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
    slice: &Slice,
    section: &SliceSection,
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
