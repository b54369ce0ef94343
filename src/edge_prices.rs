//! Edge-case symbols for the feature builders: the prices table with synthetic symbols appended where
//! the branches a market rarely takes are taken (docs/gates/feature-parity.md, Edge symbols):
//!
//! - the first 1, 2, …, `EDGE_BARS` bars of the first symbol, each as a symbol of its own: a window of
//!   exactly w bars meets every `n >= w` and `len(xs) == w` at its boundary;
//! - `EDGE_BARS` bars of that symbol with every non-key cell held at its first bar's: no price move, no
//!   volume change, so every zero-variance and 0/0 branch (a volatility ratio, an RSI without gains or
//!   losses, a z-score of a constant) is taken.
//!
//! Rows are copied as text, cell for cell, so a builder that parses integers still reads them. Only CSV
//! prices with a symbol column get them; the file is written to the gate's work directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// The longest synthetic symbol, in bars.
pub const EDGE_BARS: usize = 64;

/// The synthetic symbols written, and what each is (for findings).
#[derive(Debug, Default)]
pub struct Edges {
    pub symbols: BTreeMap<String, String>,
}

impl Edges {
    /// What a synthetic symbol is (`the first 14 bars of AAA`), `None` for a real one.
    pub fn describe(&self, symbol: &str) -> Option<&str> {
        self.symbols.get(symbol).map(String::as_str)
    }
}

/// The columns of the prices table the edge symbols are made from.
pub struct Layout<'a> {
    pub timestamp: &'a str,
    /// Empty when there is none (then there are no edge symbols).
    pub symbol: &'a str,
    /// The price columns (`[data] price-columns`): scaled for the penny symbol, zeroed for a bad bar.
    pub prices: &'a [String],
    /// The column the labels builder reads (`targets.definition.price`, else `close`): kept in the
    /// zero-but-close table, and the labels builder takes part in a table only where it is bad.
    pub close: &'a str,
}

/// A table of bars no market should send, which every builder must treat alike.
pub struct Bad {
    pub path: std::path::PathBuf,
    /// Its symbol, and what is wrong with it (for messages).
    pub symbol: String,
    pub what: String,
    /// Whether the labels builder must treat it alike too: a table whose close is bad (a labels builder
    /// reads the close only, so it may rightly accept a bad open).
    pub labels_too: bool,
}

/// The edge symbols' table, and the bad-bar tables, all in `work`.
pub struct Written {
    /// The edge symbols only: a table of its own, so no real symbol's cross-sectional feature (a rank,
    /// a market mean) sees them.
    pub edge: std::path::PathBuf,
    pub edges: Edges,
    pub bad: Vec<Bad>,
}

/// Writes the edge symbols' table and the bad-bar tables to `work`. `None` (nothing written) when the
/// prices are Parquet, have no symbol column, no rows, or are not a CSV the csv reader takes (the
/// builders' own run on them says what is wrong).
pub fn write(prices: &Path, layout: &Layout, work: &Path) -> Result<Option<Written>> {
    let bytes = std::fs::read(prices).map_err(|e| Error::io(prices, e))?;
    if bytes.starts_with(b"PAR1") || layout.symbol.is_empty() {
        return Ok(None);
    }
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let Ok(header) = reader.headers().cloned() else {
        return Ok(None);
    };
    let (Some(ts), Some(sym)) = (
        header.iter().position(|h| h == layout.timestamp),
        header.iter().position(|h| h == layout.symbol),
    ) else {
        return Ok(None);
    };
    let Ok(records) = reader
        .records()
        .collect::<std::result::Result<Vec<csv::StringRecord>, _>>()
    else {
        return Ok(None);
    };
    let Some(first) = records.iter().map(|r| &r[sym]).min().map(str::to_owned) else {
        return Ok(None);
    };
    let mut bars: Vec<&csv::StringRecord> = records.iter().filter(|r| r[sym] == *first).collect();
    // Numeric order when every timestamp is a number, text order otherwise: a total order either way.
    if bars
        .iter()
        .all(|r| r[ts].trim().parse::<f64>().is_ok_and(f64::is_finite))
    {
        bars.sort_by(|a, b| crate::table::time_order(&a[ts], &b[ts]));
    } else {
        bars.sort_by(|a, b| a[ts].cmp(&b[ts]));
    }
    bars.truncate(EDGE_BARS);
    let shape = Shape {
        header: &header,
        ts,
        sym,
        prices: layout
            .prices
            .iter()
            .filter_map(|p| header.iter().position(|h| h == p))
            .collect(),
    };
    let names = Names::new(&records, sym, &first);
    let mut edges = Edges::default();
    let rows = shape.edge_rows(&bars, &names, &mut edges);
    let edge = work.join("edge-symbols.csv");
    shape.write(&edge, &rows)?;
    let close = header.iter().position(|h| h == layout.close);
    let bad = shape.bad_tables(&bars, (&names, close), work, &mut edges)?;
    Ok(Some(Written { edge, edges, bad }))
}

/// How a synthetic row's non-key cells are made from a real row's.
enum Cells<'a> {
    Same,
    /// Every non-key cell is this row's.
    HeldAt(&'a csv::StringRecord),
    /// Price cells divided by this.
    Scaled(f64),
    /// Price cells set to 0, but the one in this column (the close) when there is one.
    Zero(Option<usize>),
}

/// The header and where the key and price columns are.
struct Shape<'a> {
    header: &'a csv::StringRecord,
    ts: usize,
    sym: usize,
    prices: Vec<usize>,
}

impl Shape<'_> {
    fn with(&self, r: &csv::StringRecord, name: &str, cells: Cells) -> Vec<String> {
        r.iter()
            .enumerate()
            .map(|(j, cell)| {
                if j == self.sym {
                    return name.to_owned();
                }
                let price = self.prices.contains(&j);
                match cells {
                    Cells::HeldAt(h) if j != self.ts => h[j].to_owned(),
                    Cells::Scaled(by) if price => cell
                        .trim()
                        .parse::<f64>()
                        .map_or_else(|_| cell.to_owned(), |v| format!("{:?}", v / by)),
                    Cells::Zero(keep) if price && keep != Some(j) => "0".to_owned(),
                    _ => cell.to_owned(),
                }
            })
            .collect()
    }

    /// The edge symbols' rows from `bars` (one symbol's first bars, in time order), each symbol
    /// described in `edges`.
    fn edge_rows(
        &self,
        bars: &[&csv::StringRecord],
        names: &Names,
        edges: &mut Edges,
    ) -> Vec<Vec<String>> {
        let first = &names.first;
        let mut rows: Vec<Vec<String>> = Vec::new();
        for n in 1..=bars.len() {
            let name = names.next(&n.to_string());
            rows.extend(bars[..n].iter().map(|r| self.with(r, &name, Cells::Same)));
            edges
                .symbols
                .insert(name, format!("the first {} of {first}", bars_n(n)));
        }
        let name = names.next("flat");
        rows.extend(
            bars.iter()
                .map(|r| self.with(r, &name, Cells::HeldAt(bars[0]))),
        );
        edges.symbols.insert(
            name,
            format!(
                "{} of {first} with every price and the volume held at its first bar's",
                bars_n(bars.len())
            ),
        );
        let name = names.next("penny");
        let scale = self.below_tenth(bars);
        rows.extend(
            bars.iter()
                .map(|r| self.with(r, &name, Cells::Scaled(scale))),
        );
        edges.symbols.insert(
            name,
            format!(
                "{} of {first} with every price divided by {scale} (all below 0.1, as a penny stock's)",
                bars_n(bars.len())
            ),
        );
        rows
    }

    /// The power of ten that brings every price of `bars` below 0.1.
    fn below_tenth(&self, bars: &[&csv::StringRecord]) -> f64 {
        let max = bars
            .iter()
            .flat_map(|r| {
                self.prices
                    .iter()
                    .filter_map(|&j| r[j].trim().parse::<f64>().ok())
            })
            .filter(|v| v.is_finite())
            .fold(0.0f64, |a, v| a.max(v.abs()));
        let mut scale = 100.0;
        while max / scale >= 0.1 && scale < 1e300 {
            scale *= 10.0;
        }
        scale
    }

    fn write(&self, out: &Path, rows: &[Vec<String>]) -> Result<()> {
        let fail = |e: csv::Error| Error::msg(format!("{}: {e}", out.display()));
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_path(out)
            .map_err(fail)?;
        w.write_record(self.header).map_err(fail)?;
        for r in rows {
            w.write_record(r).map_err(fail)?;
        }
        w.flush().map_err(|e| Error::io(out, e))
    }

    /// The bad-bar tables, from `bars` with the middle bar made bad: every price 0 (every builder,
    /// the labels builder too); every price but the close 0, when there is a close and another price
    /// column (the feature builders); the bar twice (every builder). None for fewer than 2 bars.
    fn bad_tables(
        &self,
        bars: &[&csv::StringRecord],
        (names, close): (&Names, Option<usize>),
        work: &Path,
        edges: &mut Edges,
    ) -> Result<Vec<Bad>> {
        if bars.len() < 2 {
            return Ok(Vec::new());
        }
        let k = bars.len() / 2;
        let n = format!("{} of {}", bars_n(bars.len()), names.first);
        let mut kinds: Vec<(&str, String, Option<Cells>, bool)> = Vec::new();
        let close_zeroed = close.is_some_and(|c| self.prices.contains(&c));
        if !self.prices.is_empty() {
            let what = format!("{n} with every price of bar {} set to 0", k + 1);
            kinds.push(("zero", what, Some(Cells::Zero(None)), close_zeroed));
        }
        if close_zeroed && self.prices.len() >= 2 {
            let what = format!(
                "{n} with every price but the close of bar {} set to 0",
                k + 1
            );
            kinds.push(("zero-but-close", what, Some(Cells::Zero(close)), false));
        }
        let what = format!("{n} with bar {} twice", k + 1);
        kinds.push(("duplicate", what, None, close.is_some()));
        let mut out = Vec::new();
        for (kind, what, cells, labels_too) in kinds {
            let symbol = names.next(kind);
            let mut rows: Vec<Vec<String>> = bars
                .iter()
                .map(|r| self.with(r, &symbol, Cells::Same))
                .collect();
            match cells {
                Some(c) => rows[k] = self.with(bars[k], &symbol, c),
                None => rows.insert(k, rows[k].clone()),
            }
            let path = work.join(format!("bad-bars-{kind}.csv"));
            self.write(&path, &rows)?;
            edges.symbols.insert(symbol.clone(), what.clone());
            out.push(Bad {
                path,
                symbol,
                what,
                labels_too,
            });
        }
        Ok(out)
    }
}

fn bars_n(n: usize) -> String {
    if n == 1 {
        "1 bar".into()
    } else {
        format!("{n} bars")
    }
}

/// Names for the synthetic symbols: `~AAA-<kind>` (`~AAA-14`, `~AAA-flat`); numbers after the largest
/// symbol, in order, when every symbol is an integer (a builder may parse them).
struct Names {
    next: std::cell::Cell<i64>,
    numeric: Option<i64>,
    first: String,
}

impl Names {
    fn new(records: &[csv::StringRecord], sym: usize, first: &str) -> Names {
        let numeric = records
            .iter()
            .map(|r| r[sym].parse::<i64>().ok())
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().max());
        Names {
            next: std::cell::Cell::new(0),
            numeric,
            first: first.to_owned(),
        }
    }

    fn next(&self, kind: &str) -> String {
        let i = self.next.get() + 1;
        self.next.set(i);
        match self.numeric {
            Some(max) if max.checked_add(i).is_some() => (max + i).to_string(),
            _ => format!("~{}-{kind}", self.first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(prices: &[String]) -> Layout<'_> {
        Layout {
            timestamp: "timestamp",
            symbol: "symbol",
            prices,
            close: "close",
        }
    }

    #[test]
    fn edge_symbols_copy_cells_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let prices = dir.path().join("p.csv");
        std::fs::write(
            &prices,
            "timestamp,symbol,close,volume\n2,B,10.5,7\n1,A,3,100\n3,A,4,90\n2,A,5,80\n",
        )
        .unwrap();
        let cols = ["close".to_owned()];
        let w = write(&prices, &layout(&cols), dir.path()).unwrap().unwrap();
        let text = std::fs::read_to_string(&w.edge).unwrap();
        assert_eq!(
            text,
            "timestamp,symbol,close,volume\n\
             1,~A-1,3,100\n\
             1,~A-2,3,100\n2,~A-2,5,80\n\
             1,~A-3,3,100\n2,~A-3,5,80\n3,~A-3,4,90\n\
             1,~A-flat,3,100\n2,~A-flat,3,100\n3,~A-flat,3,100\n\
             1,~A-penny,0.03,100\n2,~A-penny,0.05,80\n3,~A-penny,0.04,90\n"
        );
        assert_eq!(w.edges.describe("~A-2"), Some("the first 2 bars of A"));
        assert!(w.edges.describe("A").is_none());
        let bad: Vec<(String, String)> = w
            .bad
            .iter()
            .map(|b| (b.symbol.clone(), std::fs::read_to_string(&b.path).unwrap()))
            .collect();
        assert_eq!(
            bad,
            [
                (
                    "~A-zero".to_owned(),
                    "timestamp,symbol,close,volume\n1,~A-zero,3,100\n2,~A-zero,0,80\n3,~A-zero,4,90\n".to_owned()
                ),
                (
                    "~A-duplicate".to_owned(),
                    "timestamp,symbol,close,volume\n1,~A-duplicate,3,100\n2,~A-duplicate,5,80\n2,~A-duplicate,5,80\n3,~A-duplicate,4,90\n".to_owned()
                )
            ]
        );
        assert_eq!(
            w.edges.describe("~A-zero"),
            Some("3 bars of A with every price of bar 2 set to 0")
        );
    }

    #[test]
    fn integer_symbols_get_integer_names() {
        let dir = tempfile::tempdir().unwrap();
        let prices = dir.path().join("p.csv");
        std::fs::write(&prices, "timestamp,symbol,close\n1,10001,3\n1,10007,4\n").unwrap();
        let w = write(&prices, &layout(&[]), dir.path()).unwrap().unwrap();
        let names: Vec<&String> = w.edges.symbols.keys().collect();
        assert_eq!(names, ["10008", "10009", "10010"]);
        assert_eq!(
            w.edges.describe("10009").unwrap(),
            "1 bar of 10001 with every price and the volume held at its first bar's"
        );
        assert!(w.bad.is_empty(), "one bar: no bad tables");
    }
}
