//! # interpretation-parity (plan phase D: identical actions and risk gates)
//!
//! **What it does.** Builds one interpreter input table: for every slice row, the model's raw head
//! outputs (`<head>.<k>`, plumbline's engine) and the raw features; plus one synthetic row per risk gate
//! whose input is pushed past the gate's bound (symbol `synthetic:<gate>`), so a gate that the slice
//! never trips is still exercised; and, for gates that read a feature or a regression head, rows exactly
//! on each bound and one float either side (symbol `bound:<gate>:…`), where a tie broken the other way
//! shows. A second run gives the interpreters the ruleset with every probability bound moved to 0.5 and
//! rows whose probabilities are exactly 0.5 (symbol `tie:…`): the ties on the entry thresholds. Runs the backtest and live interpreters (`[ruleset] backtest`,
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

use std::path::{Path, PathBuf};

use super::{Context, Gate, Id, Model, Needs, Parts, Profile, Report};
use crate::config::{CommandSpec, RulesetSection};
use crate::engine::Outputs;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::Command;
use crate::ruleset::{self, Decision, RowInputs, Side, SliceRow, bound_probes, extremes};
use crate::slice::Slice;
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
        commands: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreLive],
    run,
};

/// An interpreter's table lacks a column or a row, or holds an unknown value (`msg` says which).
fn output_invalid(cx: &Context, it: &Interpreter, msg: &str) -> Finding {
    Finding::new(
        &OUTPUT_INVALID,
        format!("the {} interpreter's table {msg}", it.name),
    )
    .at(it.cmd.origin(cx.loaded))
    .help("write `timestamp,symbol,side,size,gate.<name>…` with one row per input row (docs/commands.md)")
}

/// An interpreter's decisions differ from the reference interpreter's on `m.what`.
fn mismatch(cx: &Context, rows: &Rows, it: &Interpreter, m: &Mismatch) -> Finding {
    let name = it.name;
    let f = Finding::new(
        &MISMATCH,
        format!(
            "the {name} interpreter's {} differs from the reference: first at {}: {name} {}, reference {}",
            m.what,
            show_key(&rows.inputs[m.first].key),
            m.got,
            m.reference
        ),
    )
    .at(rows.rl.location(&m.key))
    .related(it.cmd.origin(cx.loaded))
    .related(rows.location(m.first))
    .note(format!("{} of {} rows differ", m.count, rows.inputs.len()))
    .help("read every threshold, size limit and risk gate from the ruleset; never hard-code or skip them");
    match rows.note {
        Some(n) => f.note(n),
        None => f,
    }
}

/// An input row that is a slice row with one input replaced.
struct Input<'a> {
    key: (String, String),
    row: Box<dyn RowInputs + 'a>,
}

/// What the gate runs on, once every input it needs is configured.
struct Setup<'a> {
    section: &'a RulesetSection,
    interpreters: Vec<(&'static str, &'a CommandSpec)>,
    slice: &'a Slice,
    outputs: &'a Outputs,
    /// The interpreters that failed or wrote an unusable table: not run again on the tie probes.
    failed: std::cell::RefCell<Vec<&'static str>>,
}

/// The interpreters' input rows with the ruleset and the reference interpreter's decisions on them.
struct Rows<'a> {
    rl: &'a ruleset::Loaded,
    slice: &'a Slice,
    /// The slice rows (the first `slice_rows`), then the synthetic ones.
    inputs: &'a [Input<'a>],
    slice_rows: usize,
    reference: &'a [Decision],
    /// What a finding on these rows says about them, when they run on a ruleset of their own.
    note: Option<&'static str>,
}

impl Rows<'_> {
    /// Where input row `i` comes from: its slice line, or the slice file for a synthetic row.
    fn location(&self, i: usize) -> Location {
        if i < self.slice_rows {
            self.slice.location(i)
        } else {
            Location::file(&self.slice.path).with_label("synthetic row")
        }
    }
}

/// One configured interpreter (`backtest`, `live`) and its command.
struct Interpreter<'a> {
    name: &'static str,
    cmd: Command<'a>,
}

/// Where an interpreter first differs from the reference on one thing (side, size, a risk gate's
/// decision), and on how many rows.
struct Mismatch {
    /// What differs, for the message.
    what: String,
    /// The ruleset key of the rule the decisions disagree on.
    key: String,
    /// The first differing input row, and how many rows differ.
    first: usize,
    count: usize,
    /// The first differing row's values: the interpreter's, the reference's.
    got: String,
    reference: String,
}

pub fn run(cx: &Context) -> Result<Report> {
    let setup = match setup(cx) {
        Ok(s) => s,
        Err(report) => return Ok(report),
    };
    let (slice, outputs) = (setup.slice, setup.outputs);
    let rl = cx.ruleset()?.expect("`[ruleset]` is configured");
    let rs = &rl.ruleset;
    let features = cx.facts.model_feature_names()?;
    let soft_owned = crate::contract::softmax_heads(cx.facts.heads().unwrap_or_default());
    let soft: Vec<&str> = soft_owned.iter().map(String::as_str).collect();
    let table = Columns {
        heads: crate::contract::output_columns(cx.facts.heads()?),
        features: &features,
    };
    let work = crate::protocol::workdir()?;

    // The inputs: every slice row, then one synthetic row per risk gate bound (on slice row 0).
    let base = SliceRow {
        outputs,
        slice,
        names: &features,
        row: 0,
    };
    let inputs = inputs(rs, &base, &soft);
    let reference = decide_all(rs, &inputs, &soft);
    let rows = Rows {
        rl,
        slice,
        inputs: &inputs,
        slice_rows: slice.len(),
        reference: &reference,
        note: None,
    };
    let ruleset_path = cx.loaded.resolve(&setup.section.path);
    let mut out = run_interpreters(cx, &setup, &rows, &table, (work.path(), "", ruleset_path))?;

    // The tie probes: a ruleset with every bound a probability is compared with moved onto 1/2, and
    // rows whose probabilities sit exactly there (docs/ruleset.md, Ties).
    let tie_rs = ruleset::tie_ruleset(rs, &soft);
    let unblocked = ruleset::unblocked_row(
        rs,
        (0..slice.len()).map(|row| SliceRow { row, ..base }),
        &soft,
    );
    let tie_base = SliceRow {
        row: unblocked.unwrap_or(0),
        ..base
    };
    // On a row a feature gate blocks, every tie probe would be flat whatever the tie does: none then.
    let ties = match unblocked {
        Some(_) => tie_inputs(&tie_rs, &tie_base, &soft),
        None => Vec::new(),
    };
    let tie_path = work.path().join("ruleset-ties.toml");
    let text = toml::to_string(&tie_rs)
        .map_err(|e| crate::error::Error::msg(format!("the tie ruleset: {e}")))?;
    crate::paths::atomic_write(&tie_path, &text)?;
    let tie_reference = decide_all(&tie_rs, &ties, &soft);
    let tie_rows = Rows {
        inputs: &ties,
        slice_rows: 0,
        reference: &tie_reference,
        note: Some(TIE_NOTE),
        ..rows
    };
    if !ties.is_empty() {
        out.extend(run_interpreters(
            cx,
            &setup,
            &tie_rows,
            &table,
            (work.path(), "ties-", tie_path),
        )?);
    }
    let mut summary = summary(&rows, ties.len());
    if unblocked.is_none() && !slice.is_empty() {
        summary.push_str(" · no tie probes: a feature gate blocks every slice row");
    }
    Ok(Report {
        findings: out,
        summary,
        skipped: None,
    })
}

const TIE_NOTE: &str = "a tie probe: the interpreters ran on the ruleset with every bound a probability is compared with moved to 0.5, on rows whose probabilities are exactly 0.5 (docs/ruleset.md, Ties)";

/// The columns of the interpreters' input table: head outputs, then raw features.
struct Columns<'a> {
    heads: Vec<(String, String, usize)>,
    features: &'a [String],
}

/// The reference interpreter's decisions on `inputs` under `rs`.
fn decide_all(rs: &ruleset::Ruleset, inputs: &[Input], soft: &[&str]) -> Vec<Decision> {
    inputs
        .iter()
        .map(|i| ruleset::interpret(rs, i.row.as_ref(), soft))
        .collect()
}

/// Writes `rows`' input table (named with `prefix`) and runs every configured interpreter on it with the
/// ruleset at `ruleset`.
fn run_interpreters(
    cx: &Context,
    setup: &Setup,
    rows: &Rows,
    table: &Columns,
    (work, prefix, ruleset): (&Path, &str, PathBuf),
) -> Result<Vec<Finding>> {
    let path = work.join(format!("{prefix}interpreter-inputs.csv"));
    write_inputs(&path, rows.inputs, &table.heads, table.features)?;
    let vars = [("ruleset", ruleset), ("inputs", path)];
    let mut out = Vec::new();
    for &(name, spec) in &setup.interpreters {
        if setup.failed.borrow().contains(&name) {
            continue; // one failure finding per interpreter: the tie run would only repeat it
        }
        let it = Interpreter {
            name,
            cmd: Command::new(
                spec,
                format!("ruleset.{name}"),
                format!("{name} interpreter"),
                setup.section.timeout_secs,
            ),
        };
        let found = check_interpreter(cx, rows, &it, work, &vars)?;
        if found.iter().any(|f| f.code != &MISMATCH) {
            setup.failed.borrow_mut().push(name);
        }
        out.extend(found);
    }
    Ok(out)
}

/// The ruleset section, interpreters, slice and model outputs the gate runs on, or why it skips.
fn setup<'a>(cx: &'a Context) -> std::result::Result<Setup<'a>, Report> {
    let Some(section) = &cx.loaded.config.ruleset else {
        return Err(Report::skipped(cx.not_configured("`[ruleset]`")));
    };
    let interpreters: Vec<(&'static str, &CommandSpec)> =
        [("backtest", &section.backtest), ("live", &section.live)]
            .into_iter()
            .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
            .collect();
    if interpreters.is_empty() {
        return Err(Report::skipped(
            "not configured: no `ruleset.backtest` or `ruleset.live`",
        ));
    }
    let Some(slice) = cx.slice else {
        return Err(Report::skipped(cx.not_configured("`[slice]`")));
    };
    let Model::Ready(engine) = cx.model else {
        return Err(Report::skipped(
            "the model cannot be built (forward-contract says why)",
        ));
    };
    let Ok(outputs) = cx.slice_outputs(engine.as_ref(), slice) else {
        return Err(Report::skipped(
            "the model does not run on the slice (forward-contract says why)",
        ));
    };
    Ok(Setup {
        section,
        interpreters,
        slice,
        outputs,
        failed: std::cell::RefCell::new(Vec::new()),
    })
}

/// The interpreters' input rows: every slice row, then one synthetic row per risk gate bound and the
/// bound probes, built on `base` (slice row 0).
fn inputs<'a>(rs: &ruleset::Ruleset, base: &'a SliceRow<'a>, soft: &[&str]) -> Vec<Input<'a>> {
    let slice = base.slice;
    let mut inputs: Vec<Input> = (0..slice.len())
        .map(|r| Input {
            key: slice.key_tuple(r),
            row: Box::new(SliceRow { row: r, ..*base }),
        })
        .collect();
    if !slice.is_empty() {
        let width = |h: &str| base.outputs.get(h).map(|m| m.cols);
        for e in extremes(rs, base, soft, width) {
            let tag = if e.up { "above" } else { "below" };
            inputs.push(Input {
                key: (
                    format!("{}", inputs.len()),
                    format!("synthetic:{}:{tag}", rs.risk_gates[e.gate].name),
                ),
                row: Box::new(e.row),
            });
        }
        for p in bound_probes(rs, base, soft, width) {
            inputs.push(Input {
                key: (
                    format!("{}", inputs.len()),
                    format!(
                        "bound:{}:{}:{}",
                        rs.risk_gates[p.gate].name, p.bound, p.place
                    ),
                ),
                row: Box::new(p.row),
            });
        }
        // A gate's feature unknown: NaN blocks (fail closed), whatever the comparison says.
        for g in &rs.risk_gates {
            if let Some(ruleset::Read::Feature(f)) = g.read() {
                inputs.push(Input {
                    key: (format!("{}", inputs.len()), format!("nan:{}", g.name)),
                    row: Box::new(ruleset::Overridden {
                        base,
                        head: None,
                        feature: Some((f, f64::NAN)),
                    }),
                });
            }
        }
    }
    inputs
}

/// The tie probes as input rows (symbol `tie:<head>:<class>=<class>=0.5`).
fn tie_inputs<'a>(rs: &ruleset::Ruleset, base: &'a SliceRow<'a>, soft: &[&str]) -> Vec<Input<'a>> {
    if base.slice.is_empty() {
        return Vec::new();
    }
    let width = |h: &str| base.outputs.get(h).map(|m| m.cols);
    let class = |h: &str, k: usize| {
        (h == rs.signal.head)
            .then(|| rs.signal.classes.get(k).cloned())
            .flatten()
            .unwrap_or_else(|| k.to_string())
    };
    ruleset::tie_probes(rs, base, soft, width)
        .into_iter()
        .enumerate()
        .map(|(i, p)| Input {
            key: (
                i.to_string(),
                format!(
                    "tie:{}:{}={}={}",
                    p.head,
                    class(&p.head, p.pair.0),
                    class(&p.head, p.pair.1),
                    ruleset::TIE
                ),
            ),
            row: Box::new(p.row),
        })
        .collect()
}

/// Writes the interpreters' input table: timestamp, symbol, head outputs, features.
fn write_inputs(
    path: &Path,
    inputs: &[Input],
    columns: &[(String, String, usize)],
    features: &[String],
) -> Result<()> {
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
    for (c, h, k) in columns {
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
    for f in features {
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
    crate::table::write_csv(path, &refs, inputs.len())
}

/// Runs one interpreter on the input table: a finding if it fails or writes an unusable table, else
/// one per thing its decisions differ from the reference's on.
fn check_interpreter(
    cx: &Context,
    rows: &Rows,
    it: &Interpreter,
    work: &Path,
    vars: &[(&str, PathBuf)],
) -> Result<Vec<Finding>> {
    let keys = ["timestamp", "symbol", "side"];
    let table = match it.cmd.run_table(cx.loaded, work, vars, &keys)? {
        Ok(t) => t,
        Err(failure) => return Ok(vec![it.cmd.failed(&FAILED, cx.loaded, &failure)]),
    };
    Ok(match decisions(&table, rows.inputs, &rows.rl.ruleset) {
        Err(msg) => vec![output_invalid(cx, it, &msg)],
        Ok(got) => compare(cx, rows, it, &got),
    })
}

/// The summary: slice, synthetic and tie rows, and the reference's sides on the slice rows.
fn summary(rows: &Rows, ties: usize) -> String {
    let n = rows.slice_rows;
    let sides = |s: Side| rows.reference[..n].iter().filter(|d| d.side == s).count();
    format!(
        "{} rows + {} synthetic + {ties} ties · long {} short {} flat {}",
        n,
        rows.inputs.len() - n,
        sides(Side::Long),
        sides(Side::Short),
        sides(Side::Flat)
    )
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

/// Where an interpreter's decisions (`got`) differ from the reference's: the side, the size, then each
/// risk gate's decision.
fn compare(cx: &Context, rows: &Rows, it: &Interpreter, got: &[Decision]) -> Vec<Finding> {
    let (rs, reference) = (&rows.rl.ruleset, rows.reference);
    let mut found = vec![
        side_mismatch(got, reference),
        size_mismatch(rs, got, reference),
    ];
    found.extend(
        rs.risk_gates
            .iter()
            .enumerate()
            .map(|(g, gate)| gate_mismatch((g, &gate.name), got, reference)),
    );
    found
        .iter()
        .flatten()
        .map(|m| mismatch(cx, rows, it, m))
        .collect()
}

/// The input rows where `differs` holds, in order.
fn differing(n: usize, differs: impl Fn(usize) -> bool) -> Vec<usize> {
    (0..n).filter(|&i| differs(i)).collect()
}

/// Where the sides differ, at the entry threshold of the first difference.
fn side_mismatch(got: &[Decision], reference: &[Decision]) -> Option<Mismatch> {
    let rows = differing(got.len(), |i| got[i].side != reference[i].side);
    let &i = rows.first()?;
    let key = if got[i].side == Side::Long || reference[i].side == Side::Long {
        "signal.enter-long"
    } else {
        "signal.enter-short"
    };
    Some(Mismatch {
        what: "side".into(),
        key: key.into(),
        first: i,
        count: rows.len(),
        got: got[i].side.as_str().into(),
        reference: reference[i].side.as_str().into(),
    })
}

/// Where the sides agree and the sizes differ (beyond 1e-9), at the sizing rule of the first difference.
fn size_mismatch(
    rs: &ruleset::Ruleset,
    got: &[Decision],
    reference: &[Decision],
) -> Option<Mismatch> {
    let rows = differing(got.len(), |i| {
        got[i].side == reference[i].side
            && !crate::stats::close(got[i].size, reference[i].size, 1e-9, 0.0)
    });
    let &i = rows.first()?;
    let key = if got[i].size > rs.sizing.max_size || reference[i].size >= rs.sizing.max_size {
        "sizing.max-size"
    } else {
        "sizing.per-unit"
    };
    Some(Mismatch {
        what: "size".into(),
        key: key.into(),
        first: i,
        count: rows.len(),
        got: format!("{:?}", got[i].size),
        reference: format!("{:?}", reference[i].size),
    })
}

/// Where risk gate `g` (named `name`) decides otherwise.
fn gate_mismatch(
    (g, name): (usize, &str),
    got: &[Decision],
    reference: &[Decision],
) -> Option<Mismatch> {
    let rows = differing(got.len(), |i| got[i].blocked[g] != reference[i].blocked[g]);
    let &i = rows.first()?;
    let verdict = |b: bool| if b { "block" } else { "pass" };
    Some(Mismatch {
        what: format!("`{name}` decision"),
        key: format!("risk-gates.{g}.name"),
        first: i,
        count: rows.len(),
        got: verdict(got[i].blocked[g]).into(),
        reference: verdict(reference[i].blocked[g]).into(),
    })
}
