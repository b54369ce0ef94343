//! The command engine: the model run by the user's own inference entry point through the command
//! protocol. `forward` writes the scaled inputs as a table (one column per model input, by name, no key
//! columns), runs the command with `{inputs}`, `{checkpoint}` and `{out}`, and reads `<head>.<k>` columns
//! back, one row per input row, in order. For a model that takes windows, `{inputs}` is in long form:
//! `row` and `lag` columns, then the features, one line per bar, each window's bars oldest first
//! (docs/commands.md#windows).

use std::path::PathBuf;

use super::{Engine, Outputs};
use crate::config::{CommandSpec, Loaded};
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::protocol::Command;
use crate::table::Values;

pub struct CommandEngine {
    loaded: Loaded,
    spec: CommandSpec,
    /// The model's inputs, in order (the columns of `{inputs}`; for windows, a bar's).
    inputs: Vec<String>,
    /// Bars per window, for a model that takes windows.
    window: Option<usize>,
    /// (head name, width) in output order.
    heads: Vec<(String, usize)>,
    checkpoint: PathBuf,
    work: tempfile::TempDir,
}

impl CommandEngine {
    pub fn new(
        loaded: &Loaded,
        spec: &CommandSpec,
        inputs: Vec<String>,
        window: Option<usize>,
        heads: Vec<(String, usize)>,
        checkpoint: PathBuf,
    ) -> Result<CommandEngine> {
        Ok(CommandEngine {
            loaded: loaded.clone(),
            spec: spec.clone(),
            inputs,
            window,
            heads,
            checkpoint,
            work: crate::protocol::workdir()?,
        })
    }
}

impl CommandEngine {
    /// `{inputs}`: one line per row, or for windows one line per bar (`row`, `lag`, the features),
    /// each window's bars oldest first so `values.reshape(rows, window, features)` is PyTorch's
    /// batch-first layout.
    fn write_inputs(&self, path: &std::path::Path, x: &Matrix) -> Result<()> {
        let bars = self.window.unwrap_or(1);
        let f = self.inputs.len();
        // `rows × bars·f` is `rows·bars × f`: one line per bar.
        let long = Matrix::new(x.rows * bars, f, x.data.clone());
        let mut cols: Vec<Values> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        if self.window.is_some() {
            let lines = 0..x.rows * bars;
            cols.push(Values::Text(
                lines.clone().map(|i| (i / bars).to_string()).collect(),
            ));
            cols.push(Values::Text(
                lines.map(|i| (bars - 1 - i % bars).to_string()).collect(),
            ));
            names.extend(["row", "lag"]);
        }
        cols.extend((0..f).map(|j| Values::Num(long.column(j))));
        names.extend(self.inputs.iter().map(String::as_str));
        let named: Vec<(&str, &Values)> = names.into_iter().zip(&cols).collect();
        crate::table::write_csv(path, &named, long.rows)
    }
}

impl Engine for CommandEngine {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn input_dim(&self) -> usize {
        self.inputs.len() * self.window.unwrap_or(1)
    }

    fn window(&self) -> Option<usize> {
        self.window
    }

    fn forward(&self, x: &Matrix) -> Result<Outputs> {
        if x.cols != self.input_dim() {
            return Err(Error::msg(format!(
                "command engine: inputs have {} columns, the model takes {}",
                x.cols,
                self.input_dim()
            )));
        }
        let path = self.work.path().join("engine-inputs.csv");
        self.write_inputs(&path, x)?;
        let cmd = Command::new(
            &self.spec,
            "model.engine".into(),
            "command engine".into(),
            300,
        );
        let vars = [("inputs", path), ("checkpoint", self.checkpoint.clone())];
        let table = cmd
            .run_table(&self.loaded, self.work.path(), &vars, &[])?
            .map_err(|f| {
                Error::msg(format!(
                    "the command engine `{}` failed: {}",
                    cmd.shown(),
                    f.message()
                ))
            })?;
        if table.rows != x.rows {
            return Err(Error::msg(format!(
                "the command engine wrote {} rows for {} inputs ({})",
                table.rows,
                x.rows,
                cmd.shown()
            )));
        }
        let mut out = Outputs::new();
        for (head, width) in &self.heads {
            let mut data = vec![0.0; x.rows * width];
            for k in 0..*width {
                let name = format!("{head}.{k}");
                let col = table.numbers(&name).ok_or_else(|| {
                    Error::msg(format!(
                        "the command engine's table has no numeric column `{name}` (columns: {})",
                        table.names().join(", ")
                    ))
                })?;
                for (r, v) in col.iter().enumerate() {
                    data[r * width + k] = *v;
                }
            }
            out.insert(head.clone(), Matrix::new(x.rows, *width, data));
        }
        Ok(out)
    }
}
