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
use crate::paths::display_path;

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

/// Writes `prices` plus the edge symbols to `out`. `None` (nothing written) when the prices are
/// Parquet, have no `symbol` column, or have no rows.
pub fn write(prices: &Path, timestamp: &str, symbol: &str, out: &Path) -> Result<Option<Edges>> {
    let bytes = std::fs::read(prices).map_err(|e| Error::io(prices, e))?;
    if bytes.starts_with(b"PAR1") || symbol.is_empty() {
        return Ok(None);
    }
    let bad = |e: csv::Error| Error::msg(format!("{}: {e}", display_path(prices)));
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let header = reader.headers().map_err(bad)?.clone();
    let (Some(ts), Some(sym)) = (
        header.iter().position(|h| h == timestamp),
        header.iter().position(|h| h == symbol),
    ) else {
        return Ok(None);
    };
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    let Some(first) = records.iter().map(|r| &r[sym]).min().map(str::to_owned) else {
        return Ok(None);
    };
    let mut bars: Vec<&csv::StringRecord> = records.iter().filter(|r| r[sym] == *first).collect();
    bars.sort_by(|a, b| crate::table::time_order(&a[ts], &b[ts]));
    bars.truncate(EDGE_BARS);
    let names = Names::new(&records, sym, &first, bars.len());
    let mut edges = Edges::default();
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_path(out)
        .map_err(|e| Error::msg(format!("{}: {e}", out.display())))?;
    let fail = |e: csv::Error| Error::msg(format!("{}: {e}", out.display()));
    w.write_record(&header).map_err(fail)?;
    for r in &records {
        w.write_record(r).map_err(fail)?;
    }
    let with = |r: &csv::StringRecord, name: &str, held: Option<&csv::StringRecord>| {
        r.iter()
            .enumerate()
            .map(|(j, cell)| match (j, held) {
                (j, _) if j == sym => name.to_owned(),
                (j, Some(h)) if j != ts => h[j].to_owned(),
                _ => cell.to_owned(),
            })
            .collect::<Vec<_>>()
    };
    for n in 1..=bars.len() {
        let name = names.next();
        for r in &bars[..n] {
            w.write_record(with(r, &name, None)).map_err(fail)?;
        }
        edges
            .symbols
            .insert(name, format!("the first {} of {first}", bars_n(n)));
    }
    let name = names.next();
    for r in &bars {
        w.write_record(with(r, &name, Some(bars[0]))).map_err(fail)?;
    }
    edges.symbols.insert(
        name,
        format!(
            "{} of {first} with every price and the volume held at its first bar's",
            bars_n(bars.len())
        ),
    );
    w.flush().map_err(|e| Error::io(out, e))?;
    Ok(Some(edges))
}

fn bars_n(n: usize) -> String {
    if n == 1 {
        "1 bar".into()
    } else {
        format!("{n} bars")
    }
}

/// Names for the synthetic symbols: `~AAA-1`, `~AAA-2`, …, `~AAA-flat` in order; numbers after the
/// largest symbol when every symbol is an integer (a builder may parse them).
struct Names {
    next: std::cell::Cell<usize>,
    numeric: Option<i64>,
    first: String,
    count: usize,
}

impl Names {
    fn new(records: &[csv::StringRecord], sym: usize, first: &str, count: usize) -> Names {
        let numeric = records
            .iter()
            .map(|r| r[sym].parse::<i64>().ok())
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().max());
        Names {
            next: std::cell::Cell::new(0),
            numeric,
            first: first.to_owned(),
            count,
        }
    }

    fn next(&self) -> String {
        let i = self.next.get() + 1;
        self.next.set(i);
        match self.numeric {
            Some(max) => (max + i as i64).to_string(),
            None if i <= self.count => format!("~{}-{i}", self.first),
            None => format!("~{}-flat", self.first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_symbols_copy_cells_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let prices = dir.path().join("p.csv");
        std::fs::write(
            &prices,
            "timestamp,symbol,close,volume\n2,B,10.5,7\n1,A,3,100\n3,A,4,90\n2,A,5,80\n",
        )
        .unwrap();
        let out = dir.path().join("o.csv");
        let edges = write(&prices, "timestamp", "symbol", &out).unwrap().unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "timestamp,symbol,close,volume\n2,B,10.5,7\n1,A,3,100\n3,A,4,90\n2,A,5,80\n\
             1,~A-1,3,100\n\
             1,~A-2,3,100\n2,~A-2,5,80\n\
             1,~A-3,3,100\n2,~A-3,5,80\n3,~A-3,4,90\n\
             1,~A-flat,3,100\n2,~A-flat,3,100\n3,~A-flat,3,100\n"
        );
        assert_eq!(edges.describe("~A-2"), Some("the first 2 bars of A"));
        assert!(edges.describe("A").is_none());
    }

    #[test]
    fn integer_symbols_get_integer_names() {
        let dir = tempfile::tempdir().unwrap();
        let prices = dir.path().join("p.csv");
        std::fs::write(&prices, "timestamp,symbol,close\n1,10001,3\n1,10007,4\n").unwrap();
        let out = dir.path().join("o.csv");
        let edges = write(&prices, "timestamp", "symbol", &out).unwrap().unwrap();
        let names: Vec<&String> = edges.symbols.keys().collect();
        assert_eq!(names, ["10008", "10009"]);
        assert_eq!(edges.describe("10009").unwrap(), "1 bar of 10001 with every price and the volume held at its first bar's");
    }
}
