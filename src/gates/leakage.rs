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

use super::{Context, Gate, Id, Needs, Profile, Report};
use crate::config::{CommandSpec, DataSection};
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::table::{Key, Table, Values, show_key};

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

pub const GATE: Gate = Gate {
    id: Id::Leakage,
    name: "leakage",
    plan_script: None,
    codes: &[BUILDER_FAILED, FEATURE_LEAKAGE, LABEL_LEAKAGE],
    needs: Needs {
        engine: false,
        slice: false,
        base: false,
    },
    profiles: &[Profile::PreLive],
    run,
};

/// A change: which test, which row, before and after.
struct Change {
    test: String,
    key: Key,
    before: f64,
    after: f64,
}

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let (Some(data), Some(b)) = (&loaded.config.data, &loaded.config.builders) else {
        return Ok(Report::skipped(
            "not configured: no `[data]` and `[builders]` in plumbline.toml",
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
    let keys: Vec<&str> = [data.timestamp.as_str(), data.symbol.as_str()]
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let prices = crate::table::read(&loaded.resolve(&data.prices), &keys)?;
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
    // Timestamps in time order (numeric when they are numbers).
    let mut times: Vec<&String> = pkeys.iter().map(|k| &k.0).collect();
    times.sort_by(|a, b| order(a, b));
    times.dedup();
    let n = times.len();
    let cuts: Vec<String> = (0..settings.cuts)
        .map(|i| {
            let f = if settings.cuts == 1 {
                0.6
            } else {
                0.3 + 0.6 * i as f64 / (settings.cuts - 1) as f64
            };
            times[((n as f64 * f) as usize).min(n.saturating_sub(1))].clone()
        })
        .collect();
    // Per symbol, each timestamp's bar position.
    let mut by_symbol: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for k in &pkeys {
        by_symbol.entry(&k.1).or_default().push(&k.0);
    }
    for v in by_symbol.values_mut() {
        v.sort_by(|a, b| order(a, b));
    }
    let positions: BTreeMap<(&str, &str), usize> = by_symbol
        .iter()
        .flat_map(|(s, v)| {
            v.iter()
                .enumerate()
                .map(move |(p, t)| ((*s, t.as_str()), p))
        })
        .collect();
    let position = |k: &Key| positions.get(&(k.1.as_str(), k.0.as_str())).copied();
    // The label horizon matters to the labels builder only: an invalid one stops the gate there (exit 2).
    let horizon = || cx.facts.targets().map(|t| t.horizon as usize);

    let work = crate::protocol::workdir()?;
    let mut out = Vec::new();
    let mut runs = 0usize;
    for (name, spec) in subjects {
        let cmd = crate::builders::command(loaded, name, spec);
        let run_on = |path: &Path| {
            cmd.run_table(
                loaded,
                work.path(),
                &[("prices", PathBuf::from(path))],
                &keys,
            )
        };
        let full = match run_on(&loaded.resolve(&data.prices))? {
            Ok(t) => t,
            Err(f) => {
                out.push(cmd.failed(&BUILDER_FAILED, loaded, &f));
                continue;
            }
        };
        runs += 1;
        let fkeys = match full
            .keys(&data.timestamp, &data.symbol)
            .and_then(|k| full.index(&k).map(|_| k))
        {
            Ok(k) => k,
            Err(e) => {
                out.push(cmd.failed(&BUILDER_FAILED, loaded, &crate::builders::bad_keys(e)));
                continue;
            }
        };
        // Rows of the full run in time order, each with its bar position.
        let mut sorted: Vec<(usize, &Key, Option<usize>)> = fkeys
            .iter()
            .enumerate()
            .map(|(i, k)| (i, k, position(k)))
            .collect();
        sorted.sort_by(|a, b| order(&a.1.0, &b.1.0).then_with(|| a.1.1.cmp(&b.1.1)));
        let value_columns: Vec<&str> = full
            .names()
            .into_iter()
            .filter(|c| !keys.contains(c) && full.numbers(c).is_some())
            .collect();
        let mut first: BTreeMap<String, Change> = BTreeMap::new();
        // Every (cut, test) run, in parallel (each writes its own files).
        let jobs: Vec<(usize, &str, &'static str)> = cuts
            .iter()
            .enumerate()
            .flat_map(|(i, c)| [(i, c.as_str(), "truncate"), (i, c.as_str(), "perturb")])
            .collect();
        let results: Vec<Result<std::result::Result<Table, crate::protocol::Failure>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs
                    .iter()
                    .map(|&(i, cut, test)| {
                        let (cmd, prices, pkeys, data, work) =
                            (&cmd, &prices, &pkeys, data, work.path());
                        let keys = &keys;
                        scope.spawn(move || {
                            let tag = format!("-{test}-{i}");
                            let file = if test == "truncate" {
                                truncated(
                                    prices,
                                    pkeys,
                                    cut,
                                    &work.join(format!("prices{tag}.csv")),
                                )?
                            } else {
                                perturbed(
                                    prices,
                                    pkeys,
                                    cut,
                                    data,
                                    settings.perturb,
                                    &work.join(format!("prices{tag}.csv")),
                                )?
                            };
                            cmd.run_table_tagged(loaded, work, &[("prices", file)], keys, &tag)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a leakage run panicked"))
                    .collect()
            });
        for ((_, cut, test), result) in jobs.iter().zip(results) {
            let cut_pos: BTreeMap<&str, usize> = by_symbol
                .iter()
                .filter_map(|(s, v)| {
                    v.iter()
                        .rposition(|t| order(t, cut).is_le())
                        .map(|p| (*s, p))
                })
                .collect();
            // A row must be unchanged when it is at or before the cut (features), or at least `horizon`
            // bars before it (labels).
            let lookahead = if name == "labels" { horizon()? } else { 0 };
            let rows: Vec<(usize, &Key)> = sorted
                .iter()
                .filter(|(_, k, p)| matches!((p, cut_pos.get(k.1.as_str())), (Some(p), Some(&c)) if p + lookahead <= c))
                .map(|(i, k, _)| (*i, *k))
                .collect();
            let t = match result? {
                Ok(t) => t,
                Err(f) => {
                    out.push(cmd.failed(&BUILDER_FAILED, loaded, &f).note(format!(
                        "on the prices {} after {cut}",
                        if *test == "truncate" {
                            "truncated"
                        } else {
                            "perturbed"
                        }
                    )));
                    continue;
                }
            };
            runs += 1;
            let tindex = match t
                .keys(&data.timestamp, &data.symbol)
                .and_then(|k| t.index(&k))
            {
                Ok(i) => i,
                Err(e) => {
                    out.push(cmd.failed(&BUILDER_FAILED, loaded, &crate::builders::bad_keys(e)));
                    continue;
                }
            };
            for col in &value_columns {
                if first.contains_key(*col) {
                    continue;
                }
                let (Some(fv), Some(tv)) = (full.numbers(col), t.numbers(col)) else {
                    continue;
                };
                for &(i, k) in &rows {
                    let after = tindex.get(k).map_or(f64::NAN, |&j| tv[j]);
                    if !crate::stats::close(after, fv[i], 1e-12, 1e-9) {
                        let what = if *test == "truncate" {
                            format!("every bar after {cut} is removed")
                        } else {
                            format!(
                                "the prices after {cut} are multiplied by {}",
                                settings.perturb
                            )
                        };
                        first.insert(
                            col.to_string(),
                            Change {
                                test: what,
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
        for (col, ch) in first {
            let msg = format!(
                "`{col}` at {} changes when {}: {} → {}",
                show_key(&ch.key),
                ch.test,
                show(ch.before),
                show(ch.after)
            );
            let f = if name == "labels" {
                let horizon = horizon()?;
                Finding::new(&LABEL_LEAKAGE, format!("label {msg}; a label with horizon {horizon} may only read {horizon} bars ahead"))
                    .at(cx.facts.code.horizon.origin.clone())
                    .help("compute the label from bars t+1 … t+horizon only")
            } else {
                let names = cx.facts.feature_names()?;
                let at = match names.iter().position(|n| *n == col) {
                    Some(i) => cx
                        .facts
                        .code
                        .columns
                        .item(i)
                        .with_label(format!("feature `{col}`")),
                    None => cx.facts.code.columns.origin.clone(),
                };
                Finding::new(&FEATURE_LEAKAGE, format!("feature {msg}"))
                    .at(at)
                    .help("a feature at t may read bars up to t only: no centred windows, negative shifts, or statistics over the whole history")
            };
            out.push(f.related(cmd.origin(loaded)));
        }
    }
    Ok(Report {
        findings: out,
        summary: format!(
            "{} cuts · truncate + perturb · {runs} builder runs",
            cuts.len()
        ),
        skipped: None,
    })
}

/// Numeric order when both are numbers, text order otherwise.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
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
        .filter(|&i| order(&keys[i].0, cut).is_le())
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
            if order(&keys[i].0, cut).is_gt() && data.price_columns.iter().any(|c| c == col) {
                factor
            } else {
                1.0
            }
        },
        path,
    )?;
    Ok(path.to_path_buf())
}
