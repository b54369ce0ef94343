//! # leakage (contract 2: features and labels see only what they may)
//!
//! **What it does.** Runs the training feature builder and the label builder on the price data, then
//! again at `cuts` cut points (spread between 30% and 90% of the timestamps), twice per cut:
//! *truncate* (every bar after the cut removed) and *perturb-future* (the price columns of every bar
//! after the cut multiplied by `perturb`). A feature at time t ≤ cut must come out the same as in the
//! full run (NaN equals NaN; 1e-9 relative); a label with horizon h may look ahead exactly h bars, so a
//! label at a bar at least h bars before the cut must come out the same. A finding names the leaking
//! feature or label, the first row where it changed, both values and the test that changed it.
//!
//! **Why is this bad?** A feature that reads the future (a centred window, a `shift(-1)`, a scaler fitted
//! on all data) makes the backtest look better than anything live can do; a label that looks one bar too
//! far trains the model on information it will never have.
//!
//! **Example.** The training builder's 10-bar moving average is centred on the bar: `feature-leakage`
//! at `"ma_gap_10",` in FEATURE_COLS: at 1710676800 AAA it changes from -0.00064 to NaN when every bar
//! after 1710691200 is removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::builders::bad_keys;
use crate::config::{CommandSpec, DataSection, LeakageSettings, Loaded};
use crate::error::Result;
use crate::facts::CodeFacts;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::{Command, Failure};
use crate::table::{Key, Table, Values, show_key, time_order};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "leakage",
        contract: ContractKind::TargetLabel,
        severity: Severity::Error,
        summary,
    }
}

pub const BUILDER_FAILED: Code = code(
    "leakage-builder-failed",
    "a builder failed on the full, truncated or perturbed prices",
);
pub const FEATURE_LEAKAGE: Code = Code {
    contract: ContractKind::FeatureVector,
    ..code(
        "feature-leakage",
        "a feature at time t changes when data after t changes",
    )
};
pub const LABEL_LEAKAGE: Code = code(
    "label-leakage",
    "a label with horizon h changes when data more than h bars after it changes",
);

pub const LABEL_HORIZON_SHORT: Code = code(
    "label-horizon-short",
    "a label is known with fewer than `horizon` bars after it: the labels builder looks ahead less than the contract says",
);
pub const TOO_LITTLE_DATA: Code = code(
    "leakage-too-little-data",
    "too little data to test anything: fewer than 2 × cuts timestamps in the prices, or a builder that writes no value",
);

pub const GATE: Gate = Gate {
    id: Id::Leakage,
    name: "leakage",
    plan_script: None,
    codes: &[
        BUILDER_FAILED,
        FEATURE_LEAKAGE,
        LABEL_LEAKAGE,
        LABEL_HORIZON_SHORT,
        TOO_LITTLE_DATA,
    ],
    needs: Needs {
        commands: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreLive],
    run,
};

/// A label known too early: its row, its value, the cut after which every bar was removed, and how many
/// bars it had after it.
struct Early {
    key: Key,
    value: f64,
    cut: String,
    bars_after: usize,
}

/// A change: which test, which row, before and after.
struct Change {
    test: String,
    key: Key,
    before: f64,
    after: f64,
}

/// A label with horizon `horizon` that changed (`change`: what, where, before and after).
fn label_leakage(change: &str, horizon: usize, code: &CodeFacts) -> Finding {
    Finding::new(
        &LABEL_LEAKAGE,
        format!(
            "label {change}; a label with horizon {horizon} may only read {horizon} bars ahead"
        ),
    )
    .at(code.horizon.origin.clone())
    .help("compute the label from bars t+1 … t+horizon only")
}

/// A label of column `col` the builder knows with only `e.bars_after` bars after it, fewer than `horizon`.
fn label_horizon_short(col: &str, e: &Early, horizon: usize, code: &CodeFacts) -> Finding {
    Finding::new(
        &LABEL_HORIZON_SHORT,
        format!(
            "label `{col}` at {} is known ({}) when every bar after {} is removed, {} bar{} later; a label with horizon {horizon} needs {horizon} bars after it",
            show_key(&e.key),
            show(e.value),
            e.cut,
            e.bars_after,
            if e.bars_after == 1 { "" } else { "s" },
        ),
    )
    .at(code.horizon.origin.clone())
    .help("compute the label over exactly `horizon` bars; if the horizon changed on purpose, change it in the code and retrain")
}

/// A feature that changed (`change`: what, where, before and after), at its line in the code's list.
fn feature_leakage(change: &str, at: Location) -> Finding {
    Finding::new(&FEATURE_LEAKAGE, format!("feature {change}"))
        .at(at)
        .help("a feature at t may read bars up to t only: no centred windows, negative shifts, or statistics over the whole history")
}

/// The builder failed on the prices `job` changed.
fn failed_on(cmd: &Command, loaded: &Loaded, failure: &Failure, job: &Job) -> Finding {
    cmd.failed(&BUILDER_FAILED, loaded, failure).note(format!(
        "on the prices {} after {}",
        if job.test == "truncate" {
            "truncated"
        } else {
            "perturbed"
        },
        job.cut
    ))
}

/// A builder the gate runs (`training` or `labels`) and its command.
struct Builder<'a> {
    name: &'a str,
    cmd: Command<'a>,
}

/// What every builder run reads: the config, the prices with their bars, the jobs and the work
/// directory.
struct Setup<'a> {
    loaded: &'a Loaded,
    data: &'a DataSection,
    settings: &'a LeakageSettings,
    /// The key columns (timestamp, then symbol when there is one).
    keys: &'a [&'a str],
    prices: &'a Table,
    /// Each price row's (timestamp, symbol).
    pkeys: &'a [Key],
    bars: Bars<'a>,
    jobs: &'a [Job<'a>],
    work: &'a Path,
}

/// Each symbol's timestamps in time order, and each bar's position in its symbol.
struct Bars<'a> {
    by_symbol: BTreeMap<&'a str, Vec<&'a String>>,
    positions: BTreeMap<(&'a str, &'a str), usize>,
}

impl<'a> Bars<'a> {
    /// The bars of the price rows `pkeys`.
    fn of(pkeys: &'a [Key]) -> Self {
        let mut by_symbol: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
        for k in pkeys {
            by_symbol.entry(&k.1).or_default().push(&k.0);
        }
        for v in by_symbol.values_mut() {
            v.sort_by(|a, b| time_order(a, b));
        }
        let positions = by_symbol
            .iter()
            .flat_map(|(s, v)| {
                v.iter()
                    .enumerate()
                    .map(move |(p, t)| ((*s, t.as_str()), p))
            })
            .collect();
        Bars {
            by_symbol,
            positions,
        }
    }

    /// The bar position of a row's (timestamp, symbol) in its symbol.
    fn position(&self, k: &Key) -> Option<usize> {
        self.positions.get(&(k.1.as_str(), k.0.as_str())).copied()
    }

    /// Per symbol, the position of its last bar at or before `cut`.
    fn last_at_or_before(&self, cut: &str) -> BTreeMap<&'a str, usize> {
        self.by_symbol
            .iter()
            .filter_map(|(s, v)| {
                v.iter()
                    .rposition(|t| time_order(t, cut).is_le())
                    .map(|p| (*s, p))
            })
            .collect()
    }
}

/// One run of a builder on changed prices: the cut (and its index) and the test.
struct Job<'a> {
    index: usize,
    cut: &'a str,
    /// `truncate` or `perturb`.
    test: &'static str,
}

impl Job<'_> {
    /// What the job changed, as a finding says it.
    fn change(&self, perturb: f64) -> String {
        if self.test == "truncate" {
            format!("every bar after {} is removed", self.cut)
        } else {
            format!("the prices after {} are multiplied by {perturb}", self.cut)
        }
    }
}

/// A builder's run on the full prices: its table, rows in time order and value columns.
struct FullRun<'a> {
    table: &'a Table,
    /// Each row with its key and bar position, in time order.
    sorted: Vec<(usize, &'a Key, Option<usize>)>,
    /// The numeric columns that are not keys.
    value_columns: Vec<&'a str>,
}

impl FullRun<'_> {
    /// The rows that must be unchanged after a cut: at or before it (features), or at least `lookahead`
    /// bars before it (labels). `cut_pos`: per symbol, its last bar at or before the cut.
    fn stable_rows(&self, cut_pos: &BTreeMap<&str, usize>, lookahead: usize) -> Vec<(usize, &Key)> {
        self.sorted
            .iter()
            .filter(|(_, k, p)| matches!((p, cut_pos.get(k.1.as_str())), (Some(p), Some(&c)) if p + lookahead <= c))
            .map(|(i, k, _)| (*i, *k))
            .collect()
    }

    /// Records, for each value column with no change yet, the first of `rows` whose value the run
    /// `(t, tindex)` changed (`test`: what the run changed).
    fn record_changes(
        &self,
        first: &mut BTreeMap<String, Change>,
        t: &Table,
        tindex: &BTreeMap<Key, usize>,
        rows: &[(usize, &Key)],
        test: &str,
    ) {
        for col in &self.value_columns {
            if first.contains_key(*col) {
                continue;
            }
            let (Some(fv), Some(tv)) = (self.table.numbers(col), t.numbers(col)) else {
                continue;
            };
            for &(i, k) in rows {
                let after = tindex.get(k).map_or(f64::NAN, |&j| tv[j]);
                if !crate::stats::close(after, fv[i], 1e-12, 1e-9) {
                    first.insert(
                        col.to_string(),
                        Change {
                            test: test.to_owned(),
                            key: k.clone(),
                            before: fv[i],
                            after,
                        },
                    );
                    break;
                }
            }
        }
    }
}

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let (Some(data), Some(b)) = (&loaded.config.data, &loaded.config.builders) else {
        return Ok(Report::skipped(
            cx.not_configured("`[data]` and `[builders]`"),
        ));
    };
    let subjects: Vec<(&str, &CommandSpec)> = [("training", &b.training), ("labels", &b.labels)]
        .into_iter()
        .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
        .collect();
    if subjects.is_empty() {
        return Ok(Report::skipped(
            "not configured: needs `builders.training` or `builders.labels`",
        ));
    }
    let settings = &loaded.config.gates.leakage;
    let keys = data.key_columns();
    let (prices, pkeys) = read_prices(loaded, data, &keys)?;
    if let Some(f) = too_little_data(&prices, &pkeys, settings.cuts) {
        return Ok(Report::stopped(f, "too little data"));
    }
    let cuts = cut_points(&pkeys, settings.cuts);
    let work = crate::protocol::workdir()?;
    let setup = Setup {
        loaded,
        data,
        settings,
        keys: &keys,
        prices: &prices,
        pkeys: &pkeys,
        bars: Bars::of(&pkeys),
        jobs: &jobs(&cuts),
        work: work.path(),
    };
    let mut out = Vec::new();
    let mut runs = 0usize;
    for (name, spec) in subjects {
        let builder = Builder {
            name,
            cmd: crate::builders::command(loaded, name, spec),
        };
        runs += check_builder(cx, &setup, &builder, &mut out)?;
    }
    Ok(Report {
        findings: out,
        summary: format!(
            "{} · truncate + perturb · {runs} builder runs",
            crate::text::plural(cuts.len(), "cut")
        ),
        skipped: None,
    })
}

/// The prices and each row's (timestamp, symbol); an error when a `data.price-columns` entry is not a
/// numeric column.
fn read_prices(loaded: &Loaded, data: &DataSection, keys: &[&str]) -> Result<(Table, Vec<Key>)> {
    let prices = crate::table::read(&loaded.input("data.prices", &data.prices)?, keys)?;
    let pkeys = prices.keys(&data.timestamp, &data.symbol)?;
    for c in &data.price_columns {
        if prices.numbers(c).is_none() {
            return Err(crate::error::Error::at(
                Location::at(&prices.path, 1),
                format!(
                    "`data.price-columns` names `{c}`, which is not a numeric column of the prices"
                ),
            ));
        }
    }
    Ok((prices, pkeys))
}

/// The prices hold fewer than `2 × cuts` distinct timestamps: the cut points would repeat or fall on the
/// first bars, and the gate would pass on nothing.
fn too_little_data(prices: &Table, pkeys: &[Key], cuts: usize) -> Option<Finding> {
    let distinct: std::collections::BTreeSet<&str> = pkeys.iter().map(|k| k.0.as_str()).collect();
    let needed = 2 * cuts.max(1);
    (distinct.len() < needed).then(|| {
        Finding::new(
            &TOO_LITTLE_DATA,
            format!(
                "the prices hold {} distinct timestamps ({} rows); leakage needs at least {needed} for {cuts} cut points",
                distinct.len(),
                prices.rows
            ),
        )
        .at(Location::at(&prices.path, 1))
        .help("point `[data] prices` at enough bars (the example uses 800 per symbol), or lower `gates.leakage.cuts`")
    })
}

/// `cuts` cut timestamps, evenly spaced between 30% and 90% of the distinct timestamps.
fn cut_points(pkeys: &[Key], cuts: usize) -> Vec<String> {
    // Timestamps in time order (numeric when they are numbers).
    let mut times: Vec<&String> = pkeys.iter().map(|k| &k.0).collect();
    times.sort_by(|a, b| time_order(a, b));
    times.dedup();
    let n = times.len();
    (0..cuts)
        .map(|i| {
            let f = if cuts == 1 {
                0.6
            } else {
                0.3 + 0.6 * i as f64 / (cuts - 1) as f64
            };
            times[((n as f64 * f) as usize).min(n.saturating_sub(1))].clone()
        })
        .collect()
}

/// The label horizon, in bars (an invalid one is an error, exit 2).
fn horizon(cx: &Context) -> Result<usize> {
    cx.facts.targets().map(|t| t.horizon as usize)
}

/// Every (cut, test) run: at each cut, truncate then perturb.
fn jobs(cuts: &[String]) -> Vec<Job<'_>> {
    cuts.iter()
        .enumerate()
        .flat_map(|(index, cut)| ["truncate", "perturb"].map(|test| Job { index, cut, test }))
        .collect()
}

/// One builder on the full prices, then on every job's changed prices: its failures and the first
/// change of each column, as findings. Returns how many of its runs gave a table.
fn check_builder(cx: &Context, s: &Setup, b: &Builder, out: &mut Vec<Finding>) -> Result<usize> {
    let loaded = s.loaded;
    let full = match b.cmd.run_table(
        loaded,
        s.work,
        &[("prices", loaded.resolve(&s.data.prices))],
        s.keys,
    )? {
        Ok(t) => t,
        Err(f) => {
            out.push(b.cmd.failed(&BUILDER_FAILED, loaded, &f));
            return Ok(0);
        }
    };
    let fkeys = match full
        .keys(&s.data.timestamp, &s.data.symbol)
        .and_then(|k| full.index(&k).map(|_| k))
    {
        Ok(k) => k,
        Err(e) => {
            out.push(b.cmd.failed(&BUILDER_FAILED, loaded, &bad_keys(e)));
            return Ok(1);
        }
    };
    let full = full_run(s, &full, &fkeys);
    if let Some(f) = nothing_to_test(s, b, &full) {
        out.push(f);
        return Ok(1);
    }
    let (first, runs) = first_changes(cx, s, b, &full, out)?;
    for (col, ch) in first {
        out.push(leakage(cx, b.name, &col, &ch)?.related(b.cmd.origin(loaded)));
    }
    Ok(1 + runs)
}

/// The builder's table on the full prices has no value to compare (no rows, or only empty cells): every
/// cut would compare nothing, and the gate would pass on nothing.
fn nothing_to_test(s: &Setup, b: &Builder, full: &FullRun) -> Option<Finding> {
    let t = full.table;
    let any_value = full
        .value_columns
        .iter()
        .filter_map(|c| t.numbers(c))
        .any(|v| v.iter().any(|x| !x.is_nan()));
    (!any_value).then(|| {
        Finding::new(
            &TOO_LITTLE_DATA,
            format!(
                "the {} builder writes {} rows on the full prices and no value: nothing is tested for look-ahead",
                b.name, t.rows
            ),
        )
        .at(b.cmd.origin(s.loaded))
        .related(Location::file(s.loaded.display(&s.data.prices)).with_label("the prices it ran on"))
        .help("the builder must write its values for the prices it is given")
    })
}

/// Runs the builder on every job's changed prices: the first change of each column (by column name),
/// and how many runs gave a table. A run that fails is a finding.
fn first_changes(
    cx: &Context,
    s: &Setup,
    b: &Builder,
    full: &FullRun,
    out: &mut Vec<Finding>,
) -> Result<(BTreeMap<String, Change>, usize)> {
    let results = run_jobs(s, &b.cmd, s.jobs);
    let mut first: BTreeMap<String, Change> = BTreeMap::new();
    let mut early: BTreeMap<String, Early> = BTreeMap::new();
    let mut runs = 0;
    for (job, result) in s.jobs.iter().zip(results) {
        // The label horizon matters to the labels builder only: an invalid one stops the gate there.
        let lookahead = if b.name == "labels" { horizon(cx)? } else { 0 };
        let rows = full.stable_rows(&s.bars.last_at_or_before(job.cut), lookahead);
        let t = match result? {
            Ok(t) => t,
            Err(f) => {
                out.push(failed_on(&b.cmd, s.loaded, &f, job));
                continue;
            }
        };
        runs += 1;
        match t
            .keys(&s.data.timestamp, &s.data.symbol)
            .and_then(|k| t.index(&k))
        {
            Ok(tindex) => {
                let test = job.change(s.settings.perturb);
                full.record_changes(&mut first, &t, &tindex, &rows, &test);
                if b.name == "labels" && job.test == "truncate" {
                    record_early(&mut early, s, full, &t, &tindex, job, lookahead);
                }
            }
            Err(e) => out.push(b.cmd.failed(&BUILDER_FAILED, s.loaded, &bad_keys(e))),
        }
    }
    for (col, e) in &early {
        let f = label_horizon_short(col, e, horizon(cx)?, &cx.facts.code);
        out.push(f.related(b.cmd.origin(s.loaded)));
    }
    Ok((first, runs))
}

/// Records, for each label column with none yet, the earliest row of the truncated run `t` that holds a
/// value with fewer than `horizon` bars after it: every later bar was removed, so only a shorter
/// look-ahead can have computed it.
fn record_early(
    early: &mut BTreeMap<String, Early>,
    s: &Setup,
    full: &FullRun,
    t: &Table,
    tindex: &BTreeMap<Key, usize>,
    job: &Job,
    horizon: usize,
) {
    let cut_pos = s.bars.last_at_or_before(job.cut);
    // In time order, the rows within `horizon` bars before the cut: (key, row in `t`, bars after it).
    let recent: Vec<(&Key, usize, usize)> = full
        .sorted
        .iter()
        .filter_map(|(_, k, p)| {
            let (p, c) = ((*p)?, *cut_pos.get(k.1.as_str())?);
            (p <= c && p + horizon > c).then_some((*k, *tindex.get(*k)?, c - p))
        })
        .collect();
    for col in &full.value_columns {
        let Some(tv) = t.numbers(col) else { continue };
        if early.contains_key(*col) {
            continue;
        }
        if let Some(&(k, j, bars_after)) = recent.iter().find(|(_, j, _)| !tv[*j].is_nan()) {
            early.insert(
                col.to_string(),
                Early {
                    key: k.clone(),
                    value: tv[j],
                    cut: job.cut.to_owned(),
                    bars_after,
                },
            );
        }
    }
}

/// The full run's rows in time order, each with its bar position, and its value columns.
fn full_run<'a>(s: &Setup, full: &'a Table, fkeys: &'a [Key]) -> FullRun<'a> {
    let mut sorted: Vec<(usize, &Key, Option<usize>)> = fkeys
        .iter()
        .enumerate()
        .map(|(i, k)| (i, k, s.bars.position(k)))
        .collect();
    sorted.sort_by(|a, b| time_order(&a.1.0, &b.1.0).then_with(|| a.1.1.cmp(&b.1.1)));
    let value_columns = full
        .names()
        .into_iter()
        .filter(|c| !s.keys.contains(c) && full.numbers(c).is_some())
        .collect();
    FullRun {
        table: full,
        sorted,
        value_columns,
    }
}

/// Every job's run of `cmd`, in parallel (each writes its own files), in the order of `jobs`.
fn run_jobs(
    s: &Setup,
    cmd: &Command,
    jobs: &[Job],
) -> Vec<Result<std::result::Result<Table, Failure>>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|job| scope.spawn(move || run_job(s, cmd, job)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a leakage run panicked"))
            .collect()
    })
}

/// Writes the prices `job` changes and runs `cmd` on them.
fn run_job(s: &Setup, cmd: &Command, job: &Job) -> Result<std::result::Result<Table, Failure>> {
    let tag = format!("-{}-{}", job.test, job.index);
    let path = s.work.join(format!("prices{tag}.csv"));
    let file = if job.test == "truncate" {
        truncated(s.prices, s.pkeys, job.cut, &path)?
    } else {
        perturbed(
            s.prices,
            s.pkeys,
            job.cut,
            s.data,
            s.settings.perturb,
            &path,
        )?
    };
    cmd.run_table_tagged(s.loaded, s.work, &[("prices", file)], s.keys, &tag)
}

/// The finding for column `col` of builder `name`, which changed as `ch` says.
fn leakage(cx: &Context, name: &str, col: &str, ch: &Change) -> Result<Finding> {
    let change = format!(
        "`{col}` at {} changes when {}: {} → {}",
        show_key(&ch.key),
        ch.test,
        show(ch.before),
        show(ch.after)
    );
    if name == "labels" {
        return Ok(label_leakage(&change, horizon(cx)?, &cx.facts.code));
    }
    let names = cx.facts.feature_names()?;
    let columns = &cx.facts.code.columns;
    let at = match names.iter().position(|n| n == col) {
        Some(i) => columns.item(i).with_label(format!("feature `{col}`")),
        None => columns.origin.clone(),
    };
    Ok(feature_leakage(&change, at))
}

fn show(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:?}")
    }
}

fn write_rows(
    prices: &Table,
    keep: &[usize],
    scale: impl Fn(usize, &str) -> f64,
    path: &Path,
) -> Result<()> {
    let cols: Vec<(String, Values)> = prices
        .columns
        .iter()
        .map(|c| {
            let v = match &c.values {
                Values::Num(x) => {
                    Values::Num(keep.iter().map(|&i| x[i] * scale(i, &c.name)).collect())
                }
                Values::Text(t) => Values::Text(keep.iter().map(|&i| t[i].clone()).collect()),
            };
            (c.name.clone(), v)
        })
        .collect();
    let refs: Vec<(&str, &Values)> = cols.iter().map(|(n, v)| (n.as_str(), v)).collect();
    crate::table::write_csv(path, &refs, keep.len())
}

fn truncated(prices: &Table, keys: &[Key], cut: &str, path: &Path) -> Result<PathBuf> {
    let keep: Vec<usize> = (0..prices.rows)
        .filter(|&i| time_order(&keys[i].0, cut).is_le())
        .collect();
    write_rows(prices, &keep, |_, _| 1.0, path)?;
    Ok(path.to_path_buf())
}

fn perturbed(
    prices: &Table,
    keys: &[Key],
    cut: &str,
    data: &DataSection,
    factor: f64,
    path: &Path,
) -> Result<PathBuf> {
    let all: Vec<usize> = (0..prices.rows).collect();
    write_rows(
        prices,
        &all,
        |i, col| {
            if time_order(&keys[i].0, cut).is_gt() && data.price_columns.iter().any(|c| c == col) {
                factor
            } else {
                1.0
            }
        },
        path,
    )?;
    Ok(path.to_path_buf())
}
