//! # interpretation-parity (plan phase D: identical actions and risk gates)
//!
//! **What it does.** Builds one interpreter input table: for every slice row, the model's raw head
//! outputs (`<head>.<k>`, plumbline's engine) and the raw features; plus one synthetic row per risk gate
//! whose input is pushed past the gate's bound (symbol `synthetic:<gate>`), so a gate that the slice
//! never trips is still exercised. Runs the backtest and live interpreters (`[ruleset] backtest`,
//! `live`) on it and compares each row's side, size (within 1e-9) and every risk gate's decision with
//! plumbline's reference interpreter. A finding shows the first differing row, both values and how many
//! rows differ, at the ruleset line of the rule the decisions disagree on.
//!
//! **Why is this bad?** The ruleset is the contract between the model and the money. A live interpreter
//! with its own threshold, an uncapped size or a disabled risk gate trades differently from the
//! backtest that approved the strategy.
//!
//! **Example.** The live interpreter skips `volatility-cap`: `interpretation-mismatch` at
//! `name = "volatility-cap"` in ruleset.toml: first at 1710259200 BBB, live `pass`, reference `block`.

use std::path::PathBuf;

use super::{Context, Gate, Id, Model, Needs, Profile, Report};
use crate::config::CommandSpec;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::Command;
use crate::ruleset::{self, Decision, RowInputs, Side, SliceRow, extremes};
use crate::table::{Table, Values, show_key};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "interpretation-parity",
        contract: ContractKind::Interpretation,
        severity: Severity::Error,
        summary,
    }
}

pub const FAILED: Code = code(
    "interpreter-failed",
    "an interpreter crashed, timed out, wrote no table or an unreadable one",
);
pub const OUTPUT_INVALID: Code = code(
    "interpreter-output-invalid",
    "an interpreter's table lacks a column or a row, or holds an unknown side or gate verdict",
);
pub const MISMATCH: Code = code(
    "interpretation-mismatch",
    "an interpreter's side, size or risk-gate decision differs from the reference interpreter",
);

pub const GATE: Gate = Gate {
    id: Id::InterpretationParity,
    name: "interpretation-parity",
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

/// An input row that is a slice row with one input replaced.
struct Input<'a> {
    key: (String, String),
    row: Box<dyn RowInputs + 'a>,
}

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let Some(section) = &loaded.config.ruleset else {
        return Ok(Report::skipped(
            "not configured: no `[ruleset]` in plumbline.toml",
        ));
    };
    let interpreters: Vec<(&'static str, &CommandSpec)> =
        [("backtest", &section.backtest), ("live", &section.live)]
            .into_iter()
            .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
            .collect();
    if interpreters.is_empty() {
        return Ok(Report::skipped(
            "not configured: no `ruleset.backtest` or `ruleset.live`",
        ));
    }
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
    let Ok(outputs) = cx.slice_outputs(engine.as_ref(), slice) else {
        return Ok(Report::skipped(
            "the model does not run on the slice (forward-contract says why)",
        ));
    };
    let rl = cx.ruleset()?.expect("`[ruleset]` is configured");
    let rs = &rl.ruleset;
    let features = cx.facts.model_feature_names()?;
    let soft_owned = crate::contract::softmax_heads(cx.facts.heads().unwrap_or_default());
    let soft: Vec<&str> = soft_owned.iter().map(String::as_str).collect();
    let columns = crate::contract::output_columns(cx.facts.heads()?);

    // The inputs: every slice row, then one synthetic row per risk gate bound (on slice row 0).
    let base = SliceRow {
        outputs,
        slice,
        names: &features,
        row: 0,
    };
    let mut inputs: Vec<Input> = (0..slice.len())
        .map(|r| Input {
            key: slice.key_tuple(r),
            row: Box::new(SliceRow {
                outputs,
                slice,
                names: &features,
                row: r,
            }),
        })
        .collect();
    if !slice.is_empty() {
        let width = |h: &str| outputs.get(h).map(|m| m.cols);
        for e in extremes(rs, &base, &soft, width) {
            let tag = if e.up { "above" } else { "below" };
            inputs.push(Input {
                key: (
                    format!("{}", inputs.len()),
                    format!("synthetic:{}:{tag}", rs.risk_gates[e.gate].name),
                ),
                row: Box::new(e.row),
            });
        }
    }
    let reference: Vec<Decision> = inputs
        .iter()
        .map(|i| ruleset::interpret(rs, i.row.as_ref(), &soft))
        .collect();

    // The input table: timestamp, symbol, head outputs, features.
    let work = crate::protocol::workdir()?;
    let path = work.path().join("interpreter-inputs.csv");
    let mut cols: Vec<(String, Values)> = vec![
        (
            "timestamp".into(),
            Values::Text(inputs.iter().map(|i| i.key.0.clone()).collect()),
        ),
        (
            "symbol".into(),
            Values::Text(inputs.iter().map(|i| i.key.1.clone()).collect()),
        ),
    ];
    for (c, h, k) in &columns {
        cols.push((
            c.clone(),
            Values::Num(
                inputs
                    .iter()
                    .map(|i| {
                        i.row
                            .head(h)
                            .and_then(|v| v.get(*k).copied())
                            .unwrap_or(f64::NAN)
                    })
                    .collect(),
            ),
        ));
    }
    for f in &features {
        cols.push((
            f.clone(),
            Values::Num(
                inputs
                    .iter()
                    .map(|i| i.row.feature(f).unwrap_or(f64::NAN))
                    .collect(),
            ),
        ));
    }
    let refs: Vec<(&str, &Values)> = cols.iter().map(|(n, v)| (n.as_str(), v)).collect();
    crate::table::write_csv(&path, &refs, inputs.len())?;

    let mut out = Vec::new();
    let ruleset_path = loaded.resolve(&section.path);
    for (name, spec) in interpreters {
        let cmd = Command::new(
            spec,
            format!("ruleset.{name}"),
            format!("{name} interpreter"),
            section.timeout_secs,
        );
        let vars = [
            ("ruleset", ruleset_path.clone()),
            ("inputs", PathBuf::from(&path)),
        ];
        let table =
            match cmd.run_table(loaded, work.path(), &vars, &["timestamp", "symbol", "side"])? {
                Ok(t) => t,
                Err(failure) => {
                    out.push(cmd.failed(&FAILED, loaded, &failure));
                    continue;
                }
            };
        match decisions(&table, &inputs, rs) {
            Err(msg) => out.push(
                Finding::new(&OUTPUT_INVALID, format!("the {name} interpreter's table {msg}"))
                    .at(cmd.origin(cx.loaded))
                    .help("write `timestamp,symbol,side,size,gate.<name>…` with one row per input row (docs/commands.md)"),
            ),
            Ok(got) => out.extend(compare(cx, rl, &cmd, name, &inputs, &reference, &got, slice)),
        }
    }
    let sides = |s: Side| {
        reference[..slice.len()]
            .iter()
            .filter(|d| d.side == s)
            .count()
    };
    Ok(Report {
        findings: out,
        summary: format!(
            "{} rows + {} synthetic · long {} short {} flat {}",
            slice.len(),
            inputs.len() - slice.len(),
            sides(Side::Long),
            sides(Side::Short),
            sides(Side::Flat)
        ),
        skipped: None,
    })
}

/// The interpreter's decisions in input order.
fn decisions(
    t: &Table,
    inputs: &[Input],
    rs: &ruleset::Ruleset,
) -> std::result::Result<Vec<Decision>, String> {
    let keys = t.keys("timestamp", "symbol").map_err(|e| e.to_string())?;
    let index = t.index(&keys).map_err(|e| e.to_string())?;
    let side = t.text("side").ok_or("has no `side` column")?;
    let size = t.numbers("size").ok_or("has no numeric `size` column")?;
    let gates: Vec<Vec<String>> = rs
        .risk_gates
        .iter()
        .map(|g| {
            t.text(&format!("gate.{}", g.name))
                .ok_or_else(|| format!("has no `gate.{}` column", g.name))
        })
        .collect::<std::result::Result<_, _>>()?;
    inputs
        .iter()
        .map(|i| {
            let &r = index
                .get(&i.key)
                .ok_or_else(|| format!("has no row {}", show_key(&i.key)))?;
            let s = Side::parse(&side[r]).ok_or_else(|| {
                format!(
                    "says side `{}` at line {} (long, short or flat)",
                    side[r], t.lines[r]
                )
            })?;
            let blocked = gates
                .iter()
                .map(|g| match g[r].as_str() {
                    "block" => Ok(true),
                    "pass" => Ok(false),
                    other => Err(format!(
                        "says gate verdict `{other}` at line {} (pass or block)",
                        t.lines[r]
                    )),
                })
                .collect::<std::result::Result<_, _>>()?;
            Ok(Decision {
                side: s,
                size: size[r],
                blocked,
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn compare(
    cx: &Context,
    rl: &ruleset::Loaded,
    cmd: &Command,
    name: &str,
    inputs: &[Input],
    reference: &[Decision],
    got: &[Decision],
    slice: &crate::slice::Slice,
) -> Vec<Finding> {
    let rs = &rl.ruleset;
    let mut out = Vec::new();
    let row_at = |i: usize| {
        if i < slice.len() {
            slice.location(i)
        } else {
            Location::file(&slice.path).with_label("synthetic row")
        }
    };
    let mut report = |what: String,
                      key: String,
                      diffs: Vec<usize>,
                      show: &dyn Fn(usize) -> (String, String)| {
        if let Some(&i) = diffs.first() {
            let (g, r) = show(i);
            out.push(
                Finding::new(
                    &MISMATCH,
                    format!("the {name} interpreter's {what} differs from the reference: first at {}: {name} {g}, reference {r}", show_key(&inputs[i].key)),
                )
                .at(rl.location(&key))
                .related(cmd.origin(cx.loaded))
                .related(row_at(i))
                .note(format!("{} of {} rows differ", diffs.len(), inputs.len()))
                .help("read every threshold, size limit and risk gate from the ruleset; never hard-code or skip them"),
            );
        }
    };
    let side_diff: Vec<usize> = (0..inputs.len())
        .filter(|&i| got[i].side != reference[i].side)
        .collect();
    let key = side_diff.first().map_or("signal".into(), |&i| {
        if got[i].side == Side::Long || reference[i].side == Side::Long {
            "signal.enter-long".to_owned()
        } else {
            "signal.enter-short".to_owned()
        }
    });
    report("side".into(), key, side_diff, &|i| {
        (
            got[i].side.as_str().into(),
            reference[i].side.as_str().into(),
        )
    });
    let size_diff: Vec<usize> = (0..inputs.len())
        .filter(|&i| {
            got[i].side == reference[i].side
                && !crate::stats::close(got[i].size, reference[i].size, 1e-9, 0.0)
        })
        .collect();
    let key = size_diff.first().map_or("sizing".into(), |&i| {
        if got[i].size > rs.sizing.max_size || reference[i].size >= rs.sizing.max_size {
            "sizing.max-size".to_owned()
        } else {
            "sizing.per-unit".to_owned()
        }
    });
    report("size".into(), key, size_diff, &|i| {
        (
            format!("{:?}", got[i].size),
            format!("{:?}", reference[i].size),
        )
    });
    for (g, gate) in rs.risk_gates.iter().enumerate() {
        let diffs: Vec<usize> = (0..inputs.len())
            .filter(|&i| got[i].blocked[g] != reference[i].blocked[g])
            .collect();
        let verdict = |b: bool| {
            if b {
                "block".to_owned()
            } else {
                "pass".to_owned()
            }
        };
        report(
            format!("`{}` decision", gate.name),
            format!("risk-gates.{g}.name"),
            diffs,
            &|i| (verdict(got[i].blocked[g]), verdict(reference[i].blocked[g])),
        );
    }
    out
}
