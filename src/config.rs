//! `plumbline.toml`: where each fact of the pipeline lives. Every fact is a *source pointer* (a Python
//! constant, a Rust constant, a key in a TOML/JSON file, a key in a checkpoint, a command printing JSON),
//! never the value typed a second time. Paths are relative to the directory holding the config.
//!
//! The schema is derived with schemars and committed as `schemas/plumbline.schema.json`; a test fails when
//! the two differ. Later sections (slices, commands, engines, path rules) are added as new optional tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::finding::{Location, Severity};
use crate::paths::display_path;

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

/// Where integrated gradients start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IgBaseline {
    /// Zeros in scaled space: every feature at the training median.
    Median,
    /// The mean of the slice's scaled inputs.
    SliceMean,
}

impl IgBaseline {
    /// The name the config and `summary.json` use.
    pub fn name(self) -> &'static str {
        match self {
            IgBaseline::Median => "median",
            IgBaseline::SliceMean => "slice-mean",
        }
    }
}

/// How `audit conditions` attributes the outputs to the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttributionMethod {
    /// Integrated gradients for the native engine, permutation importance for a command.
    Auto,
    IntegratedGradients,
    Permutation,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AuditSettings {
    pub method: AttributionMethod,
    /// The integrated-gradients baseline.
    pub baseline: IgBaseline,
    /// Integrated gradients refine the path until, for every output, both the completeness delta
    /// |Σ attributions − (f(x) − f(baseline))| and the estimated quadrature error are at most this (in
    /// the output's units).
    pub tolerance: f64,
    /// At most this many gradient evaluations per row (a row that needs more is reported as not
    /// converged).
    pub max_steps: usize,
    /// Permutation importance: shuffles per feature.
    pub repeats: usize,
    /// Seed of the permutations.
    pub seed: u64,
    /// The deepest surrogate tree that may be exported (the depth table goes to `max-depth + 2`).
    pub max_depth: usize,
    /// The surrogate's smallest leaf, in rows.
    pub min_leaf: usize,
    /// Share of the slice's latest timestamps held out to measure the surrogate's fidelity.
    pub holdout: f64,
    /// Factors per decision in `decision_attribution.csv`.
    pub top_k: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            method: AttributionMethod::Auto,
            baseline: IgBaseline::Median,
            tolerance: 1e-5,
            max_steps: 4096,
            repeats: 5,
            seed: 0,
            max_depth: 4,
            min_leaf: 20,
            holdout: 0.3,
            top_k: 3,
        }
    }
}

impl AuditSettings {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(format!(
                "`audit.tolerance` must be a finite number > 0, not {}",
                self.tolerance
            ));
        }
        if self.max_steps < 65 {
            return Err(format!(
                "`audit.max-steps` must be at least 65 (the first pass evaluates 65 points), not {}",
                self.max_steps
            ));
        }
        if self.repeats == 0 || self.max_depth == 0 || self.min_leaf == 0 || self.top_k == 0 {
            return Err(
                "`audit.repeats`, `audit.max-depth`, `audit.min-leaf` and `audit.top-k` must be at least 1"
                    .into(),
            );
        }
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return Err(format!(
                "`audit.holdout` must be a share strictly between 0 and 1, not {}",
                self.holdout
            ));
        }
        Ok(())
    }
}

/// Files (config-relative glob patterns, `**` for any depth) and the gates a change to them needs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PathRule {
    pub paths: Vec<String>,
    pub gates: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PipelineSection {
    /// The pipeline's name (its identity; the one value typed here).
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSection {
    /// Model version: bumped by every retrain that writes a new checkpoint (int or string).
    pub version: Source,
    /// Heads version: bumped when the head map changes.
    pub heads_version: Source,
    /// The head map: a list of `{name, kind, size}` (or `shape`) in output order.
    pub heads: Source,
    /// Run the model with this command instead of the native engine (docs/commands.md#the-command-engine):
    /// `{inputs}` (scaled rows, one column per model input) in, `<head>.<k>` columns out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<CommandSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeaturesSection {
    /// The ordered feature list (a list of strings).
    pub columns: Source,
    /// Feature dtypes: one dtype string for all, a list aligned with `columns`, or a dict name → dtype.
    pub dtypes: Source,
    /// What the pipeline does with NaN inputs (e.g. "zero-fill", "forward-fill", "drop-row", "reject").
    pub nan_policy: Source,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetsSection {
    /// Label horizon in bars (a non-negative int).
    pub horizon: Source,
    /// Label thresholds: a dict name → number.
    pub thresholds: Source,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CheckpointsSection {
    /// Globs (relative to the config) that find every checkpoint to audit.
    pub globs: Vec<String>,
    /// The production checkpoint (relative path); the contract is derived from it.
    pub production: String,
    /// Where each required fact lives inside a checkpoint (dotted key paths).
    #[serde(default)]
    pub keys: CheckpointKeys,
    /// Globals the team allows in its pickles beyond torch's weights-only allowlist, as
    /// `module.Name` (what `torch.serialization.add_safe_globals` takes). plumbline never calls
    /// them; their objects are described by their arguments and state. A known code-execution
    /// route is refused at load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safe_globals: Vec<String>,
}

/// Dotted key paths of the required facts inside a checkpoint. The defaults are the layout documented in
/// docs/checkpoint-metadata.md.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CheckpointKeys {
    pub feature_cols: String,
    pub feature_dtypes: String,
    pub input_dim: String,
    pub schema_hash: String,
    pub scaler_kind: String,
    pub median: String,
    pub mad: String,
    pub model_version: String,
    pub heads_version: String,
    pub heads: String,
    pub arch: String,
    /// Where the state dict sits in a torch archive (safetensors files keep tensors at the top level).
    pub state_dict: String,
    /// Optional facts the labels gate compares with the code (a missing one is a finding there).
    pub horizon: String,
    pub thresholds: String,
    /// The NaN policy the model was trained under (optional; compared by norm-stats).
    pub nan_policy: String,
    /// The training run the scaler statistics were computed in, and the run that wrote the weights
    /// (optional; when both exist they must be equal).
    pub scaler_run_id: String,
    pub run_id: String,
}

impl Default for CheckpointKeys {
    fn default() -> Self {
        CheckpointKeys {
            feature_cols: "feature_cols".into(),
            feature_dtypes: "feature_dtypes".into(),
            input_dim: "input_dim".into(),
            schema_hash: "schema_hash".into(),
            scaler_kind: "scaler.kind".into(),
            median: "scaler.median".into(),
            mad: "scaler.mad".into(),
            model_version: "model_version".into(),
            heads_version: "heads_version".into(),
            heads: "heads".into(),
            arch: "arch".into(),
            state_dict: "state_dict".into(),
            horizon: "targets.horizon".into(),
            thresholds: "targets.thresholds".into(),
            nan_policy: "nan_policy".into(),
            scaler_run_id: "scaler.run_id".into(),
            run_id: "run.run_id".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DocsSection {
    /// The canonical contract, committed (validated against schemas/pipeline-contract.schema.json).
    pub json: String,
    /// Markdown files with `<!-- plumbline:begin NAME -->` … `<!-- plumbline:end NAME -->` blocks.
    pub markdown: Vec<String>,
}

impl Default for DocsSection {
    fn default() -> Self {
        DocsSection {
            json: "docs/PIPELINE_CONTRACT.json".into(),
            markdown: vec!["docs/PIPELINE_CONTRACT.md".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeverityOverride {
    Error,
    Warning,
    Note,
    Off,
}

impl SeverityOverride {
    pub fn severity(self) -> Option<Severity> {
        match self {
            SeverityOverride::Error => Some(Severity::Error),
            SeverityOverride::Warning => Some(Severity::Warning),
            SeverityOverride::Note => Some(Severity::Note),
            SeverityOverride::Off => None,
        }
    }
}

/// Where a fact lives. Exactly one of `python`, `rust`, `toml`, `json`, `checkpoint`, `command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum Source {
    /// A module-level constant in a Python file, read with a parser (never imported).
    Python { python: String, name: String },
    /// A `const` or `static` item in a Rust file.
    Rust { rust: String, name: String },
    /// A dotted key path in a TOML file.
    Toml { toml: String, key: String },
    /// A dotted key path in a JSON file.
    Json { json: String, key: String },
    /// A dotted key path inside a checkpoint: `"production"` or a path.
    Checkpoint { checkpoint: String, key: String },
    /// A command (argv, run in the config's directory) that prints JSON; `key` selects inside it.
    Command {
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default = "default_timeout", rename = "timeout-secs")]
        timeout_secs: u64,
    },
}

fn default_timeout() -> u64 {
    30
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Source::try_from(RawSource::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The permissive shape a source is first read into, so a wrong combination gets a precise message
/// (with the TOML position) instead of serde's "did not match any variant".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSource {
    python: Option<String>,
    rust: Option<String>,
    toml: Option<String>,
    json: Option<String>,
    checkpoint: Option<String>,
    command: Option<Vec<String>>,
    name: Option<String>,
    key: Option<String>,
    timeout_secs: Option<u64>,
}

impl TryFrom<RawSource> for Source {
    type Error = String;

    fn try_from(r: RawSource) -> std::result::Result<Self, String> {
        let kinds = [
            r.python.is_some(),
            r.rust.is_some(),
            r.toml.is_some(),
            r.json.is_some(),
            r.checkpoint.is_some(),
            r.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err("a source needs exactly one of `python`, `rust`, `toml`, `json`, `checkpoint`, `command`".into());
        }
        let need = |field: Option<String>, what: &str, kind: &str| {
            field.ok_or_else(|| format!("a `{kind}` source needs `{what}`"))
        };
        let no = |field: &Option<String>, what: &str, kind: &str| match field {
            Some(_) => Err(format!("a `{kind}` source takes no `{what}`")),
            None => Ok(()),
        };
        if r.timeout_secs.is_some() && r.command.is_none() {
            return Err("`timeout-secs` only applies to `command` sources".into());
        }
        if let Some(python) = r.python {
            no(&r.key, "key", "python")?;
            return Ok(Source::Python {
                python,
                name: need(r.name, "name", "python")?,
            });
        }
        if let Some(rust) = r.rust {
            no(&r.key, "key", "rust")?;
            return Ok(Source::Rust {
                rust,
                name: need(r.name, "name", "rust")?,
            });
        }
        no(&r.name, "name", "toml/json/checkpoint/command")?;
        if let Some(toml) = r.toml {
            return Ok(Source::Toml {
                toml,
                key: need(r.key, "key", "toml")?,
            });
        }
        if let Some(json) = r.json {
            return Ok(Source::Json {
                json,
                key: need(r.key, "key", "json")?,
            });
        }
        if let Some(checkpoint) = r.checkpoint {
            return Ok(Source::Checkpoint {
                checkpoint,
                key: need(r.key, "key", "checkpoint")?,
            });
        }
        let command = r.command.unwrap_or_default();
        if command.is_empty() {
            return Err("a `command` source needs a non-empty argv list".into());
        }
        Ok(Source::Command {
            command,
            key: r.key,
            timeout_secs: r.timeout_secs.unwrap_or_else(default_timeout),
        })
    }
}

/// A table of raw (unscaled) feature rows: a CSV with a header holding the timestamp column, the
/// optional symbol column and every feature column by name (docs/config.md#slice).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SliceSection {
    /// Path of the CSV, relative to the config.
    pub features: String,
    #[serde(default = "default_timestamp")]
    pub timestamp: String,
    /// The symbol column; `""` for a single-instrument slice without one.
    #[serde(default = "default_symbol")]
    pub symbol: String,
}

fn default_timestamp() -> String {
    "timestamp".into()
}

fn default_symbol() -> String {
    "symbol".into()
}

/// `[gates]`: every gate runs unless disabled here (or skipped because its inputs are not configured).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GatesSection {
    /// Gates not to run, by name.
    pub disable: Vec<String>,
    pub norm_stats: NormStatsSettings,
    pub forward_contract: ForwardSettings,
    pub output_distribution: OutputDistributionSettings,
    pub feature_parity: FeatureParitySettings,
    pub leakage: LeakageSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FeatureParitySettings {
    /// Values agree when |a − b| ≤ atol + rtol · |b| (b: the training builder's), or both are NaN.
    pub atol: f64,
    pub rtol: f64,
}

impl Default for FeatureParitySettings {
    fn default() -> Self {
        FeatureParitySettings {
            atol: 1e-9,
            rtol: 1e-9,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LeakageSettings {
    /// Cut points, evenly spaced between 30% and 90% of the timestamps.
    pub cuts: usize,
    /// Factor applied to the price columns after a cut (perturb-future).
    pub perturb: f64,
}

impl Default for LeakageSettings {
    fn default() -> Self {
        LeakageSettings {
            cuts: 5,
            perturb: 1.5,
        }
    }
}

impl GatesSection {
    /// Every number finite and in range: a NaN tolerance would turn every comparison into a pass.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let n = &self.norm_stats;
        let f = &self.forward_contract;
        let o = &self.output_distribution;
        let non_negative = [
            ("gates.norm-stats.mad-epsilon", n.mad_epsilon),
            ("gates.norm-stats.tolerance", n.tolerance),
            (
                "gates.forward-contract.reference-tolerance",
                f.reference_tolerance,
            ),
            ("gates.forward-contract.batch-tolerance", f.batch_tolerance),
            (
                "gates.output-distribution.collapse-epsilon",
                o.collapse_epsilon,
            ),
            ("gates.output-distribution.psi-threshold", o.psi_threshold),
            ("gates.output-distribution.js-threshold", o.js_threshold),
            ("gates.feature-parity.atol", self.feature_parity.atol),
            ("gates.feature-parity.rtol", self.feature_parity.rtol),
        ];
        if self.leakage.cuts < 1 {
            return Err("`gates.leakage.cuts` must be at least 1".into());
        }
        if !self.leakage.perturb.is_finite()
            || self.leakage.perturb == 1.0
            || self.leakage.perturb <= 0.0
        {
            return Err(format!(
                "`gates.leakage.perturb` must be a positive factor other than 1, not {}",
                self.leakage.perturb
            ));
        }
        for (key, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("`{key}` must be a finite number ≥ 0, not {v}"));
            }
        }
        for (key, v) in [
            (
                "gates.output-distribution.class-share-min",
                o.class_share_min,
            ),
            (
                "gates.output-distribution.class-share-max",
                o.class_share_max,
            ),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{key}` must be a share between 0 and 1, not {v}"));
            }
        }
        if o.class_share_min > o.class_share_max {
            return Err(format!(
                "`gates.output-distribution.class-share-min` ({}) is above `class-share-max` ({})",
                o.class_share_min, o.class_share_max
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NormStatsSettings {
    /// A MAD at or below this is a constant feature (scaling divides by it).
    pub mad_epsilon: f64,
    /// Recompute median and MAD on the slice and compare.
    pub recompute: bool,
    /// Allowed difference, in units of the checkpoint's MAD, between recomputed and stored statistics.
    pub tolerance: f64,
}

impl Default for NormStatsSettings {
    fn default() -> Self {
        NormStatsSettings {
            mad_epsilon: 1e-8,
            recompute: false,
            tolerance: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ForwardSettings {
    /// Reference outputs to match (JSON rows with `scaled` inputs and `outputs` by head), e.g. written
    /// by the training script with PyTorch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Largest allowed absolute difference from the reference outputs.
    pub reference_tolerance: f64,
    /// Largest allowed difference between a row run in a batch and the same row run alone.
    pub batch_tolerance: f64,
    /// Seed of the normal draws among the probes.
    pub seed: u64,
    /// How many normal draws, and how many rows of the slice, the probes hold.
    pub normal_rows: usize,
    pub slice_rows: usize,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        ForwardSettings {
            reference: None,
            reference_tolerance: 1e-5,
            batch_tolerance: 1e-6,
            seed: 7,
            normal_rows: 32,
            slice_rows: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct OutputDistributionSettings {
    /// A head output whose standard deviation over the slice is at or below this has collapsed.
    pub collapse_epsilon: f64,
    /// Bounds on each class's share of the slice's predictions (argmax of a softmax head).
    pub class_share_min: f64,
    pub class_share_max: f64,
    /// The stored reference distribution (`plumbline baseline` writes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Drift alarms: population stability index and Jensen-Shannon divergence (base 2).
    pub psi_threshold: f64,
    pub js_threshold: f64,
}

impl Default for OutputDistributionSettings {
    fn default() -> Self {
        OutputDistributionSettings {
            collapse_epsilon: 1e-6,
            class_share_min: 0.05,
            class_share_max: 0.9,
            baseline: None,
            psi_threshold: 0.2,
            js_threshold: 0.1,
        }
    }
}

/// A user's command (docs/commands.md): argv with `{placeholders}`, run in the config's directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommandSpec {
    pub argv: Vec<String>,
    /// Overrides the section's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Extra environment variables (the rest is inherited).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A builder's own column list (a source pointer), compared with the contract by feature-schema
    /// and used to point feature-parity's findings at the builder's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Source>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DataSection {
    /// A table of bars: timestamp, symbol, then the price columns the builders read.
    pub prices: String,
    #[serde(default = "default_timestamp")]
    pub timestamp: String,
    /// `""` for a single instrument without a symbol column.
    #[serde(default = "default_symbol")]
    pub symbol: String,
    /// Columns leakage's perturb-future scales (default: open, high, low, close).
    #[serde(default = "default_price_columns")]
    pub price_columns: Vec<String>,
}

fn default_price_columns() -> Vec<String> {
    ["open", "high", "low", "close"].map(String::from).to_vec()
}

fn default_command_timeout() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildersSection {
    /// Vectorised over the whole history; the reference of feature-parity and what leakage runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<CommandSpec>,
    /// Writes the labels (`forward_return`, `label`), for leakage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<CommandSpec>,
    #[serde(default = "default_command_timeout")]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InferenceSection {
    /// The checkpoint the inference paths load (`{checkpoint}`); default: the production checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<CommandSpec>,
    #[serde(default = "default_command_timeout")]
    pub timeout_secs: u64,
    /// Largest allowed absolute difference between two paths' outputs.
    #[serde(default = "default_inference_tolerance")]
    pub tolerance: f64,
}

fn default_inference_tolerance() -> f64 {
    1e-5
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RulesetSection {
    /// The ruleset TOML (schemas/ruleset.schema.json).
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<CommandSpec>,
    #[serde(default = "default_command_timeout")]
    pub timeout_secs: u64,
}

/// A loaded config and the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The config file as given on the command line.
    pub path: PathBuf,
    /// Its directory ("." when the config is in the working directory).
    pub root: PathBuf,
    /// Why the config's commands must not run here (`plumbline ci` under `pull_request_target`), if so.
    /// Every command goes through [`crate::exec::run`], which refuses it with this reason.
    pub refuse_commands: Option<String>,
    /// Only these gates are needed (`--changed-from`), with the reason shown for the others.
    pub only: Option<(std::collections::BTreeSet<String>, String)>,
    /// The base revision to classify contract changes against (`--base`, or the pull request's base).
    pub base: Option<String>,
    /// Which version of the files this run reads (the work tree, or the index for `hook pre-commit`).
    pub snapshot: std::sync::Arc<crate::snapshot::Snapshot>,
    /// Checkpoints the globs do not find but this run checks (`--checkpoint`), absolute.
    pub extra_checkpoints: Vec<PathBuf>,
    /// Set when a command was refused (`refuse_commands`): the run's outcome says so as a flag, so no
    /// one has to search messages for the reason.
    pub commands_refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
            self.extra_checkpoints.push(abs.clone());
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
            &self.extra_checkpoints,
        )
    }

    /// A config-relative path as a file-system path.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// A config-relative path as it is shown in findings (`/` separators, no leading `./`).
    pub fn display(&self, rel: &str) -> String {
        display_path(&self.resolve(rel))
    }

    /// A text file as this run sees it (the work tree, or the staged version in `hook pre-commit`).
    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        self.snapshot.read_to_string(path)
    }

    /// A checkpoint as this run sees it: its staged bytes when the run reads the index and git tracks
    /// it, else the file (header reads only).
    pub fn open_checkpoint(&self, path: &Path) -> Result<crate::checkpoint::CheckpointInfo> {
        let reading = self.reading();
        match self.snapshot.staged(path)? {
            Some(bytes) => crate::checkpoint::open_bytes(path, bytes, &reading),
            None => crate::checkpoint::open_with(path, &reading),
        }
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
        refuse_commands: None,
        only: None,
        base: None,
        snapshot,
        extra_checkpoints: Vec::new(),
        commands_refused: Default::default(),
    })
}

pub fn parse(text: &str, display: &str) -> Result<Config> {
    parse_toml(text, display)
}

/// Deserialize a TOML file; errors are `file:line:column: message`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, display: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let at = located(display, text, e.span().map_or(0, |s| s.start));
        Error::at(at, e.message().trim().to_owned())
    })
}

/// The location (line and column) of a byte offset in a file's text.
pub fn located(display: &str, text: &str, offset: usize) -> Location {
    let (line, column) = line_col(text, offset);
    Location {
        path: display.to_owned(),
        line: Some(line),
        column: Some(column),
        label: None,
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line as u32, col as u32)
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
            Source::Command {
                timeout_secs: 30,
                ..
            }
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
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
    }
}
