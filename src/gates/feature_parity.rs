//! # feature-parity (plan script 07_feature_pipeline_parity)
//!
//! **What it does.** Runs the pipeline's feature builders (`[builders]`: training, backtest, live) on
//! the same price data (`[data] prices`), reads the tables they write, and compares each with the
//! training builder's, joined on timestamp (+ symbol): the feature columns and their order against the
//! contract, the rows, the stored dtypes (Parquet), and every value (|a − b| ≤ atol + rtol·|b|, NaN
//! equals NaN). A finding names the feature, the first differing row, both values and how many rows
//! differ, at the builder's line for that feature when the builder declares its `columns`.
//!
//! **Why is this bad?** Three implementations of the same features (vectorised for training, a loop
//! for the backtest, incremental for live) drift apart silently: the model is then evaluated on one
//! feature vector and traded on another.
//!
//! **Example.** The live builder writes 0.0 where the training builder has NaN for `ma_gap_50` during
//! the warm-up: `feature-value-mismatch` at the live builder's `"ma_gap_50",` line, first at
//! 1709827200 AAA, 147 of 2,400 rows differ.

use std::path::PathBuf;

use super::{Context, Gate, Id, Needs, Profile, Report};
use crate::builders::{bad_keys, builders, command, declared_columns};
use crate::config::Loaded;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::protocol::Command;
use crate::source::Fact;
use crate::stats::close;
use crate::table::{Key, Table, show_key};

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
    ],
    needs: Needs {
        engine: false,
        slice: false,
        base: false,
    },
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

/// A builder that ran: its name, command, declared columns and table.
type BuilderRun<'a> = (
    &'static str,
    Command<'a>,
    Option<(Vec<String>, Fact)>,
    Table,
);

pub fn run(cx: &Context) -> Result<Report> {
    let loaded = cx.loaded;
    let (Some(data), Some(_)) = (&loaded.config.data, &loaded.config.builders) else {
        return Ok(Report::skipped(
            "not configured: no `[data]` and `[builders]` in plumbline.toml",
        ));
    };
    let all = builders(loaded);
    if !all.iter().any(|(n, _)| *n == "training") || all.len() < 2 {
        return Ok(Report::skipped(
            "not configured: needs `builders.training` (the reference) and at least one of `builders.backtest`, `builders.live`",
        ));
    }
    let names = cx.facts.feature_names()?;
    let settings = &loaded.config.gates.feature_parity;
    let work = crate::protocol::workdir()?;
    let prices = loaded.resolve(&data.prices);
    let keys: Vec<&str> = [data.timestamp.as_str(), data.symbol.as_str()]
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut tables: Vec<BuilderRun> = Vec::new();
    for (name, spec) in &all {
        let cmd = command(loaded, name, spec);
        let declared = declared_columns(loaded, spec)?;
        match cmd.run_table(
            loaded,
            work.path(),
            &[("prices", PathBuf::from(&prices))],
            &keys,
        )? {
            Ok(t) => tables.push((name, cmd, declared, t)),
            Err(failure) => out.push(cmd.failed(&BUILDER_FAILED, loaded, &failure)),
        }
    }
    let code_at = |f: &str| match names.iter().position(|n| n == f) {
        Some(i) => cx
            .facts
            .code
            .columns
            .item(i)
            .with_label(format!("contract: `{f}`")),
        None => cx.facts.code.columns.origin.clone(),
    };
    // Columns of every builder against the contract.
    for (name, cmd, declared, t) in &tables {
        let written: Vec<&str> = t
            .names()
            .into_iter()
            .filter(|c| !keys.contains(c))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !written.contains(n))
            .collect();
        let extra: Vec<&str> = written
            .iter()
            .copied()
            .filter(|w| !names.iter().any(|n| n == w))
            .collect();
        let at = match declared {
            Some((_, fact)) => fact.origin.clone(),
            None => feature_location(loaded, cmd, declared, ""),
        };
        if !missing.is_empty() || !extra.is_empty() {
            let mut f = Finding::new(
                &COLUMNS_MISMATCH,
                format!("the {name} builder writes other feature columns than the contract"),
            )
            .at(at)
            .related(cx.facts.code.columns.origin.clone())
            .help("write exactly the contract's features, in its order (FEATURE_COLS)");
            if !missing.is_empty() {
                f = f.note(format!("missing: {}", missing.join(", ")));
            }
            if !extra.is_empty() {
                f = f.note(format!("not in the contract: {}", extra.join(", ")));
            }
            out.push(f);
        } else if let Some(i) = written.iter().zip(&names).position(|(w, n)| w != n) {
            out.push(
                Finding::new(
                    &COLUMN_ORDER,
                    format!("the {name} builder writes `{}` at position {i} where the contract has `{}`", written[i], names[i]),
                )
                .at(feature_location(loaded, cmd, declared, written[i]))
                .related(code_at(&names[i]))
                .help("write the features in the contract's order; consumers that take columns by position read the wrong feature"),
            );
        }
    }
    // Rows and values against the training builder.
    let Some(reference) = tables.iter().position(|t| t.0 == "training") else {
        return Ok(Report {
            findings: out,
            summary: "training builder failed".into(),
            skipped: None,
        });
    };
    let (_, rcmd, _, rt) = &tables[reference];
    let keyed = |t: &Table| {
        t.keys(&data.timestamp, &data.symbol)
            .and_then(|k| t.index(&k).map(|i| (k, i)))
    };
    let (_rkeys, rindex) = match keyed(rt) {
        Ok(k) => k,
        Err(e) => {
            out.push(rcmd.failed(&BUILDER_FAILED, loaded, &bad_keys(e)));
            return Ok(Report {
                findings: out,
                summary: "training builder's table unusable".into(),
                skipped: None,
            });
        }
    };
    let mut compared = 0usize;
    for (name, cmd, declared, t) in tables.iter().filter(|t| t.0 != "training") {
        let (_tkeys, tindex) = match keyed(t) {
            Ok(k) => k,
            Err(e) => {
                out.push(cmd.failed(&BUILDER_FAILED, loaded, &bad_keys(e)));
                continue;
            }
        };
        let only_ref: Vec<&Key> = rindex.keys().filter(|k| !tindex.contains_key(*k)).collect();
        let only_t: Vec<&Key> = tindex.keys().filter(|k| !rindex.contains_key(*k)).collect();
        if !only_ref.is_empty() || !only_t.is_empty() {
            let mut f = Finding::new(
                &ROWS_MISMATCH,
                format!("the {name} builder and the training builder write different rows"),
            )
            .at(feature_location(loaded, cmd, &None, ""));
            if let Some(k) = only_ref.first() {
                f = f.note(format!(
                    "{} rows only from the training builder, first {}",
                    only_ref.len(),
                    show_key(k)
                ));
            }
            if let Some(k) = only_t.first() {
                f = f.note(format!(
                    "{} rows only from the {name} builder, first {}",
                    only_t.len(),
                    show_key(k)
                ));
            }
            out.push(
                f.help("emit one row per input bar, warm-up rows included (with empty cells)"),
            );
        }
        let joined: Vec<(&Key, usize, usize)> = rindex
            .iter()
            .filter_map(|(k, &i)| tindex.get(k).map(|&j| (k, i, j)))
            .collect();
        for feature in &names {
            let (Some(rc), Some(tc)) = (rt.column(feature), t.column(feature)) else {
                continue;
            };
            if let (Some(a), Some(b)) = (&rc.dtype, &tc.dtype)
                && a != b
            {
                out.push(
                    Finding::new(&DTYPE_MISMATCH, format!("the {name} builder stores `{feature}` as {b}, the training builder as {a}"))
                        .at(feature_location(loaded, cmd, declared, feature))
                        .related(code_at(feature)),
                );
            }
            let (Some(rv), Some(tv)) = (rt.numbers(feature), t.numbers(feature)) else {
                out.push(
                    Finding::new(
                        &VALUE_MISMATCH,
                        format!("the {name} builder's `{feature}` is not numeric"),
                    )
                    .at(feature_location(loaded, cmd, declared, feature)),
                );
                continue;
            };
            let differing: Vec<&(&Key, usize, usize)> = joined
                .iter()
                .filter(|(_, i, j)| !close(tv[*j], rv[*i], settings.atol, settings.rtol))
                .collect();
            compared += joined.len();
            if let Some((k, i, j)) = differing.first() {
                let f32_exact =
                    |v: &[f64]| v.iter().all(|x| x.is_nan() || f64::from(*x as f32) == *x);
                let mut f = Finding::new(
                    &VALUE_MISMATCH,
                    format!(
                        "`{feature}` differs between the {name} and training builders: first at {}: {} vs {} (training)",
                        show_key(k),
                        show(tv[*j]),
                        show(rv[*i])
                    ),
                )
                .at(feature_location(loaded, cmd, declared, feature))
                .related(code_at(feature))
                .note(format!("{} of {} rows differ (atol {:e}, rtol {:e})", differing.len(), joined.len(), settings.atol, settings.rtol));
                if f32_exact(tv) && !f32_exact(rv) {
                    f = f.note(format!("every value the {name} builder writes for `{feature}` is exactly a float32: it computes or stores in float32"));
                }
                out.push(f.help("the builders must compute the same value from the same bars; compare the two implementations of this feature"));
            }
        }
    }
    Ok(Report {
        findings: out,
        summary: format!("{} builders · {} values compared", tables.len(), compared),
        skipped: None,
    })
}

fn show(v: f64) -> String {
    if v.is_nan() {
        "NaN (empty)".into()
    } else {
        format!("{v:?}")
    }
}
