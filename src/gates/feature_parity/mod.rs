//! # feature-parity (plan script 07_feature_pipeline_parity)
//!
//! **What it does.** Runs the pipeline's feature builders (`[builders]`: training, backtest, live) on
//! the same price data (`[data] prices`), reads the tables they write, and compares each with the
//! training builder's, joined on timestamp (+ symbol): the feature columns and their order against the
//! contract, the rows, the stored dtypes (Parquet), and every value (|a − b| ≤ atol + rtol·|b|, NaN
//! equals NaN). A finding names the feature, the first differing row, both values and how many rows
//! differ, at the builder's line for that feature when the builder declares its `columns`. Every builder
//! also runs on a table of edge-case symbols (`crate::edge_prices`), compared the same way, and on
//! tables of bad bars, which they must all refuse or all compute alike (`bad_bars`).
//!
//! **Why is this bad?** Three implementations of the same features (vectorised for training, a loop
//! for the backtest, incremental for live) drift apart silently: the model is then evaluated on one
//! feature vector and traded on another.
//!
//! **Example.** The live builder writes 0.0 where the training builder has NaN for `ma_gap_50` during
//! the warm-up: `feature-value-mismatch` at the live builder's `"ma_gap_50",` line, first at
//! 1709827200 AAA, 147 of 2,400 rows differ.

mod bad_bars;

use std::collections::BTreeMap;
use std::path::Path;

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::builders::{bad_keys, builders, command, declared_columns};
use crate::config::{CommandSpec, DataSection, FeatureParitySettings, Loaded};
use crate::edge_prices::{Layout, Written};
use crate::error::Result;
use crate::facts::Facts;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::Command;
use crate::source::Fact;
use crate::stats::close;
use crate::table::{Key, Table, show_cell, show_key};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "feature-parity",
        contract: ContractKind::FeatureVector,
        severity: Severity::Error,
        summary,
    }
}

pub const BUILDER_FAILED: Code = code(
    "builder-failed",
    "a feature builder crashed, timed out, wrote no table or an unreadable one",
);
pub const COLUMNS_MISMATCH: Code = code(
    "builder-columns-mismatch",
    "a builder writes other feature columns than the contract (missing or extra)",
);
pub const COLUMN_ORDER: Code = code(
    "builder-column-order",
    "a builder writes the contract's feature columns in another order",
);
pub const ROWS_MISMATCH: Code = code(
    "builder-rows-mismatch",
    "a builder writes rows (timestamp, symbol) the training builder does not, or misses some",
);
pub const DTYPE_MISMATCH: Code = code(
    "builder-dtype-mismatch",
    "a builder stores a feature with another dtype than the training builder",
);
pub const VALUE_MISMATCH: Code = code(
    "feature-value-mismatch",
    "a builder computes a feature differently from the training builder",
);
pub const NO_ROWS: Code = code(
    "builder-no-rows",
    "a builder writes no row with every feature set (no rows, or warm-up only): nothing of it is compared",
);
pub const ANCHOR_MISMATCH: Code = code(
    "feature-anchor-mismatch",
    "a builder computes a feature differently from the training-time features (the slice, or `[data] anchor`)",
);
pub const ANCHOR_UNUSABLE: Code = code(
    "feature-anchor-unusable",
    "the training-time features cannot anchor a builder: unreadable, a feature missing, or no row shared past the builder's warm-up",
);

pub const BAD_BARS_DISAGREE: Code = code(
    "bad-bars-disagree",
    "one builder refuses a table of bad bars (a zero price, a bar twice) that another computes on",
);

pub const GATE: Gate = Gate {
    id: Id::FeatureParity,
    name: "feature-parity",
    plan_script: Some("07_feature_pipeline_parity"),
    codes: &[
        BUILDER_FAILED,
        COLUMNS_MISMATCH,
        COLUMN_ORDER,
        ROWS_MISMATCH,
        DTYPE_MISMATCH,
        VALUE_MISMATCH,
        NO_ROWS,
        ANCHOR_MISMATCH,
        ANCHOR_UNUSABLE,
        BAD_BARS_DISAGREE,
    ],
    needs: Needs {
        commands: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreLive],
    run,
};

/// Where a finding about `feature` in a builder points: its line in the builder's declared columns, or
/// the builder's script.
fn feature_location(
    loaded: &Loaded,
    cmd: &Command,
    declared: &Option<(Vec<String>, Fact)>,
    feature: &str,
) -> Location {
    if let Some((names, fact)) = declared {
        return match names.iter().position(|n| n == feature) {
            Some(i) => fact.item(i).with_label(format!("feature `{feature}`")),
            None => fact.origin.clone(),
        };
    }
    cmd.origin(loaded)
}

/// The builder `b` writes feature columns the contract lacks (`extra`), or lacks some (`missing`).
fn columns_mismatch(p: &Parity, b: &BuilderRun, missing: &[&str], extra: &[&str]) -> Finding {
    let at = match &b.declared {
        Some((_, fact)) => fact.origin.clone(),
        None => feature_location(p.loaded, &b.cmd, &b.declared, ""),
    };
    let mut f = Finding::new(
        &COLUMNS_MISMATCH,
        format!(
            "the {} builder writes other feature columns than the contract",
            b.name
        ),
    )
    .at(at)
    .related(p.facts.code.columns.origin.clone())
    .help("write exactly the contract's features, in its order (FEATURE_COLS)");
    if !missing.is_empty() {
        f = f.note(format!("missing: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        f = f.note(format!("not in the contract: {}", extra.join(", ")));
    }
    f
}

/// The builder `b` writes `written` at position `i`, where the contract has another feature.
fn column_order(p: &Parity, b: &BuilderRun, i: usize, written: &str) -> Finding {
    Finding::new(
        &COLUMN_ORDER,
        format!(
            "the {} builder writes `{written}` at position {i} where the contract has `{}`",
            b.name, p.names[i]
        ),
    )
    .at(feature_location(p.loaded, &b.cmd, &b.declared, written))
    .related(p.contract_line(&p.names[i]))
    .help("write the features in the contract's order; consumers that take columns by position read the wrong feature")
}

/// The builder of `pair` writes rows the training builder does not (`only_other`), or misses some
/// (`only_training`).
fn rows_mismatch(p: &Parity, pair: &Pair, only_training: &[&Key], only_other: &[&Key]) -> Finding {
    let name = pair.other.name;
    let mut f = Finding::new(
        &ROWS_MISMATCH,
        format!("the {name} builder and the training builder write different rows"),
    )
    .at(feature_location(p.loaded, &pair.other.cmd, &None, ""));
    if let Some(k) = only_training.first() {
        f = f.note(format!(
            "{} rows only from the training builder, first {}",
            only_training.len(),
            show_key(k)
        ));
    }
    if let Some(k) = only_other.first() {
        f = f.note(format!(
            "{} rows only from the {name} builder, first {}",
            only_other.len(),
            show_key(k)
        ));
    }
    f.help("emit one row per input bar, warm-up rows included (with empty cells)")
}

/// The builder of `pair` stores `feature` as `theirs`, the training builder as `training`.
fn dtype_mismatch(p: &Parity, pair: &Pair, feature: &str, training: &str, theirs: &str) -> Finding {
    let b = pair.other;
    Finding::new(
        &DTYPE_MISMATCH,
        format!(
            "the {} builder stores `{feature}` as {theirs}, the training builder as {training}",
            b.name
        ),
    )
    .at(feature_location(p.loaded, &b.cmd, &b.declared, feature))
    .related(p.contract_line(feature))
}

/// The builder of `pair` writes `feature` as text.
fn not_numeric(p: &Parity, pair: &Pair, feature: &str) -> Finding {
    let b = pair.other;
    Finding::new(
        &VALUE_MISMATCH,
        format!("the {} builder's `{feature}` is not numeric", b.name),
    )
    .at(feature_location(p.loaded, &b.cmd, &b.declared, feature))
}

/// The builder of `pair` computes `feature` differently from the training builder, as `d` says.
fn value_mismatch(p: &Parity, pair: &Pair, feature: &str, d: &ValueDiff) -> Finding {
    let (b, settings) = (pair.other, p.settings);
    let mut f = Finding::new(
        &VALUE_MISMATCH,
        format!(
            "`{feature}` differs between the {} and training builders: first at {}: {} vs {} (training)",
            b.name,
            show_key(d.key),
            show_cell(d.value),
            show_cell(d.training)
        ),
    )
    .at(feature_location(p.loaded, &b.cmd, &b.declared, feature))
    .related(p.contract_line(feature))
    .note(format!(
        "{} of {} rows differ (atol {:e}, rtol {:e})",
        d.differing, d.rows, settings.atol, settings.rtol
    ));
    if d.float32 {
        f = f.note(format!("every value the {} builder writes for `{feature}` is exactly a float32: it computes or stores in float32", b.name));
    }
    if let Some(what) = p.edges.describe(&d.key.1) {
        f = f.note(format!(
            "`{}` is an edge-case symbol plumbline adds to the prices: {what} (`[gates.feature-parity] edge-symbols`)",
            d.key.1
        ));
    }
    f.help("the builders must compute the same value from the same bars; compare the two implementations of this feature")
}

/// A builder that ran: its name, command, declared columns and table.
struct BuilderRun<'a> {
    name: &'static str,
    cmd: Command<'a>,
    declared: Option<(Vec<String>, Fact)>,
    table: Table,
}

/// What every comparison reads: the config, the contract's features and the key columns.
struct Parity<'a> {
    loaded: &'a Loaded,
    facts: &'a Facts,
    data: &'a DataSection,
    settings: &'a FeatureParitySettings,
    /// The contract's feature names, in its order.
    names: Vec<String>,
    /// The key columns (timestamp, then symbol when there is one).
    keys: Vec<&'a str>,
    /// The edge-case symbols added to the prices (`[gates.feature-parity] edge-symbols`).
    edges: crate::edge_prices::Edges,
}

impl Parity<'_> {
    /// Where the contract lists feature `f` (its FEATURE_COLS item), else the list itself.
    fn contract_line(&self, f: &str) -> Location {
        let columns = &self.facts.code.columns;
        match self.names.iter().position(|n| n == f) {
            Some(i) => columns.item(i).with_label(format!("contract: `{f}`")),
            None => columns.origin.clone(),
        }
    }

    /// A table's row index by (timestamp, symbol), or why its keys are unusable.
    fn index(&self, t: &Table) -> Result<BTreeMap<Key, usize>> {
        t.keys(&self.data.timestamp, &self.data.symbol)
            .and_then(|k| t.index(&k))
    }
}

/// A builder joined with the training builder on (timestamp, symbol).
struct Pair<'a> {
    training: &'a BuilderRun<'a>,
    other: &'a BuilderRun<'a>,
    /// The rows both write: key, training row, other row.
    joined: Vec<(&'a Key, usize, usize)>,
}

/// How a builder's values of a feature differ from the training builder's.
struct ValueDiff<'a> {
    /// The first differing row, and both values there.
    key: &'a Key,
    value: f64,
    training: f64,
    /// How many rows differ, of how many compared.
    differing: usize,
    rows: usize,
    /// Every value the builder writes is exactly a float32, the training builder's are not.
    float32: bool,
}

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let (Some(data), Some(_)) = (&loaded.config.data, &loaded.config.builders) else {
        return Ok(Report::skipped(
            cx.not_configured("`[data]` and `[builders]`"),
        ));
    };
    let all = builders(loaded);
    if !all.iter().any(|(n, _)| *n == "training") || all.len() < 2 {
        return Ok(Report::skipped(
            "not configured: needs `builders.training` (the reference) and at least one of `builders.backtest`, `builders.live`",
        ));
    }
    let work = crate::protocol::workdir()?;
    let settings = &loaded.config.gates.feature_parity;
    let prices = loaded.input("data.prices", &data.prices)?;
    let (edge, edges, bad) = match edge_tables(loaded, settings, &prices, work.path())? {
        Some(Written { edge, edges, bad }) => (Some(edge), edges, bad),
        None => (None, Default::default(), Vec::new()),
    };
    let p = Parity {
        loaded,
        facts: cx.facts,
        data,
        settings,
        names: cx.facts.feature_names()?,
        keys: data.key_columns(),
        edges,
    };
    let mut out = Vec::new();
    let tables = run_builders(&p, &all, (work.path(), &prices), &mut out)?;
    out.extend(tables.iter().filter_map(|b| compare_columns(&p, b)));
    out.extend(tables.iter().filter_map(|b| no_rows(&p, b)));
    // Rows and values against the training builder.
    let Some(training) = tables.iter().find(|t| t.name == "training") else {
        return Ok(report(out, "training builder failed".into()));
    };
    let training_index = match p.index(&training.table) {
        Ok(i) => i,
        Err(e) => {
            out.push(training.cmd.failed(&BUILDER_FAILED, loaded, &bad_keys(e)));
            return Ok(report(out, "training builder's table unusable".into()));
        }
    };
    let mut compared = 0usize;
    for other in tables.iter().filter(|t| t.name != "training") {
        compared += compare_with_training(&p, training, &training_index, other, &mut out);
    }
    if let Some(edge) = &edge {
        compared += edge_run(&p, &all, (work.path(), edge), &mut out)?;
    }
    compared += bad_bars::check(&p, &all, work.path(), &bad, &mut out)?;
    let mut summary = format!(
        "{} · {} values compared",
        crate::text::plural(tables.len(), "builder"),
        compared
    );
    if !p.edges.symbols.is_empty() {
        let n = p.edges.symbols.len() - bad.len();
        summary.push_str(&format!(
            " · {n} edge symbols · {} bad-bar tables",
            bad.len()
        ));
    }
    if let Some(anchor) = anchor(&p) {
        summary.push_str(&anchor_all(&p, anchor, &tables, &mut out));
    }
    Ok(report(out, summary))
}

/// The gate's report: its findings and summary.
fn report(findings: Vec<Finding>, summary: String) -> Report {
    Report {
        findings,
        summary,
        skipped: None,
    }
}

/// The edge symbols' table and the bad-bar tables, written to `work` from `prices` unless
/// `edge-symbols = false` (or the prices are Parquet, have no symbol column or no rows).
fn edge_tables(
    loaded: &Loaded,
    settings: &FeatureParitySettings,
    prices: &Path,
    work: &Path,
) -> Result<Option<Written>> {
    let Some(data) = &loaded.config.data else {
        return Ok(None);
    };
    let close = loaded
        .config
        .targets
        .definition
        .as_ref()
        .map_or("close", |d| d.price.as_str());
    let layout = Layout {
        timestamp: &data.timestamp,
        symbol: &data.symbol,
        prices: &data.price_columns,
        close,
    };
    if !settings.edge_symbols {
        return Ok(None);
    }
    crate::edge_prices::write(prices, &layout, work)
}

/// Every builder on the edge symbols' table, compared with the training builder's like the main run;
/// each finding says it was the edge table. Returns how many values were compared.
fn edge_run(
    p: &Parity,
    all: &[(&'static str, &CommandSpec)],
    (work, edge): (&Path, &Path),
    out: &mut Vec<Finding>,
) -> Result<usize> {
    let mut found = Vec::new();
    let tables = run_builders(p, all, (work, edge), &mut found)?;
    let mut compared = 0;
    if let Some(training) = tables.iter().find(|t| t.name == "training") {
        match p.index(&training.table) {
            Ok(index) => {
                for other in tables.iter().filter(|t| t.name != "training") {
                    compared += compare_with_training(p, training, &index, other, &mut found);
                }
            }
            Err(e) => found.push(training.cmd.failed(&BUILDER_FAILED, p.loaded, &bad_keys(e))),
        }
    }
    // What the real prices already show is not said twice: only what the edge symbols add.
    let shown = |f: &Finding| {
        out.iter()
            .any(|o| o.code == f.code && o.location == f.location)
    };
    let added: Vec<Finding> = found.into_iter().filter(|f| !shown(f)).collect();
    out.extend(added.into_iter().map(|f| {
        f.note("on the edge-symbol table: synthetic symbols made from the prices (docs/gates/feature-parity.md, Edge symbols)")
    }));
    Ok(compared)
}

/// Every builder run on the prices, with its declared columns; a builder that fails is a finding.
fn run_builders<'a>(
    p: &Parity,
    all: &[(&'static str, &'a CommandSpec)],
    (work, prices): (&Path, &Path),
    out: &mut Vec<Finding>,
) -> Result<Vec<BuilderRun<'a>>> {
    let mut tables = Vec::new();
    for &(name, spec) in all {
        let cmd = command(p.loaded, name, spec);
        let declared = declared_columns(p.loaded, spec)?;
        match cmd.run_table(p.loaded, work, &[("prices", prices.to_path_buf())], &p.keys)? {
            Ok(table) => tables.push(BuilderRun {
                name,
                cmd,
                declared,
                table,
            }),
            Err(failure) => out.push(cmd.failed(&BUILDER_FAILED, p.loaded, &failure)),
        }
    }
    Ok(tables)
}

/// A builder none of whose rows has every contract feature set: a comparison of it would compare only
/// empty cells, and pass on nothing.
fn no_rows(p: &Parity, b: &BuilderRun) -> Option<Finding> {
    let columns: Vec<&[f64]> = p.names.iter().filter_map(|n| b.table.numbers(n)).collect();
    if columns.len() < p.names.len() {
        return None; // a missing or non-numeric column is its own finding
    }
    if (0..b.table.rows).any(|i| columns.iter().all(|c| !c[i].is_nan())) {
        return None;
    }
    Some(
        Finding::new(
            &NO_ROWS,
            format!(
                "the {} builder writes {} rows and none has every feature set: nothing of it is compared",
                b.name, b.table.rows
            ),
        )
        .at(b.cmd.origin(p.loaded))
        .related(Location::file(p.loaded.display(&p.data.prices)).with_label("the prices it ran on"))
        .help("point `[data] prices` at enough bars per symbol for the warm-up and beyond"),
    )
}

/// The feature columns a builder writes against the contract's: missing or extra ones, else the first
/// position where the order differs.
fn compare_columns(p: &Parity, b: &BuilderRun) -> Option<Finding> {
    let written: Vec<&str> = b
        .table
        .names()
        .into_iter()
        .filter(|c| !p.keys.contains(c))
        .collect();
    let missing: Vec<&str> = p
        .names
        .iter()
        .map(String::as_str)
        .filter(|n| !written.contains(n))
        .collect();
    let extra: Vec<&str> = written
        .iter()
        .copied()
        .filter(|w| !p.names.iter().any(|n| n == w))
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Some(columns_mismatch(p, b, &missing, &extra));
    }
    let i = written.iter().zip(&p.names).position(|(w, n)| w != n)?;
    Some(column_order(p, b, i, written[i]))
}

/// A builder's rows and values against the training builder's (`training_index`: its rows by key).
/// Returns how many values were compared.
fn compare_with_training(
    p: &Parity,
    training: &BuilderRun,
    training_index: &BTreeMap<Key, usize>,
    other: &BuilderRun,
    out: &mut Vec<Finding>,
) -> usize {
    let index = match p.index(&other.table) {
        Ok(i) => i,
        Err(e) => {
            out.push(other.cmd.failed(&BUILDER_FAILED, p.loaded, &bad_keys(e)));
            return 0;
        }
    };
    let pair = Pair {
        training,
        other,
        joined: training_index
            .iter()
            .filter_map(|(k, &i)| index.get(k).map(|&j| (k, i, j)))
            .collect(),
    };
    let only_training: Vec<&Key> = training_index
        .keys()
        .filter(|k| !index.contains_key(*k))
        .collect();
    let only_other: Vec<&Key> = index
        .keys()
        .filter(|k| !training_index.contains_key(*k))
        .collect();
    if !only_training.is_empty() || !only_other.is_empty() {
        out.push(rows_mismatch(p, &pair, &only_training, &only_other));
    }
    p.names
        .iter()
        .map(|feature| compare_feature(p, &pair, feature, out))
        .sum()
}

/// One feature of a pair: its stored dtypes, then its values on the joined rows. Returns how many
/// values were compared.
fn compare_feature(p: &Parity, pair: &Pair, feature: &str, out: &mut Vec<Finding>) -> usize {
    let (rt, t) = (&pair.training.table, &pair.other.table);
    let (Some(rc), Some(tc)) = (rt.column(feature), t.column(feature)) else {
        return 0;
    };
    if let (Some(a), Some(b)) = (&rc.dtype, &tc.dtype)
        && a != b
    {
        out.push(dtype_mismatch(p, pair, feature, a, b));
    }
    let (Some(rv), Some(tv)) = (rt.numbers(feature), t.numbers(feature)) else {
        out.push(not_numeric(p, pair, feature));
        return 0;
    };
    let differing: Vec<&(&Key, usize, usize)> = pair
        .joined
        .iter()
        .filter(|(_, i, j)| !close(tv[*j], rv[*i], p.settings.atol, p.settings.rtol))
        .collect();
    if let Some((k, i, j)) = differing.first() {
        let f32_exact = |v: &[f64]| v.iter().all(|x| x.is_nan() || f64::from(*x as f32) == *x);
        let diff = ValueDiff {
            key: k,
            value: tv[*j],
            training: rv[*i],
            differing: differing.len(),
            rows: pair.joined.len(),
            float32: f32_exact(tv) && !f32_exact(rv),
        };
        out.push(value_mismatch(p, pair, feature, &diff));
    }
    pair.joined.len()
}

/// The training-time features the builders must reproduce: the `[data] anchor` table, else the
/// `[slice]` features.
struct Anchor {
    /// Where it comes from, for messages: the config key and the file as findings show it.
    field: &'static str,
    path: String,
    table: Table,
    keys: Vec<Key>,
}

/// The anchor's config key, file and key columns, if the config has one.
fn anchor_source<'a>(p: &Parity<'a>) -> Option<(&'static str, &'a str, Vec<&'a str>)> {
    if let Some(path) = &p.data.anchor {
        return Some(("data.anchor", path, p.keys.clone()));
    }
    let slice = p.loaded.config.slice.as_ref()?;
    Some(("slice.features", &slice.features, slice.key_columns()))
}

/// The anchor table, read and checked: every contract feature a numeric column. `None` without one;
/// a table that cannot anchor anything is a finding.
fn anchor(p: &Parity) -> Option<std::result::Result<Anchor, Finding>> {
    let (field, rel, key_names) = anchor_source(p)?;
    let path = p.loaded.display(rel);
    let unusable = |location: Location, message: String| {
        Finding::new(&ANCHOR_UNUSABLE, message)
            .at(location)
            .help(format!("`{field}` must be a table of the training-time features, keyed like the builders' tables"))
    };
    let read = crate::table::read(&p.loaded.resolve(rel), &key_names).and_then(|table| {
        let ts = key_names.first().copied().unwrap_or("");
        let keys = table.keys(ts, key_names.get(1).copied().unwrap_or(""))?;
        Ok((table, keys))
    });
    let (table, keys) = match read {
        Ok(t) => t,
        Err(crate::error::Error::At { location, message }) => {
            return Some(Err(unusable(location, message)));
        }
        Err(e) => return Some(Err(unusable(Location::file(&path), e.to_string()))),
    };
    let unnumbered: Vec<&str> = p
        .names
        .iter()
        .map(String::as_str)
        .filter(|n| table.numbers(n).is_none())
        .collect();
    if !unnumbered.is_empty() {
        let message = format!(
            "the training-time features {path} have no numeric column for {}",
            unnumbered.join(", ")
        );
        return Some(Err(unusable(Location::at(&path, 1), message)));
    }
    Some(Ok(Anchor {
        field,
        path,
        table,
        keys,
    }))
}

/// Every builder that ran against the anchor. Returns the summary's anchor part.
fn anchor_all(
    p: &Parity,
    anchor: std::result::Result<Anchor, Finding>,
    tables: &[BuilderRun],
    out: &mut Vec<Finding>,
) -> String {
    let anchor = match anchor {
        Ok(a) => a,
        Err(f) => {
            out.push(f);
            return " · no anchor".into();
        }
    };
    let mut rows = 0usize;
    for b in tables {
        // A builder whose keys are unusable was reported by the comparison with the training builder.
        if let Ok(index) = p.index(&b.table) {
            rows = rows.max(compare_with_anchor(p, &anchor, b, &index, out));
        }
    }
    let what = if anchor.field == "slice.features" {
        "slice"
    } else {
        "anchor"
    };
    format!(" · anchored on {rows} {what} rows")
}

/// The builder's warm-up: for each symbol, its rows before the first one with every contract feature
/// set (in the order the builder wrote them).
fn warm_up(p: &Parity, t: &Table, index: &BTreeMap<Key, usize>) -> Vec<bool> {
    let columns: Vec<&[f64]> = p.names.iter().filter_map(|n| t.numbers(n)).collect();
    let mut symbol_of = vec![""; t.rows];
    for (k, &i) in index {
        symbol_of[i] = k.1.as_str();
    }
    let mut started = std::collections::BTreeSet::new();
    (0..t.rows)
        .map(|i| {
            if !started.contains(symbol_of[i]) && columns.iter().all(|c| !c[i].is_nan()) {
                started.insert(symbol_of[i]);
            }
            !started.contains(symbol_of[i])
        })
        .collect()
}

/// How a builder's values of a feature differ from the anchor's: the first differing anchor row, both
/// values there, and how many rows differ.
struct AnchorDiff {
    row: usize,
    value: f64,
    anchor: f64,
    differing: usize,
}

/// A builder's values against the anchor's on the rows both have, past the builder's warm-up. Returns
/// how many rows were compared.
fn compare_with_anchor(
    p: &Parity,
    anchor: &Anchor,
    b: &BuilderRun,
    index: &BTreeMap<Key, usize>,
    out: &mut Vec<Finding>,
) -> usize {
    let warm = warm_up(p, &b.table, index);
    if warm.iter().all(|&w| w) {
        return 0; // no row past the warm-up: `builder-no-rows` says so
    }
    let shared: Vec<(usize, usize)> = anchor
        .keys
        .iter()
        .enumerate()
        .filter_map(|(r, k)| index.get(k).map(|&j| (r, j)))
        .filter(|&(_, j)| !warm[j])
        .collect();
    if shared.is_empty() {
        out.push(anchor_no_overlap(p, anchor, b));
        return 0;
    }
    for feature in &p.names {
        let (Some(av), Some(bv)) = (anchor.table.numbers(feature), b.table.numbers(feature)) else {
            continue;
        };
        let mut diff: Option<AnchorDiff> = None;
        for &(r, j) in &shared {
            if close(bv[j], av[r], p.settings.atol, p.settings.rtol) {
                continue;
            }
            let d = diff.get_or_insert(AnchorDiff {
                row: r,
                value: bv[j],
                anchor: av[r],
                differing: 0,
            });
            d.differing += 1;
        }
        if let Some(d) = diff {
            out.push(anchor_mismatch(p, anchor, b, feature, &d, shared.len()));
        }
    }
    shared.len()
}

/// Where a finding about `feature` in builder `b` against the anchor points: the builder's line for it,
/// or, for a training builder that declares no columns, the contract's line (its own feature list).
fn anchor_location(p: &Parity, b: &BuilderRun, feature: &str) -> Location {
    if b.name == "training" && b.declared.is_none() {
        return p.contract_line(feature);
    }
    feature_location(p.loaded, &b.cmd, &b.declared, feature)
}

/// Builder `b` computes `feature` differently from the training-time features, as `d` says.
fn anchor_mismatch(
    p: &Parity,
    anchor: &Anchor,
    b: &BuilderRun,
    feature: &str,
    d: &AnchorDiff,
    rows: usize,
) -> Finding {
    let key = &anchor.keys[d.row];
    let at = anchor_location(p, b, feature);
    let script = b.cmd.origin(p.loaded);
    let mut f = Finding::new(
        &ANCHOR_MISMATCH,
        format!(
            "the {} builder's `{feature}` differs from the training-time features ({}): first at {}: {} vs {} (anchor)",
            b.name,
            anchor.path,
            show_key(key),
            show_cell(d.value),
            show_cell(d.anchor)
        ),
    )
    .related(anchor.table.location(d.row).with_label(format!("training-time `{feature}`")));
    // The builder's script, unless the finding already points into it.
    if script.path != at.path {
        f = f.related(script);
    }
    f.at(at)
        .note(format!(
            "{} of {rows} shared rows differ (atol {:e}, rtol {:e})",
            d.differing, p.settings.atol, p.settings.rtol
        ))
        .help(format!("the builders must compute the features the model was trained and validated on; if `{feature}` changed on purpose, retrain and rebuild `{}`", anchor.field))
}

/// Builder `b` shares no row with the anchor past its warm-up: nothing anchors its features.
fn anchor_no_overlap(p: &Parity, anchor: &Anchor, b: &BuilderRun) -> Finding {
    let mut f = Finding::new(
        &ANCHOR_UNUSABLE,
        format!(
            "the {} builder shares no row with the training-time features ({}) past its warm-up",
            b.name, anchor.path
        ),
    )
    .at(Location::file(&anchor.path))
    .related(b.cmd.origin(p.loaded))
    .note(format!(
        "{} anchor rows, first {}; the builder wrote {} rows",
        anchor.keys.len(),
        anchor.keys.first().map_or("—".into(), show_key),
        b.table.rows
    ));
    f = f.help(format!(
        "point `[data] prices` at bars that cover `{}`'s rows (with the warm-up before them), or set `[data] anchor`",
        anchor.field
    ));
    f
}
