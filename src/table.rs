//! Tables exchanged with the user's commands (docs/commands.md): CSV with a header, or Parquet (told
//! apart by content: a Parquet file starts and ends with `PAR1`). Key columns (`timestamp`, and
//! `symbol` when present) are text; every other column is numeric when all its non-empty cells are
//! numbers, text otherwise. Empty cells and `nan` are NaN. Rows keep their file line (CSV) or row
//! number (Parquet) so findings can point at them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;

#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Num(Vec<f64>),
    Text(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The stored type where the format has one (Parquet: `float32`, `float64`, `int64`, `utf8`, …);
    /// `None` for CSV.
    pub dtype: Option<String>,
    pub values: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file as findings show it.
    pub path: String,
    pub columns: Vec<Column>,
    /// Per row: the CSV line (header = 1) or the Parquet row number (first = 1).
    pub lines: Vec<u32>,
    pub rows: usize,
}

/// Key of a row for joins: timestamp and symbol (empty when the table has none).
pub type Key = (String, String);

/// Timestamps in time order: numeric order when both are numbers, text order otherwise.
pub fn time_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

/// A numeric cell as findings show it: its shortest round-trip form, or `NaN (empty)`.
pub fn show_cell(v: f64) -> String {
    if v.is_nan() {
        "NaN (empty)".into()
    } else {
        format!("{v:?}")
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// A numeric column's values; `None` when it is missing or text.
    pub fn numbers(&self, name: &str) -> Option<&[f64]> {
        match &self.column(name)?.values {
            Values::Num(v) => Some(v),
            Values::Text(_) => None,
        }
    }

    /// A column as text (numbers formatted), for key columns and messages.
    pub fn text(&self, name: &str) -> Option<Vec<String>> {
        Some(match &self.column(name)?.values {
            Values::Text(v) => v.clone(),
            Values::Num(v) => v.iter().map(|x| fmt_key(*x)).collect(),
        })
    }

    /// Row keys from `timestamp` (required) and `symbol` (when present).
    pub fn keys(&self, timestamp: &str, symbol: &str) -> Result<Vec<Key>> {
        let ts = self.text(timestamp).ok_or_else(|| {
            Error::at(
                Location::at(&self.path, 1),
                format!(
                    "no `{timestamp}` column (columns: {})",
                    self.names().join(", ")
                ),
            )
        })?;
        let sym = if symbol.is_empty() {
            None
        } else {
            self.text(symbol)
        };
        Ok(ts
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, sym.as_ref().map_or(String::new(), |s| s[i].clone())))
            .collect())
    }

    /// Row index by key; a key seen twice is an error naming both lines.
    pub fn index(&self, keys: &[Key]) -> Result<BTreeMap<Key, usize>> {
        let mut out = BTreeMap::new();
        for (i, k) in keys.iter().enumerate() {
            if let Some(j) = out.insert(k.clone(), i) {
                return Err(Error::at(
                    self.location(i),
                    format!(
                        "row {} appears twice (also line {})",
                        show_key(k),
                        self.lines[j]
                    ),
                ));
            }
        }
        Ok(out)
    }

    pub fn location(&self, row: usize) -> Location {
        Location::at(&self.path, self.lines[row])
    }
}

pub fn show_key(k: &Key) -> String {
    if k.1.is_empty() {
        k.0.clone()
    } else {
        format!("{} {}", k.0, k.1)
    }
}

/// Integers print without a fraction (`1710169200`, not `1710169200.0`).
fn fmt_key(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Read a table, CSV or Parquet by content. `keys` are always read as text.
pub fn read(path: &Path, keys: &[&str]) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() >= 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1") {
        return read_parquet(path);
    }
    read_csv(path, &bytes, keys)
}

/// A CSV file's column names, read by the same CSV reader as [`read`] from its first 64 KiB only
/// (a header, never the rows); `None` when there is no header of two or more columns.
pub fn csv_header(path: &Path) -> Option<Vec<String>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file.take(64 * 1024));
    let cols: Vec<String> = reader.headers().ok()?.iter().map(str::to_owned).collect();
    (cols.len() > 1).then_some(cols)
}

fn read_csv(path: &Path, bytes: &[u8], keys: &[&str]) -> Result<Table> {
    let display = display_path(path);
    let at = |line: u64, msg: String| Error::at(Location::at(&display, line as u32), msg);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| at(1, format!("not a CSV table: {e}")))?
        .clone();
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(at(1, "no header".into()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in headers.iter() {
        if !seen.insert(h) {
            return Err(at(1, format!("column `{h}` appears twice in the header")));
        }
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            at(line, format!("malformed CSV: {e}"))
        })?;
        lines.push(record.position().map_or(0, |p| p.line()) as u32);
        for (j, cell) in record.iter().enumerate() {
            cells[j].push(cell.trim().to_owned());
        }
    }
    let columns = headers
        .iter()
        .zip(cells)
        .map(|(name, cells)| {
            let numeric = !keys.contains(&name)
                && cells.iter().all(|c| {
                    c.is_empty() || c.eq_ignore_ascii_case("nan") || c.parse::<f64>().is_ok()
                });
            let values = if numeric {
                Values::Num(
                    cells
                        .iter()
                        .map(|c| c.parse::<f64>().unwrap_or(f64::NAN))
                        .collect(),
                )
            } else {
                Values::Text(cells)
            };
            Column {
                name: name.to_owned(),
                dtype: None,
                values,
            }
        })
        .collect();
    Ok(Table {
        path: display,
        columns,
        rows: lines.len(),
        lines,
    })
}

#[cfg(feature = "parquet")]
fn read_parquet(path: &Path) -> Result<Table> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let display = display_path(path);
    let bad = |e: &dyn std::fmt::Display| malformed_parquet(&display, e);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(&e))?
        .build()
        .map_err(|e| bad(&e))?;
    let mut columns: Vec<Column> = Vec::new();
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        if columns.is_empty() {
            columns = parquet_columns(&batch.schema(), &display)?;
        }
        for (col, array) in columns.iter_mut().zip(batch.columns()) {
            append_parquet(col, array.as_ref());
        }
        rows += batch.num_rows();
    }
    Ok(Table {
        path: display,
        columns,
        lines: (1..=rows as u32).collect(),
        rows,
    })
}

/// The error for a Parquet file `display` that cannot be read.
#[cfg(feature = "parquet")]
fn malformed_parquet(display: &str, e: &dyn std::fmt::Display) -> Error {
    Error::at(Location::file(display), format!("malformed Parquet: {e}"))
}

/// One empty column per field of `schema`, with its stored type; a type it cannot read is an error.
#[cfg(feature = "parquet")]
fn parquet_columns(schema: &arrow_schema::Schema, display: &str) -> Result<Vec<Column>> {
    use arrow_schema::DataType;

    schema
        .fields()
        .iter()
        .map(|f| {
            let (dtype, values) = match f.data_type() {
                DataType::Float32 => ("float32", Values::Num(vec![])),
                DataType::Float64 => ("float64", Values::Num(vec![])),
                DataType::Int32 => ("int32", Values::Num(vec![])),
                DataType::Int64 => ("int64", Values::Num(vec![])),
                DataType::Utf8 | DataType::LargeUtf8 => ("utf8", Values::Text(vec![])),
                other => {
                    return Err(malformed_parquet(
                        display,
                        &format!(
                            "column `{}` has type {other}; plumbline reads float, int and string columns",
                            f.name()
                        ),
                    ));
                }
            };
            Ok(Column {
                name: f.name().clone(),
                dtype: Some(dtype.to_owned()),
                values,
            })
        })
        .collect()
}

/// Append one batch's `array` to `col`: numbers as `f64` (null: NaN), text (null: empty).
#[cfg(feature = "parquet")]
fn append_parquet(col: &mut Column, array: &dyn arrow_array::Array) {
    use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
    use arrow_schema::DataType;

    match (&mut col.values, col.dtype.as_deref()) {
        (Values::Num(v), Some("float32")) => {
            v.extend(parquet_numbers::<Float32Type>(array, f64::from));
        }
        (Values::Num(v), Some("float64")) => {
            v.extend(parquet_numbers::<Float64Type>(
                array,
                std::convert::identity,
            ));
        }
        (Values::Num(v), Some("int32")) => {
            v.extend(parquet_numbers::<Int32Type>(array, f64::from));
        }
        (Values::Num(v), _) => v.extend(parquet_numbers::<Int64Type>(array, |x| x as f64)),
        (Values::Text(v), _) => v.extend(match array.data_type() {
            DataType::LargeUtf8 => parquet_strings::<i64>(array),
            _ => parquet_strings::<i32>(array),
        }),
    }
}

/// A numeric array's values as `f64`, NaN where null.
#[cfg(feature = "parquet")]
fn parquet_numbers<T: arrow_array::types::ArrowPrimitiveType>(
    array: &dyn arrow_array::Array,
    to_f64: fn(T::Native) -> f64,
) -> impl Iterator<Item = f64> + '_ {
    use arrow_array::cast::AsArray;

    let a = array.as_primitive::<T>();
    (0..array.len()).map(move |i| {
        if array.is_valid(i) {
            to_f64(a.value(i))
        } else {
            f64::NAN
        }
    })
}

/// A string array's values, empty where null.
#[cfg(feature = "parquet")]
fn parquet_strings<O: arrow_array::OffsetSizeTrait>(array: &dyn arrow_array::Array) -> Vec<String> {
    use arrow_array::cast::AsArray;

    let a = array.as_string::<O>();
    (0..array.len())
        .map(|i| {
            if array.is_valid(i) {
                a.value(i).to_owned()
            } else {
                String::new()
            }
        })
        .collect()
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(path: &Path) -> Result<Table> {
    Err(Error::at(
        Location::file(display_path(path)),
        "a Parquet table, and this build has no `parquet` feature (rebuild with default features, or write CSV)",
    ))
}

/// Write a table as CSV: numbers in Rust's shortest round-trip form, NaN as an empty cell.
pub fn write_csv(path: &Path, columns: &[(&str, &Values)], rows: usize) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_path(path)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let fail = |e: csv::Error| Error::msg(format!("{}: {e}", path.display()));
    w.write_record(columns.iter().map(|c| c.0)).map_err(fail)?;
    for r in 0..rows {
        w.write_record(columns.iter().map(|(_, v)| match v {
            Values::Num(x) if x[r].is_nan() => String::new(),
            Values::Num(x) => format!("{:?}", x[r]),
            Values::Text(t) => t[r].clone(),
        }))
        .map_err(fail)?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}
