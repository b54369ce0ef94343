//! The command engine: the model run by the user's own inference entry point through the command
//! protocol. `forward` writes the scaled inputs as a table (one column per model input, by name, no key
//! columns), runs the command with `{inputs}`, `{checkpoint}` and `{out}`, and reads `<head>.<k>` columns
//! back, one row per input row, in order.

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
    /// The model's inputs, in order (the columns of `{inputs}`).
    inputs: Vec<String>,
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
        heads: Vec<(String, usize)>,
        checkpoint: PathBuf,
    ) -> Result<CommandEngine> {
        Ok(CommandEngine {
            loaded: loaded.clone(),
            spec: spec.clone(),
            inputs,
            heads,
            checkpoint,
            work: crate::protocol::workdir()?,
        })
    }
}

impl Engine for CommandEngine {
    fn kind(&self) -> &'static str {
        "command"
    }

    fn input_dim(&self) -> usize {
        self.inputs.len()
    }

    fn forward(&self, x: &Matrix) -> Result<Outputs> {
        if x.cols != self.inputs.len() {
            return Err(Error::msg(format!(
                "command engine: inputs have {} columns, the model takes {}",
                x.cols,
                self.inputs.len()
            )));
        }
        let cols: Vec<Values> = (0..x.cols).map(|j| Values::Num(x.column(j))).collect();
        let named: Vec<(&str, &Values)> =
            self.inputs.iter().map(String::as_str).zip(&cols).collect();
        let path = self.work.path().join("engine-inputs.csv");
        crate::table::write_csv(&path, &named, x.rows)?;
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
