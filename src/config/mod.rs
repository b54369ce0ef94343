//! `plumbline.toml`: where each fact of the pipeline lives. Every fact is a *source pointer* (a Python
//! constant, a Rust constant, a key in a TOML/JSON file, a key in a checkpoint, a command printing JSON),
//! never the value typed a second time. Paths are relative to the directory holding the config.
//!
//! The schema is derived with schemars and committed as `schemas/plumbline.schema.json`; a test fails when
//! the two differ. Later sections (slices, commands, engines, path rules) are added as new optional tables.

mod audit;
mod gate_settings;
mod run;
mod sections;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;

pub use audit::{AttributionMethod, AuditSettings, IgBaseline};
pub use gate_settings::{
    FeatureParitySettings, ForwardSettings, GatesSection, LeakageSettings, NormStatsSettings,
    OutputDistributionSettings,
};
pub use run::RunOptions;
pub use sections::{
    BuildersSection, CheckpointKeys, CheckpointsSection, CommandSpec, DataSection, DocsSection,
    FeaturesSection, InferenceSection, LabelDefinition, ModelSection, PathRule, PipelineSection,
    ReturnKind, RulesetSection, ScalerSection, SeverityOverride, SliceSection, TargetsSection,
};
pub use source::Source;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(
    title = "plumbline.toml",
    description = "Configuration of plumbline, the ML trading pipeline auditor."
)]
pub struct Config {
    pub pipeline: PipelineSection,
    pub model: ModelSection,
    pub features: FeaturesSection,
    pub targets: TargetsSection,
    pub checkpoints: CheckpointsSection,
    /// The scaler as the code declares it (kind, factor, epsilon, clip), cross-checked with what the
    /// checkpoint states (docs/checkpoint-metadata.md#scalers). Each is optional.
    #[serde(default)]
    pub scaler: ScalerSection,
    #[serde(default)]
    pub docs: DocsSection,
    /// The reference data slice the model gates run on (forward-contract, output-distribution,
    /// norm-stats recomputation). Without it those parts are skipped and say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<SliceSection>,
    /// Which gates run and their settings.
    #[serde(default)]
    pub gates: GatesSection,
    /// The market data the feature builders read (feature-parity, leakage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSection>,
    /// The pipeline's feature and label builders (commands, docs/commands.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builders: Option<BuildersSection>,
    /// The backtest and live inference paths (inference-parity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceSection>,
    /// The interpretation ruleset and the interpreters that read it (ruleset-smoke,
    /// interpretation-parity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<RulesetSection>,
    /// Per-code severity overrides, e.g. `docs-drift = "warning"`; `"off"` drops the finding.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub severity: BTreeMap<String, SeverityOverride>,
    /// Which gates a change needs, for `--changed-from` (docs/config.md#paths). A changed file that no
    /// rule matches needs every gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathRule>,
    /// Settings of `plumbline audit conditions` and `audit decisions` (docs/audit.md).
    #[serde(default)]
    pub audit: AuditSettings,
}

/// A loaded config and the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The config file as given on the command line.
    pub path: PathBuf,
    /// Its directory ("." when the config is in the working directory).
    pub root: PathBuf,
    /// What this run adds to the file (the command line, the event, the hook), kept apart from it.
    pub run: RunOptions,
}

impl Loaded {
    /// Make `path` (as given on the command line) the production checkpoint, as `--checkpoint` does
    /// after a training run: the gates read its metadata and the audit builds the model from it. It
    /// joins the inventory when the config's globs do not find it.
    pub fn use_checkpoint(&mut self, path: &Path) -> Result<()> {
        let abs = std::fs::canonicalize(path)
            .map_err(|e| Error::msg(format!("--checkpoint {}: {e}", display_path(path))))?;
        if !abs.is_file() {
            return Err(Error::msg(format!(
                "--checkpoint {}: not a file",
                display_path(path)
            )));
        }
        // Config-relative when it lies under the config's directory (the same text on every machine).
        let rel = std::fs::canonicalize(&self.root)
            .ok()
            .and_then(|root| abs.strip_prefix(root).ok().map(display_path))
            .unwrap_or_else(|| display_path(&abs));
        // In the inventory already when a glob finds the same file; else it joins it as an extra.
        let found = self
            .checkpoint_files()?
            .files
            .iter()
            .any(|p| std::fs::canonicalize(p).is_ok_and(|p| p == abs));
        if !found {
            self.run.extra_checkpoints.push(abs.clone());
        }
        self.config.checkpoints.production = rel;
        Ok(())
    }

    /// The checkpoint files the globs find (and `--checkpoint` adds), with the patterns that match none.
    pub fn checkpoint_files(&self) -> Result<crate::checkpoint::globs::Expanded> {
        crate::checkpoint::globs::expand(
            &self.root,
            &self.path,
            &self.config.checkpoints.globs,
            &self.run.extra_checkpoints,
        )
    }

    /// A config-relative path as a file-system path.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// An input file the config names at `key` (`slice.features`, `data.prices`), resolved; a file that
    /// does not exist is an error naming the key, the path and the config, not a bare "No such file".
    pub fn input(&self, key: &str, rel: &str) -> Result<PathBuf> {
        let path = self.resolve(rel);
        if path.exists() {
            return Ok(path);
        }
        Err(Error::at(
            Location::file(display_path(&self.path)).with_label(key),
            format!("`{key}` names {}, which does not exist", self.display(rel)),
        ))
    }

    /// A config-relative path as it is shown in findings (`/` separators, no leading `./`).
    pub fn display(&self, rel: &str) -> String {
        display_path(&self.resolve(rel))
    }

    /// A text file as this run sees it (the work tree, or the staged version in `hook pre-commit`).
    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        self.run.snapshot.read_to_string(path)
    }

    /// A file's bytes as this run sees it (the work tree, or the staged version).
    pub fn read_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        self.run.snapshot.read(path)
    }

    /// A checkpoint as this run sees it: its staged bytes when the run reads the index and git tracks
    /// it, else the file (header reads only).
    pub fn open_checkpoint(&self, path: &Path) -> Result<crate::checkpoint::CheckpointInfo> {
        let reading = self.reading();
        let mut info = match self.run.snapshot.staged(path)? {
            Some(bytes) => crate::checkpoint::open_bytes(path, bytes, &reading),
            None => crate::checkpoint::open_with(path, &reading),
        }?;
        let ck = &self.config.checkpoints;
        let search = ck.keys.search(&ck.sidecars);
        let read = |p: &Path| self.run.snapshot.read_if_exists(p);
        info.attach(&search, &read)?;
        Ok(info)
    }

    /// What checkpoint reads accept beyond the built-in rules (`[checkpoints] safe-globals`).
    pub fn reading(&self) -> crate::checkpoint::Reading {
        crate::checkpoint::Reading {
            safe_globals: self.config.checkpoints.safe_globals.clone(),
        }
    }
}

/// Load and validate a config file. Unknown keys and wrong types give `path:line:column: message`.
/// Names of gates and finding codes are checked by the registry, which knows them
/// ([`crate::gates::validate`]).
pub fn load(path: &Path) -> Result<Loaded> {
    load_in(
        path,
        std::sync::Arc::new(crate::snapshot::Snapshot::WorkTree),
    )
}

/// Load a config as `snapshot` has it (the staged version for `hook pre-commit`).
pub fn load_in(path: &Path, snapshot: std::sync::Arc<crate::snapshot::Snapshot>) -> Result<Loaded> {
    let text = snapshot.read_to_string(path)?;
    let config = parse(&text, &display_path(path))?;
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    for g in &config.checkpoints.safe_globals {
        crate::checkpoint::declared::check(g).map_err(|why| {
            Error::at(
                Location::file(display_path(path)),
                format!("`checkpoints.safe-globals` entry `{g}`: {why}"),
            )
        })?;
    }
    config
        .gates
        .validate()
        .map_err(|m| Error::at(Location::file(display_path(path)), m))?;
    config
        .audit
        .validate()
        .map_err(|m| Error::at(Location::file(display_path(path)), m))?;
    if let Some(d) = &config.targets.definition {
        let names: Vec<&str> = d.classes.keys().map(String::as_str).collect();
        if names != ["flat", "long", "short"] {
            return Err(Error::at(
                Location::file(display_path(path)),
                format!(
                    "`targets.definition.classes` must name exactly `long`, `flat` and `short`, not {}",
                    names.join(", ")
                ),
            ));
        }
    }
    if let Some(inf) = &config.inference
        && !(inf.tolerance.is_finite() && inf.tolerance >= 0.0)
    {
        return Err(Error::at(
            Location::file(display_path(path)),
            format!(
                "`inference.tolerance` must be a finite number ≥ 0, not {}",
                inf.tolerance
            ),
        ));
    }
    for (i, rule) in config.paths.iter().enumerate() {
        let at = |m: String| {
            Error::at(
                Location::file(display_path(path)),
                format!("paths[{i}]: {m}"),
            )
        };
        for p in &rule.paths {
            glob::Pattern::new(p).map_err(|e| at(format!("`{p}` is not a glob pattern ({e})")))?;
        }
        if rule.paths.is_empty() {
            return Err(at("a rule needs at least one path pattern".into()));
        }
    }
    Ok(Loaded {
        config,
        path: path.to_path_buf(),
        root,
        run: RunOptions::new(snapshot),
    })
}

pub fn parse(text: &str, display: &str) -> Result<Config> {
    parse_toml(text, display)
}

/// Deserialize a TOML file; errors are `file:line:column: message`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, display: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let at = crate::keypath::located(display, text, e.span().map_or(0, |s| s.start));
        Error::at(at, e.message().trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[pipeline]
name = "p"
[model]
version = { python = "m.py", name = "V" }
heads-version = { toml = "m.toml", key = "heads.version" }
heads = { json = "h.json", key = "heads" }
[features]
columns = { python = "f.py", name = "COLS" }
dtypes = { rust = "src/lib.rs", name = "DTYPES" }
nan-policy = { command = ["echo", "\"zero-fill\""] }
[targets]
horizon = { checkpoint = "production", key = "targets.horizon" }
thresholds = { python = "l.py", name = "T" }
[checkpoints]
globs = ["*.pt"]
production = "a.pt"
"#;

    #[test]
    fn parses_every_source_kind() {
        let c = parse(MIN, "p.toml").unwrap();
        assert_eq!(
            c.model.version,
            Source::Python {
                python: "m.py".into(),
                name: "V".into()
            }
        );
        assert!(matches!(
            c.features.nan_policy,
            Some(Source::Command {
                timeout_secs: 30,
                ..
            })
        ));
        assert_eq!(c.checkpoints.keys.median, "scaler.median");
        assert_eq!(c.docs.json, "docs/PIPELINE_CONTRACT.json");
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let text = MIN.replace("globs = [\"*.pt\"]", "globs = [\"*.pt\"]\nglobz = 1");
        let err = parse(&text, "p.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("p.toml:17:1: unknown field `globz`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_has_line_and_column() {
        let text = MIN.replace("production = \"a.pt\"", "production = 3");
        let err = parse(&text, "p.toml").unwrap_err().to_string();
        assert!(err.starts_with("p.toml:17:14:"), "{err}");
        assert!(err.contains("string"), "{err}");
    }

    #[test]
    fn source_with_two_kinds_is_rejected_with_position() {
        let text = MIN.replace(
            "{ python = \"m.py\", name = \"V\" }",
            "{ python = \"m.py\", toml = \"x\", name = \"V\" }",
        );
        let err = parse(&text, "p.toml").unwrap_err().to_string();
        assert!(err.contains("p.toml:5:"), "{err}");
        assert!(err.contains("exactly one of"), "{err}");
    }

    #[test]
    fn display_paths() {
        assert_eq!(
            display_path(Path::new("./examples/momentum/./plumbline.toml")),
            "examples/momentum/plumbline.toml"
        );
        assert_eq!(display_path(Path::new("/work/x/f.py")), "/work/x/f.py");
        assert_eq!(display_path(Path::new("f.py")), "f.py");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(crate::text::line_col("ab\ncé d", 7), (2, 4));
    }
}
