//! The reference slice: raw (unscaled) feature rows the model gates run on. A CSV with a header; the
//! feature columns are picked by name in the contract's order, so the file's own column order does not
//! matter. Empty cells and `nan` are NaN. Anything else that is not a number is an error naming the
//! file, line and column. For a model that takes windows of bars, [`windows`] builds them: the slice's
//! rows become the rows that end a window, and the model's inputs are their windows.

pub mod windows;

use std::path::Path;

use crate::config::{Loaded, SliceSection};
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::matrix::Matrix;
use crate::scaler::{NanPolicy, Scaler};
use crate::table::Table;
pub use windows::Windows;

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
    /// For a model that takes windows: the bars each row's window is made of (the rows above are
    /// then the rows that end a window).
    pub windows: Option<Windows>,
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

    /// Rows a defect in NaN handling shows on, which a slice without empty cells never reaches: the
    /// first row with each feature NaN in turn, then with every feature NaN. Keyed by the first row's
    /// timestamp and a probe symbol (`~nan:<feature>`, `~nan:all`), at the first row's line. `None` for
    /// an empty slice, or one without a symbol column (its keys are timestamps only).
    pub fn nan_probes(&self, names: &[String]) -> Option<Slice> {
        if self.is_empty() || self.symbols[0].is_none() || names.len() != self.features.cols {
            return None;
        }
        let first = self.features.row(0);
        let cols = self.features.cols;
        let mut data = Vec::with_capacity((cols + 1) * cols);
        let mut symbols = Vec::with_capacity(cols + 1);
        for (k, name) in names.iter().enumerate() {
            data.extend(
                first
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| if j == k { f64::NAN } else { v }),
            );
            symbols.push(Some(format!("~nan:{name}")));
        }
        data.extend(std::iter::repeat_n(f64::NAN, cols));
        symbols.push(Some("~nan:all".to_owned()));
        let rows = symbols.len();
        let windows = self.windows.as_ref().map(|w| w.nan_probes(&symbols));
        Some(Slice {
            path: self.path.clone(),
            timestamps: vec![self.timestamps[0].clone(); rows],
            symbols,
            features: Matrix::new(rows, cols, data),
            lines: vec![self.lines[0]; rows],
            windows,
        })
    }

    /// This slice's rows, then `more`'s (both windowed, or neither).
    pub fn concat(&self, more: &Slice) -> Slice {
        let mut data = self.features.data.clone();
        data.extend_from_slice(&more.features.data);
        let windows = match (&self.windows, &more.windows) {
            (Some(a), Some(b)) => Some(a.concat(b)),
            (None, None) => None,
            _ => unreachable!("rows and windows concatenated"),
        };
        Slice {
            path: self.path.clone(),
            timestamps: [self.timestamps.clone(), more.timestamps.clone()].concat(),
            symbols: [self.symbols.clone(), more.symbols.clone()].concat(),
            features: Matrix::new(self.len() + more.len(), self.features.cols, data),
            lines: [self.lines.clone(), more.lines.clone()].concat(),
            windows,
        }
    }

    /// This slice as windows of `n` bars per symbol ([`windows`]), or as it is for a model that takes
    /// rows.
    pub fn windowed(self, n: Option<u64>) -> Result<Slice> {
        match n {
            None => Ok(self),
            Some(n) => windows::build(self, n as usize),
        }
    }

    /// The model's inputs on every row, scaled: the row, or its window of bars oldest first
    /// (`rows × window·features`, `[batch, window, features]` flattened). Bars are scaled one by one,
    /// as the model was trained.
    pub fn model_inputs(&self, scaler: &Scaler, policy: &NanPolicy) -> Matrix {
        match &self.windows {
            None => scaler.scale(&self.features, policy),
            Some(w) => w.gather(&scaler.scale(&w.bars.features, policy)),
        }
    }

    /// Every bar of the file: this slice, or for windows the bars they are made of (statistics of a
    /// feature are over every bar, not only the bars that end a window).
    pub fn bars(&self) -> &Slice {
        self.windows.as_ref().map_or(self, |w| &w.bars)
    }

    /// What the model runs on, for summaries: `2115 rows`, or `2094 windows of 8 bars (21 rows
    /// without 8 unbroken bars up to them, 1 gap)`.
    pub fn describe(&self) -> String {
        match &self.windows {
            None => format!("{} rows", self.len()),
            Some(w) => format!(
                "{} windows of {} bars ({} without {} unbroken bars up to them, {})",
                self.len(),
                w.n,
                crate::text::plural(w.left_out, "row"),
                w.n,
                crate::text::plural(w.gaps, "gap")
            ),
        }
    }

    /// The model's raw (unscaled) input for row `i`: the row, or its window of bars oldest first.
    pub fn raw_input(&self, i: usize) -> Vec<f64> {
        match &self.windows {
            None => self.features.row(i).to_vec(),
            Some(w) => w
                .of(i)
                .iter()
                .flat_map(|&b| w.bars.features.row(b).iter().copied())
                .collect(),
        }
    }

    /// The names of the model's input columns: the features, or for windows each feature at each lag,
    /// oldest bar first (`ret_1[t-7]` … `ret_1[t]`, bar by bar).
    pub fn input_names(&self, names: &[String]) -> Vec<String> {
        match &self.windows {
            None => names.to_vec(),
            Some(w) => (0..w.n)
                .rev()
                .flat_map(|lag| names.iter().map(move |f| windows::lagged(f, lag)))
                .collect(),
        }
    }

    /// Write the slice as CSV: its key columns as `section` names them, then `names` (its columns, in
    /// order); NaN as an empty cell. A windowed slice writes every bar: a path builds its windows from
    /// them, as it does in production.
    pub fn write_csv(&self, path: &Path, section: &SliceSection, names: &[String]) -> Result<()> {
        if let Some(w) = &self.windows {
            return w.bars.write_csv(path, section, names);
        }
        use crate::table::Values;
        let mut columns: Vec<(&str, Values)> = vec![(
            section.timestamp.as_str(),
            Values::Text(self.timestamps.clone()),
        )];
        if !section.symbol.is_empty() {
            let symbols = self.symbols.iter().map(|s| s.clone().unwrap_or_default());
            columns.push((section.symbol.as_str(), Values::Text(symbols.collect())));
        }
        for (k, name) in names.iter().enumerate() {
            let values = (0..self.len()).map(|i| self.features.row(i)[k]).collect();
            columns.push((name.as_str(), Values::Num(values)));
        }
        let refs: Vec<(&str, &Values)> = columns.iter().map(|(n, v)| (*n, v)).collect();
        crate::table::write_csv(path, &refs, self.len())
    }
}

/// The configured slice with the model's features, as rows or as windows of the code's window
/// (`[model] window`). A slice whose windows cannot be built says so; when the checkpoint was trained
/// on another window, the error says that too (the likelier cause).
pub fn load(loaded: &Loaded, section: &SliceSection, facts: &crate::facts::Facts) -> Result<Slice> {
    let rows = read(
        &loaded.input("slice.features", &section.features)?,
        section,
        &facts.model_feature_names()?,
    )?;
    let code = facts.window()?;
    rows.windowed(code).map_err(|e| {
        let stated = facts
            .checkpoint
            .window
            .value
            .as_ref()
            .and_then(crate::facts::window_value);
        match stated {
            Some(stated) if stated != code => Error::msg(format!(
                "{e}\n  note: the checkpoint was trained on {}, the code declares {} (feature-schema: window-mismatch)",
                crate::facts::window_text(stated),
                crate::facts::window_text(code)
            )),
            _ => e,
        }
    })
}

pub fn read(path: &Path, section: &SliceSection, columns: &[String]) -> Result<Slice> {
    let table = crate::table::read(path, &section.key_columns())?;
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
        windows: None,
    })
}
