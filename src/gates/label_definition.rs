//! # label-definition (target-label contract)
//!
//! **What it does.** Computes reference labels from the prices itself, as `[targets.definition]` says a
//! label is made (a forward return over `targets.horizon` bars of one price column, classed by
//! `targets.thresholds`), runs the labels builder (`builders.labels`) on the same prices, and compares
//! the two on every row whose label is known: the class column exactly, the return column (when the
//! builder writes one) within 1e-12 + 1e-9·|reference|. One finding per column, with the first differing
//! row, both values and how many rows differ.
//!
//! **Why is this bad?** Leakage only forbids a label from reading too far ahead. A labels builder with a
//! hard-coded threshold (0.005 where `THRESHOLDS` says 0.006), swapped thresholds or another price
//! column reads nothing it should not, yet trains the model on labels the contract does not describe.
//!
//! **Example.** `lab[fwd > 0.005] = LONG` in the labels code: `label-definition-mismatch` at the
//! `THRESHOLDS` line, first at 1709845200 AAA: 2 vs 1 (definition), 61 of 2385 rows differ.

use std::collections::BTreeMap;

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::builders::{bad_keys, command};
use crate::config::{DataSection, LabelDefinition, ReturnKind};
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::table::{Key, Table, show_cell, show_key, time_order};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "label-definition",
        contract: ContractKind::TargetLabel,
        severity: Severity::Error,
        summary,
    }
}

pub const MISMATCH: Code = code(
    "label-definition-mismatch",
    "the labels builder's labels differ from the ones the declared definition computes from the prices",
);
pub const UNUSABLE: Code = code(
    "label-definition-unusable",
    "the labels cannot be compared with their definition: the builder failed, a column is missing, or no label is known",
);

pub const GATE: Gate = Gate {
    id: Id::LabelDefinition,
    name: "label-definition",
    plan_script: None,
    codes: &[MISMATCH, UNUSABLE],
    needs: Needs {
        commands: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreLive],
    run,
};

/// What the comparison reads.
struct Setup<'a> {
    cx: &'a Context<'a>,
    data: &'a DataSection,
    def: &'a LabelDefinition,
    horizon: usize,
    long: f64,
    short: f64,
}

/// The reference of one row: its forward return and class.
#[derive(Clone, Copy)]
struct Reference {
    ret: f64,
    class: i64,
}

/// The labels builder's table, and its rows by key.
type Labels = (Table, BTreeMap<Key, usize>);

/// The first difference in one column, and how many rows differ.
struct Diff {
    key: Key,
    got: f64,
    want: f64,
    count: usize,
}

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let (Some(def), Some(data), Some(spec)) = (
        &loaded.config.targets.definition,
        &loaded.config.data,
        loaded
            .config
            .builders
            .as_ref()
            .and_then(|b| b.labels.as_ref()),
    ) else {
        return Ok(Report::skipped(
            "not configured: needs `[targets.definition]`, `[data]` and `builders.labels`",
        ));
    };
    let s = match setup(cx, def, data)? {
        Ok(s) => s,
        Err(f) => return Ok(Report::stopped(f, "no thresholds")),
    };
    let keys = data.key_columns();
    let prices = crate::table::read(&loaded.input("data.prices", &data.prices)?, &keys)?;
    let reference = match references(&s, &prices) {
        Ok(r) => r,
        Err(f) => return Ok(Report::stopped(*f, "prices unusable")),
    };
    let cmd = command(loaded, "labels", spec);
    let work = crate::protocol::workdir()?;
    let (table, index) = match labels_table(&s, &cmd, work.path(), &keys)? {
        Ok(t) => t,
        Err(report) => return Ok(report),
    };
    let out = compare_columns(&s, &reference, &table, &index, &cmd.origin(loaded));
    Ok(Report {
        findings: out,
        summary: format!(
            "{} labels · horizon {} · {}",
            reference.len(),
            s.horizon,
            returns_name(def.returns)
        ),
        skipped: None,
    })
}

/// The definition with the code's horizon and `long`/`short` thresholds, or the finding that they are
/// missing.
fn setup<'a>(
    cx: &'a Context<'a>,
    def: &'a LabelDefinition,
    data: &'a DataSection,
) -> Result<std::result::Result<Setup<'a>, Finding>> {
    let targets = cx.facts.targets()?;
    let (Some(&long), Some(&short)) = (
        targets.thresholds.get("long"),
        targets.thresholds.get("short"),
    ) else {
        return Ok(Err(unusable(
            cx.facts.code.thresholds.origin.clone(),
            "`THRESHOLDS` has no `long` and `short` entries to class the returns by".into(),
        )));
    };
    Ok(Ok(Setup {
        cx,
        data,
        def,
        horizon: targets.horizon as usize,
        long,
        short,
    }))
}

/// The labels builder's table on the prices, indexed by key; a failure or unusable keys stop the gate.
fn labels_table(
    s: &Setup,
    cmd: &crate::protocol::Command,
    work: &std::path::Path,
    keys: &[&str],
) -> Result<std::result::Result<Labels, Report>> {
    let loaded = s.cx.loaded;
    let vars = [("prices", loaded.resolve(&s.data.prices))];
    let table = match cmd.run_table(loaded, work, &vars, keys)? {
        Ok(t) => t,
        Err(failure) => {
            let f = cmd.failed(&UNUSABLE, loaded, &failure);
            return Ok(Err(Report::stopped(f, "labels builder failed")));
        }
    };
    match table
        .keys(&s.data.timestamp, &s.data.symbol)
        .and_then(|k| table.index(&k))
    {
        Ok(index) => Ok(Ok((table, index))),
        Err(e) => {
            let f = cmd.failed(&UNUSABLE, loaded, &bad_keys(e));
            Ok(Err(Report::stopped(f, "labels table unusable")))
        }
    }
}

/// Each compared column of the builder's table against the reference; no known label at all is a
/// finding too.
fn compare_columns(
    s: &Setup,
    reference: &BTreeMap<Key, Reference>,
    table: &Table,
    index: &BTreeMap<Key, usize>,
    script: &Location,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let known = reference.len();
    for (column, is_class) in columns(s.def) {
        let Some(values) = table.numbers(column) else {
            let why =
                format!("the labels table has no numeric column `{column}` (`targets.definition`)");
            out.push(unusable(script.clone(), why));
            continue;
        };
        if let Some(d) = compare(reference, index, values, is_class) {
            out.push(mismatch(s, column, is_class, &d, known).related(script.clone()));
        }
    }
    if known == 0 {
        let why = format!(
            "no bar of the prices has {} bars after it: no label is known",
            s.horizon
        );
        out.push(unusable(
            Location::file(s.cx.loaded.display(&s.data.prices)),
            why,
        ));
    }
    out
}

/// The columns compared: the return column (when the builder writes one), then the class column.
fn columns(def: &LabelDefinition) -> Vec<(&str, bool)> {
    let mut c: Vec<(&str, bool)> = def
        .return_column
        .iter()
        .map(|r| (r.as_str(), false))
        .collect();
    c.push((def.label_column.as_str(), true));
    c
}

fn returns_name(k: ReturnKind) -> &'static str {
    match k {
        ReturnKind::Log => "log returns",
        ReturnKind::Simple => "simple returns",
    }
}

/// The reference label of every bar with `horizon` bars after it (per symbol, in time order).
fn references(
    s: &Setup,
    prices: &Table,
) -> std::result::Result<BTreeMap<Key, Reference>, Box<Finding>> {
    let at = || Location::at(&prices.path, 1);
    let Some(price) = prices.numbers(&s.def.price) else {
        return Err(Box::new(unusable(
            at(),
            format!(
                "the prices have no numeric column `{}` (`targets.definition.price`)",
                s.def.price
            ),
        )));
    };
    let keys = prices
        .keys(&s.data.timestamp, &s.data.symbol)
        .map_err(|e| Box::new(unusable(at(), e.to_string())))?;
    let mut by_symbol: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        by_symbol.entry(k.1.as_str()).or_default().push(i);
    }
    let mut out = BTreeMap::new();
    for rows in by_symbol.values_mut() {
        rows.sort_by(|&a, &b| time_order(&keys[a].0, &keys[b].0));
        for (t, &i) in rows.iter().enumerate() {
            let Some(&j) = rows.get(t + s.horizon) else {
                break;
            };
            let ret = match s.def.returns {
                ReturnKind::Log => (price[j] / price[i]).ln(),
                ReturnKind::Simple => price[j] / price[i] - 1.0,
            };
            if ret.is_finite() {
                out.insert(
                    keys[i].clone(),
                    Reference {
                        ret,
                        class: class_of(s, ret),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The class of a forward return: strictly above `long` is long, strictly below `short` is short.
fn class_of(s: &Setup, ret: f64) -> i64 {
    let name = if ret > s.long {
        "long"
    } else if ret < s.short {
        "short"
    } else {
        "flat"
    };
    s.def.classes[name]
}

/// The builder's `values` against the reference on every known label (a missing row counts as NaN).
fn compare(
    reference: &BTreeMap<Key, Reference>,
    index: &BTreeMap<Key, usize>,
    values: &[f64],
    is_class: bool,
) -> Option<Diff> {
    let mut diff: Option<Diff> = None;
    for (k, r) in reference {
        let got = index.get(k).map_or(f64::NAN, |&i| values[i]);
        let want = if is_class { r.class as f64 } else { r.ret };
        let same = if is_class {
            got == want
        } else {
            crate::stats::close(got, want, 1e-12, 1e-9)
        };
        if same {
            continue;
        }
        let d = diff.get_or_insert(Diff {
            key: k.clone(),
            got,
            want,
            count: 0,
        });
        d.count += 1;
    }
    diff
}

/// The builder's `column` differs from the definition as `d` says (`known`: labels compared).
fn mismatch(s: &Setup, column: &str, is_class: bool, d: &Diff, known: usize) -> Finding {
    let code = &s.cx.facts.code;
    let (at, what) = if is_class {
        (
            code.thresholds.origin.clone(),
            format!("classes by long > {} and short < {}", s.long, s.short),
        )
    } else {
        (
            code.horizon.origin.clone(),
            format!(
                "{} over {} bars of `{}`",
                returns_name(s.def.returns),
                s.horizon,
                s.def.price
            ),
        )
    };
    Finding::new(
        &MISMATCH,
        format!(
            "the labels builder's `{column}` differs from the definition ({what}): first at {}: {} vs {} (definition)",
            show_key(&d.key),
            show_cell(d.got),
            show_cell(d.want)
        ),
    )
    .at(at)
    .note(format!("{} of {known} known labels differ", d.count))
    .help("compute the labels exactly as the contract defines them (horizon, thresholds, price column); if the definition changed on purpose, change it in the code and retrain")
}

/// The comparison cannot be made (`why`), at `at`.
fn unusable(at: Location, why: String) -> Finding {
    Finding::new(&UNUSABLE, why).at(at)
}
