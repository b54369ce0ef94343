//! The reference slice: raw (unscaled) feature rows the model gates run on. A CSV with a header; the
//! feature columns are picked by name in the contract's order, so the file's own column order does not
//! matter. Empty cells and `nan` are NaN. Anything else that is not a number is an error naming the
//! file, line and column.

use std::path::Path;

use crate::config::{Loaded, SliceSection};
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::matrix::Matrix;
use crate::table::Table;

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

    /// The join key of row `i`: (timestamp, symbol or "").
    pub fn key_tuple(&self, i: usize) -> crate::table::Key {
        (
            self.timestamps[i].clone(),
            self.symbols[i].clone().unwrap_or_default(),
        )
    }

    pub fn location(&self, i: usize) -> Location {
        Location::at(&self.path, self.lines[i])
    }
}

pub fn load(loaded: &Loaded, section: &SliceSection, columns: &[String]) -> Result<Slice> {
    read(&loaded.resolve(&section.features), section, columns)
}

pub fn read(path: &Path, section: &SliceSection, columns: &[String]) -> Result<Slice> {
    let keys: Vec<&str> = [section.timestamp.as_str(), section.symbol.as_str()]
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect();
    let table = crate::table::read(path, &keys)?;
    from_table(&table, section, columns)
}

/// The feature columns of a table, by name in `columns` order, with its keys.
pub fn from_table(table: &Table, section: &SliceSection, columns: &[String]) -> Result<Slice> {
    let keys = table.keys(&section.timestamp, &section.symbol)?;
    let header = Location::at(&table.path, 1);
    if table.rows == 0 {
        return Err(Error::at(
            header,
            "the slice has a header and no rows: the model gates need at least one row to run on",
        ));
    }
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| table.column(c).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::at(
            header,
            format!(
                "the slice has no column for {} contract feature{}: {}",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        ));
    }
    let mut data = vec![0.0; table.rows * columns.len()];
    for (k, c) in columns.iter().enumerate() {
        let values = table.numbers(c).ok_or_else(|| {
            let col = table.text(c).unwrap_or_default();
            let (row, cell) = col
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_empty() && v.parse::<f64>().is_err())
                .map(|(i, v)| (i, v.clone()))
                .unwrap_or_default();
            Error::at(
                table.location(row),
                format!("`{cell}` in column `{c}` is not a number"),
            )
        })?;
        for (i, v) in values.iter().enumerate() {
            data[i * columns.len() + k] = *v;
        }
    }
    Ok(Slice {
        path: table.path.clone(),
        timestamps: keys.iter().map(|k| k.0.clone()).collect(),
        symbols: keys
            .iter()
            .map(|k| (!section.symbol.is_empty()).then(|| k.1.clone()))
            .collect(),
        features: Matrix::new(table.rows, columns.len(), data),
        lines: table.lines.clone(),
    })
}
