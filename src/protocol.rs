//! The command protocol (docs/commands.md): how plumbline runs the pipeline's own builders, inference
//! paths and interpreters. argv placeholders (`{prices}`, `{features}`, `{inputs}`,
//! `{checkpoint}`, `{ruleset}`, `{out}`) are replaced by paths; the command runs in the config's
//! directory with a timeout and writes one table to `{out}` (CSV or Parquet). Anything else it does
//! (crash, hang, no file, a malformed file) is a [`Failure`] that the calling gate turns into a finding
//! naming the command; its stderr goes into the finding.

use std::path::{Path, PathBuf};

use crate::config::{CommandSpec, Loaded};
use crate::error::{Error, Result};
use crate::exec::{self, RunError};
use crate::finding::{Code, Finding, Location};
use crate::paths::display_path;
use crate::table::{self, Table};

/// Placeholders plumbline knows; any other `{name}` in an argv is a config error.
pub const PLACEHOLDERS: &[&str] = &[
    "prices",
    "features",
    "inputs",
    "checkpoint",
    "ruleset",
    "out",
];

/// One configured command and what it is, for messages (`live builder`, `builders.live`).
pub struct Command<'a> {
    pub spec: &'a CommandSpec,
    pub role: String,
    /// The config key that defines it (`builders.live`).
    pub key: String,
    pub timeout_secs: u64,
}

/// Why a command did not give a table.
#[derive(Debug)]
pub enum Failure {
    Run(RunError),
    Exit {
        status: String,
        stderr: String,
    },
    NoOutput {
        stderr: String,
    },
    Malformed {
        error: Error,
        stderr: String,
    },
    /// The command changed (or removed) a file it was given to read.
    ChangedInput {
        placeholder: String,
    },
}

/// What a file looked like before a command ran: its size and modification time (a write changes the
/// time; reading the contents again would cost as much as the command's own read).
fn fingerprint(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Run(e) => e.to_string(),
            Failure::Exit { status, stderr } => {
                exec::with_stderr(format!("exited with {status}"), stderr)
            }
            Failure::NoOutput { stderr } => {
                exec::with_stderr("exited 0 but wrote no `{out}` file".into(), stderr)
            }
            Failure::Malformed { error, stderr } => exec::with_stderr(
                format!("wrote a table plumbline cannot read: {error}"),
                stderr,
            ),
            Failure::ChangedInput { placeholder } => format!(
                "it changed `{{{placeholder}}}`, a file it was given to read; a command writes only `{{out}}`"
            ),
        }
    }
}

impl<'a> Command<'a> {
    /// The command at config key `key` (`builders.live`); its own `timeout-secs`, else its section's.
    pub fn new(spec: &'a CommandSpec, key: String, role: String, section_timeout: u64) -> Self {
        Command {
            spec,
            role,
            key,
            timeout_secs: spec.timeout_secs.unwrap_or(section_timeout),
        }
    }

    pub fn shown(&self) -> String {
        exec::shown(&self.spec.argv)
    }

    /// The config line that defines the command, for findings.
    pub fn location(&self, loaded: &Loaded) -> Location {
        let display = display_path(&loaded.path);
        let line = std::fs::read_to_string(&loaded.path)
            .ok()
            .and_then(|text| crate::keypath::toml_key(&display, &text, &self.key).ok())
            .map(|f| f.location);
        line.unwrap_or_else(|| Location::file(&display))
            .with_label(self.key.clone())
    }

    /// The first argv element that names a file in the config's directory (the script), for findings
    /// about what the command computes.
    pub fn script(&self, loaded: &Loaded) -> Option<String> {
        self.spec
            .argv
            .iter()
            .find(|a| !a.contains('{') && a.contains('.') && loaded.resolve(a).is_file())
            .map(|a| loaded.display(a))
    }

    /// Where a finding about what the command computes points: its script, else its config line.
    pub fn origin(&self, loaded: &Loaded) -> Location {
        self.script(loaded)
            .map(Location::file)
            .unwrap_or_else(|| self.location(loaded))
    }

    /// A finding about this command's failure.
    pub fn failed(&self, code: &'static Code, loaded: &Loaded, failure: &Failure) -> Finding {
        let mut f = Finding::new(
            code,
            format!(
                "the {} `{}` failed: {}",
                self.role,
                self.shown(),
                failure.message()
            ),
        );
        f = match self.script(loaded) {
            Some(s) => f.at(Location::file(s)).related(self.location(loaded)),
            None => f.at(self.location(loaded)),
        };
        f.help("run the command by hand in the config's directory; the protocol is in docs/commands.md")
    }

    /// Run with `vars` (plus `{out}`), and read the table it wrote. `Err` is a config problem (exit 2);
    /// `Ok(Err(failure))` is the command's own failure (a finding).
    pub fn run_table(
        &self,
        loaded: &Loaded,
        work: &Path,
        vars: &[(&str, PathBuf)],
        keys: &[&str],
    ) -> Result<std::result::Result<Table, Failure>> {
        self.run_table_tagged(loaded, work, vars, keys, "")
    }

    /// [`Command::run_table`] with `tag` in the `{out}` file name, for runs of one command in parallel.
    pub fn run_table_tagged(
        &self,
        loaded: &Loaded,
        work: &Path,
        vars: &[(&str, PathBuf)],
        keys: &[&str],
        tag: &str,
    ) -> Result<std::result::Result<Table, Failure>> {
        let out = work.join(format!("{}{tag}.out", self.key.replace('.', "-")));
        let _ = std::fs::remove_file(&out);
        let mut all: Vec<(&str, PathBuf)> = vars.to_vec();
        all.push(("out", out.clone()));
        let argv = substitute(&self.spec.argv, &all)
            .map_err(|e| Error::at(self.location(loaded), format!("{}: {e}", self.key)))?;
        let env: Vec<(String, String)> = self
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("PLUMBLINE_ROLE".to_owned(), self.role.clone())])
            .collect();
        let before: Vec<_> = vars.iter().map(|(_, p)| fingerprint(p)).collect();
        let mut ran = match exec::run(loaded, &argv, self.timeout_secs, &env) {
            Ok(r) => r,
            Err(e) => return Ok(Err(Failure::Run(e))),
        };
        ran.stderr = placeholders_back(ran.stderr, &all);
        if let Some(((name, _), _)) = vars
            .iter()
            .zip(&before)
            .find(|((_, p), was)| was.is_some() && fingerprint(p) != **was)
        {
            return Ok(Err(Failure::ChangedInput {
                placeholder: (*name).to_owned(),
            }));
        }
        if !ran.status.success() {
            return Ok(Err(Failure::Exit {
                status: ran.status.to_string(),
                stderr: ran.stderr,
            }));
        }
        if !out.is_file() {
            return Ok(Err(Failure::NoOutput { stderr: ran.stderr }));
        }
        Ok(table::read(&out, keys).map_err(|error| Failure::Malformed {
            error,
            stderr: ran.stderr,
        }))
    }
}

/// The command's stderr with each path it was given written as its placeholder again
/// (`/tmp/plumbline-x1/bad.csv:34: …` → `{prices}:34: …`): the paths differ between runs and machines,
/// the report must not.
fn placeholders_back(stderr: String, vars: &[(&str, PathBuf)]) -> String {
    let mut paths: Vec<(String, &str)> = vars
        .iter()
        .map(|(name, p)| {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            (abs.to_string_lossy().into_owned(), *name)
        })
        .filter(|(abs, _)| !abs.is_empty())
        .collect();
    // Longer paths first, so a path that contains another is replaced whole.
    paths.sort_by_key(|(abs, _)| std::cmp::Reverse(abs.len()));
    paths.iter().fold(stderr, |s, (abs, name)| {
        s.replace(abs.as_str(), &format!("{{{name}}}"))
    })
}

/// Replace `{name}` placeholders. Paths are absolute so the command may change directory.
pub fn substitute(
    argv: &[String],
    vars: &[(&str, PathBuf)],
) -> std::result::Result<Vec<String>, String> {
    argv.iter()
        .map(|a| {
            let mut out = String::new();
            let mut rest = a.as_str();
            while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let j = rest[i..]
                    .find('}')
                    .map(|j| i + j)
                    .ok_or_else(|| format!("unclosed `{{` in argument `{a}`"))?;
                let name = &rest[i + 1..j];
                let value = vars.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                    if PLACEHOLDERS.contains(&name) {
                        format!(
                            "`{{{name}}}` has no value for this command (it gets: {})",
                            vars.iter()
                                .map(|v| format!("{{{}}}", v.0))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else {
                        format!(
                            "unknown placeholder `{{{name}}}` (known: {})",
                            PLACEHOLDERS
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                })?;
                let abs = std::path::absolute(&value.1).unwrap_or_else(|_| value.1.clone());
                out.push_str(&abs.to_string_lossy());
                rest = &rest[j + 1..];
            }
            out.push_str(rest);
            Ok(out)
        })
        .collect()
}

/// A scratch directory for one check's command files, removed afterwards.
pub fn workdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("plumbline-")
        .tempdir()
        .map_err(|e| Error::msg(format!("creating a working directory: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_named() {
        let vars = [
            ("prices", PathBuf::from("/d/p.csv")),
            ("out", PathBuf::from("/w/o")),
        ];
        let argv: Vec<String> = ["python3", "b.py", "--in={prices}", "{out}"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            substitute(&argv, &vars).unwrap(),
            ["python3", "b.py", "--in=/d/p.csv", "/w/o"]
        );
        let bad: Vec<String> = vec!["{pricez}".into()];
        assert!(
            substitute(&bad, &vars)
                .unwrap_err()
                .contains("unknown placeholder `{pricez}`")
        );
        let missing: Vec<String> = vec!["{ruleset}".into()];
        assert!(
            substitute(&missing, &vars)
                .unwrap_err()
                .contains("`{ruleset}` has no value for this command")
        );
        let open: Vec<String> = vec!["{out".into()];
        assert!(substitute(&open, &vars).unwrap_err().contains("unclosed"));
    }
}
