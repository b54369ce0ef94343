//! Sources turn a pointer from the config into a value with its provenance (file and line).

pub mod command;
pub mod python;
pub mod rust_const;

use std::collections::HashMap;

use serde_json::Value;

use crate::checkpoint::CheckpointInfo;
use crate::config::{Loaded, Source};
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::keypath::{self, Kind};
use crate::paths::display_path;

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub value: Value,
    pub origin: Location,
    /// For a list value: the (line, column) of each item, where the source has lines.
    pub items: Vec<(u32, u32)>,
}

impl Fact {
    pub fn new(value: Value, origin: Location) -> Self {
        Fact {
            value,
            origin,
            items: Vec::new(),
        }
    }

    /// The location of list item `i` (its own line and column when known, else the fact's).
    pub fn item(&self, i: usize) -> Location {
        let mut loc = self.origin.clone();
        if let Some(&(line, column)) = self.items.get(i) {
            (loc.line, loc.column) = (Some(line), Some(column));
        }
        loc
    }
}

impl From<keypath::Found> for Fact {
    fn from(f: keypath::Found) -> Self {
        Fact {
            value: f.value,
            origin: f.location,
            items: f.items,
        }
    }
}

/// The value of a string fact the config leaves out (`model.heads-version`, `features.nan-policy`).
pub const NOT_STATED: &str = "not stated";

/// A fact the config may leave out, and what it is then: its documented default (docs/config.md).
#[derive(Debug, Clone, Copy)]
pub struct Unconfigured {
    /// The config field (`model.heads`).
    pub field: &'static str,
    /// The default, as JSON.
    pub value: &'static str,
    /// What the default means, for the location's label.
    pub means: &'static str,
}

impl Unconfigured {
    pub const HEADS_VERSION: Unconfigured = Unconfigured {
        field: "model.heads-version",
        value: r#""not stated""#,
        means: "not stated",
    };
    pub const HEADS: Unconfigured = Unconfigured {
        field: "model.heads",
        value: r#"[{"name": "output", "kind": "regression", "size": 1}]"#,
        means: "one regression output",
    };
    pub const DTYPES: Unconfigured = Unconfigured {
        field: "features.dtypes",
        value: r#""float32""#,
        means: "float32 for every feature",
    };
    pub const NAN_POLICY: Unconfigured = Unconfigured {
        field: "features.nan-policy",
        value: r#""not stated""#,
        means: "not stated",
    };
    pub const WINDOW: Unconfigured = Unconfigured {
        field: "model.window",
        value: "null",
        means: "rows, one bar per input",
    };
    pub const THRESHOLDS: Unconfigured = Unconfigured {
        field: "targets.thresholds",
        value: "{}",
        means: "none, a regression target",
    };
}

/// Resolves sources, parsing each file once.
pub struct Resolver<'a> {
    loaded: &'a Loaded,
    production: Option<&'a CheckpointInfo>,
    python: HashMap<String, python::PythonModule>,
    rust: HashMap<String, rust_const::RustFile>,
    text: HashMap<String, String>,
    checkpoints: HashMap<String, CheckpointInfo>,
}

impl<'a> Resolver<'a> {
    pub fn new(loaded: &'a Loaded, production: Option<&'a CheckpointInfo>) -> Self {
        Resolver {
            loaded,
            production,
            python: HashMap::new(),
            rust: HashMap::new(),
            text: HashMap::new(),
            checkpoints: HashMap::new(),
        }
    }

    fn text(&mut self, rel: &str) -> Result<(String, &str)> {
        let display = self.loaded.display(rel);
        if !self.text.contains_key(rel) {
            let t = self.loaded.read_to_string(&self.loaded.resolve(rel))?;
            self.text.insert(rel.to_owned(), t);
        }
        Ok((display, self.text[rel].as_str()))
    }

    /// A key path in a TOML, JSON or YAML file.
    fn key(&mut self, rel: &str, kind: Kind, key: &str) -> Result<Fact> {
        let (display, text) = self.text(rel)?;
        keypath::find(kind, &display, text, key).map(Fact::from)
    }

    /// `source` when the config has it, else the field's default located at the config file.
    pub fn resolve_or(&mut self, source: &Option<Source>, default: Unconfigured) -> Result<Fact> {
        match source {
            Some(s) => self.resolve(s),
            None => Ok(Fact::new(
                serde_json::from_str(default.value).expect("a default is JSON"),
                Location::file(crate::paths::display_path(&self.loaded.path)).with_label(format!(
                    "`{}` not configured: {}",
                    default.field, default.means
                )),
            )),
        }
    }

    pub fn resolve(&mut self, source: &Source) -> Result<Fact> {
        match source {
            Source::Python { python, name } => {
                if !self.python.contains_key(python) {
                    let display = self.loaded.display(python);
                    let path = self.loaded.resolve(python);
                    let text = python::decode(&path, self.loaded.read_bytes(&path)?)?;
                    self.python
                        .insert(python.clone(), python::PythonModule::parse(&display, text)?);
                }
                self.python[python].constant(name)
            }
            Source::Rust { rust, name } => {
                if !self.rust.contains_key(rust) {
                    let (display, text) = self.text(rust)?;
                    let parsed = rust_const::RustFile::parse(&display, text)?;
                    self.rust.insert(rust.clone(), parsed);
                }
                self.rust[rust].constant(name)
            }
            Source::Toml { toml, key } => self.key(toml, Kind::Toml, key),
            Source::Json { json, key } => self.key(json, Kind::Json, key),
            Source::Yaml { yaml, key } => self.key(yaml, Kind::Yaml, key),
            Source::Checkpoint { checkpoint, key } => {
                if checkpoint == "production" {
                    let info = self.production.ok_or_else(|| {
                        Error::msg("a `checkpoint = \"production\"` source needs the production checkpoint, which was not read")
                    })?;
                    return checkpoint_key(info, key);
                }
                if !self.checkpoints.contains_key(checkpoint) {
                    let info = self
                        .loaded
                        .open_checkpoint(&self.loaded.resolve(checkpoint))?;
                    self.checkpoints.insert(checkpoint.clone(), info);
                }
                checkpoint_key(&self.checkpoints[checkpoint], key)
            }
            Source::Command {
                command,
                key,
                timeout_secs,
            } => command::run(self.loaded, command, key.as_deref(), *timeout_secs),
        }
    }
}

/// A key of a checkpoint (or of its metadata beside it) as a fact. Checkpoints have no lines: the
/// location names the file and key; a sidecar's names its line.
pub fn checkpoint_key(info: &CheckpointInfo, key: &str) -> Result<Fact> {
    let found = info.find(key).ok_or_else(|| {
        Error::at(
            Location::file(display_path(&info.path)),
            format!("checkpoint has no key `{key}`"),
        )
    })?;
    let mut fact = Fact::new(found.value.clone(), found.location);
    fact.items = found.items;
    Ok(fact)
}
