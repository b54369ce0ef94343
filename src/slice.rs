//! The reference slice: raw (unscaled) feature rows the model gates run on. A CSV with a header; the
//! feature columns are picked by name in the contract's order, so the file's own column order does not
//! matter. Empty cells and `nan` are NaN. Anything else that is not a number is an error naming the
//! file, line and column.

use std::path::Path;

use crate::config::{Loaded, SliceSection, display_path};
use crate::engine::Matrix;
use crate::error::{Error, Result};
use crate::finding::Location;

#[derive(Debug, Clone)]
pub struct Slice {
    /// The file as findings show it.
    pub path: String,
    pub timestamps: Vec<String>,
    pub symbols: Vec<Option<String>>,
    /// Raw feature values, `rows × features`, in the contract's feature order.
    pub features: Matrix,
    /// The file line of each row (1-based; the header is line 1).
    pub lines: Vec<u32>,
}

impl Slice {
    pub fn len(&self) -> usize {
        self.features.rows
    }

    pub fn is_empty(&self) -> bool {
        self.features.rows == 0
    }

    /// `timestamp` or `timestamp symbol` of row `i`, for messages.
    pub fn key(&self, i: usize) -> String {
        match &self.symbols[i] {
            Some(s) => format!("{} {s}", self.timestamps[i]),
            None => self.timestamps[i].clone(),
        }
    }

    pub fn location(&self, i: usize) -> Location {
        Location::at(&self.path, self.lines[i])
    }
}

pub fn load(loaded: &Loaded, section: &SliceSection, columns: &[String]) -> Result<Slice> {
    read(&loaded.resolve(&section.features), section, columns)
}

pub fn read(path: &Path, section: &SliceSection, columns: &[String]) -> Result<Slice> {
    let display = display_path(path);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let at = |line: u64, msg: String| Error::at(Location::at(&display, line as u32), msg);
    let headers = reader
        .headers()
        .map_err(|e| at(1, format!("reading the header: {e}")))?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h == name);
    let ts_col = index(&section.timestamp).ok_or_else(|| {
        at(
            1,
            format!("no timestamp column `{}` in the header", section.timestamp),
        )
    })?;
    let sym_col = match section.symbol.as_str() {
        "" => None,
        s => Some(index(s).ok_or_else(|| {
            at(
                1,
                format!("no symbol column `{s}` in the header (set `slice.symbol`, \"\" for none)"),
            )
        })?),
    };
    let mut feature_cols = Vec::with_capacity(columns.len());
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| index(c).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(at(
            1,
            format!(
                "the slice has no column for {} contract feature{}: {}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        ));
    }
    for c in columns {
        feature_cols.push(index(c).expect("checked above"));
    }
    let mut data = Vec::new();
    let mut timestamps = Vec::new();
    let mut symbols = Vec::new();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            at(line, e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line());
        timestamps.push(record[ts_col].to_owned());
        symbols.push(sym_col.map(|c| record[c].to_owned()));
        for (k, &c) in feature_cols.iter().enumerate() {
            let cell = record[c].trim();
            let v = if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
                f64::NAN
            } else {
                cell.parse::<f64>().map_err(|_| {
                    at(
                        line,
                        format!("`{cell}` in column `{}` is not a number", columns[k]),
                    )
                })?
            };
            data.push(v);
        }
        lines.push(line as u32);
    }
    Ok(Slice {
        path: display,
        timestamps,
        symbols,
        features: Matrix::new(lines.len(), columns.len(), data),
        lines,
    })
}
