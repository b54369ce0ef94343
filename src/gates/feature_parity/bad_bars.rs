//! Bad bars: every builder runs on each bad-bar table (`edge_prices::Bad`: a bar with zero prices, a bar
//! with zero prices but its close, a bar twice), and they must treat it alike: every builder refuses it
//! (exits non-zero), or every builder writes a table and the feature builders' tables agree with the
//! training builder's like the main comparison. The labels builder takes part in the tables whose close
//! is bad (it reads no other price). A builder
//! that accepts what another refuses is `bad-bars-disagree`: live would trade on a tick the backtest never
//! saw, or stop where the backtest went on.

use std::path::Path;

use super::{BuilderRun, Parity, compare_with_training};
use crate::builders::{command, declared_columns};
use crate::config::CommandSpec;
use crate::edge_prices::Bad;
use crate::error::Result;
use crate::finding::{Finding, Location};
use crate::protocol::Failure;

/// What one builder did with a bad-bar table.
struct Outcome<'a> {
    run: Option<BuilderRun<'a>>,
    /// Why it refused, when it did.
    refused: Option<String>,
    name: &'static str,
}

/// Runs every builder on every bad-bar table; findings go to `out`. Returns how many values were compared.
pub(super) fn check<'a>(
    p: &Parity<'a>,
    all: &[(&'static str, &'a CommandSpec)],
    work: &Path,
    bad: &[Bad],
    out: &mut Vec<Finding>,
) -> Result<usize> {
    // The labels builder reads the prices too: it must refuse a bad close like the others.
    let labels = labels_spec(p);
    let readers = |b: &Bad| {
        let mut r = all.to_vec();
        if let Some(spec) = labels.filter(|_| b.labels_too) {
            r.push(("labels", spec));
        }
        r
    };
    // Every (table, builder) run is independent: two at a time, results in a fixed order.
    let jobs: Vec<(&Bad, &'static str, &'a CommandSpec)> = bad
        .iter()
        .flat_map(|b| readers(b).into_iter().map(move |(n, s)| (b, n, s)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Outcome<'a>>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(&(b, name, spec)) = jobs.get(i) else {
                        break;
                    };
                    let r = run_one(p, work, b, (name, spec));
                    *results[i].lock().expect("no panic while holding it") = Some(r);
                }
            });
        }
    });
    let mut outcomes = results
        .into_iter()
        .map(|m| m.into_inner().expect("no panic").expect("every job ran"));
    let mut compared = 0;
    for b in bad {
        let n = readers(b).len();
        let these: Vec<Outcome> = outcomes.by_ref().take(n).collect::<Result<_>>()?;
        compared += judge(p, b, &these, out);
    }
    Ok(compared)
}

/// One builder on one bad-bar table.
fn run_one<'a>(
    p: &Parity,
    work: &Path,
    b: &Bad,
    (name, spec): (&'static str, &'a CommandSpec),
) -> Result<Outcome<'a>> {
    let cmd = command(p.loaded, name, spec);
    let declared = declared_columns(p.loaded, spec)?;
    let stem = b.path.file_stem().unwrap_or_default().to_string_lossy();
    let tag = format!("-{stem}");
    let vars = [("prices", b.path.clone())];
    Ok(
        match cmd.run_table_tagged(p.loaded, work, &vars, &p.keys, &tag)? {
            Ok(table) => Outcome {
                run: Some(BuilderRun {
                    name,
                    cmd,
                    declared,
                    table,
                }),
                refused: None,
                name,
            },
            Err(f) => Outcome {
                run: None,
                refused: Some(first_line(&f)),
                name,
            },
        },
    )
}

/// The first line of a failure's message (the exit status and the first line of stderr).
fn first_line(f: &Failure) -> String {
    let m = f.message();
    let mut lines = m.lines();
    let head = lines.next().unwrap_or_default().to_owned();
    match lines.find(|l| !l.trim().is_empty()) {
        Some(next) if head.ends_with("stderr:") => format!("{head} {}", next.trim()),
        _ => head,
    }
}

/// Every builder refused, or every builder wrote a table (compared with the training builder's), or a
/// finding at the first builder that did otherwise than the training builder.
fn judge(p: &Parity, b: &Bad, outcomes: &[Outcome], out: &mut Vec<Finding>) -> usize {
    let Some(training) = outcomes.iter().find(|o| o.name == "training") else {
        return 0;
    };
    let refusing = outcomes.iter().filter(|o| o.refused.is_some()).count();
    if refusing != 0 && refusing != outcomes.len() {
        // The odd one out is the minority; on a tie, the builder that differs from the training one.
        let odd_refuses = match (2 * refusing).cmp(&outcomes.len()) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Greater => false,
            std::cmp::Ordering::Equal => training.refused.is_none(),
        };
        let odd = outcomes
            .iter()
            .find(|o| o.refused.is_some() == odd_refuses)
            .expect("both kinds are present");
        let other = outcomes
            .iter()
            .find(|o| o.refused.is_some() != odd_refuses)
            .expect("both kinds are present");
        out.push(disagree(p, b, other, odd));
        return 0;
    }
    let Some(t) = &training.run else {
        return 0; // every builder refused
    };
    let index = match p.index(&t.table) {
        Ok(index) => index,
        Err(e) => {
            // The bar twice, kept twice: a table no comparison can join, so no pass on it.
            let f = t.cmd.failed(
                &super::BUILDER_FAILED,
                p.loaded,
                &crate::builders::bad_keys(e),
            );
            out.push(f.note(format!("on {} (`{}`)", b.what, b.symbol)));
            return 0;
        }
    };
    outcomes
        .iter()
        .filter_map(|o| {
            o.run
                .as_ref()
                .filter(|r| r.name != "training" && r.name != "labels")
        })
        .map(|r| compare_with_training(p, t, &index, r, out))
        .sum()
}

/// `odd` does otherwise than `other` (and than the majority, or the training builder on a tie).
fn disagree(p: &Parity, b: &Bad, other: &Outcome, odd: &Outcome) -> Finding {
    let did = |o: &Outcome| match &o.refused {
        Some(why) => format!("refuses it ({why})"),
        None => "writes a table".to_owned(),
    };
    let cmd = command(p.loaded, odd.name, spec_of(p, odd.name));
    Finding::new(
        &super::BAD_BARS_DISAGREE,
        format!(
            "the builders treat bad bars differently: on {} (`{}`), the {} builder {} and the {} builder {}",
            b.what,
            b.symbol,
            odd.name,
            did(odd),
            other.name,
            did(other)
        ),
    )
    .at(cmd.origin(p.loaded))
    .related(Location::file(p.loaded.display(&p.data.prices)).with_label("the prices the bars come from"))
    .help("validate bars the same way in every builder: refuse them everywhere, or compute the same from them everywhere")
}

/// The labels builder's command, when there is one.
fn labels_spec<'a>(p: &Parity<'a>) -> Option<&'a CommandSpec> {
    p.loaded.config.builders.as_ref()?.labels.as_ref()
}

/// The configured command of builder `name` (a feature builder, or `labels`).
fn spec_of<'a>(p: &Parity<'a>, name: &str) -> &'a CommandSpec {
    let labels = labels_spec(p);
    crate::builders::builders(p.loaded)
        .into_iter()
        .chain(labels.map(|s| ("labels", s)))
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .expect("a builder that ran is configured")
}
