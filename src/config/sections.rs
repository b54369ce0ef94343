//! The tables of `plumbline.toml` that point at the pipeline: its model, features, targets, checkpoints,
//! docs, slice, data, builders, inference paths, ruleset, path rules and severity overrides.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::Source;
use crate::finding::Severity;

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
    /// Heads version: bumped when the head map changes. Not configured: "not stated", and the
    /// checkpoint need not state one either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads_version: Option<Source>,
    /// The head map: a list of `{name, kind, size}` (or `shape`) in output order. Not configured: one
    /// regression output (`output`, size 1), and the checkpoint need not state heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<Source>,
    /// The model's input: a window of this many bars per symbol (an int), or rows (`null`, one bar
    /// per input). Not configured: rows, and the checkpoint need not state a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Source>,
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
    /// Not configured: float32 for every feature, and the checkpoint need not state dtypes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtypes: Option<Source>,
    /// What the pipeline does with NaN inputs (e.g. "zero-fill", "forward-fill", "drop-row", "reject").
    /// Not configured: "not stated".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nan_policy: Option<Source>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetsSection {
    /// Label horizon in bars (a non-negative int).
    pub horizon: Source,
    /// Label thresholds: a dict name → number. Not configured: none (a regression target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Source>,
    /// How a label is computed from the prices, so that plumbline can compute reference labels and
    /// compare them with the labels builder's (label-definition, docs/gates/label-definition.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<LabelDefinition>,
}

/// A label as a forward return over `targets.horizon` bars of one price column, classed by
/// `targets.thresholds` (`long` and `short`): above `long` is `long`, below `short` is `short`, else
/// `flat` (strict on both sides: a return equal to a threshold is `flat`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LabelDefinition {
    /// The price column of `[data] prices` the return is taken on.
    #[serde(default = "default_close")]
    pub price: String,
    /// `log` (ln(p[t+h] / p[t])) or `simple` (p[t+h] / p[t] − 1).
    #[serde(default = "default_return_kind")]
    pub returns: ReturnKind,
    /// The labels table's column holding the forward return, if it writes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_column: Option<String>,
    /// The labels table's class column.
    pub label_column: String,
    /// The value the class column holds for each class: `long`, `flat`, `short`.
    pub classes: BTreeMap<String, i64>,
}

/// How a forward return is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReturnKind {
    Log,
    Simple,
}

fn default_close() -> String {
    "close".into()
}

fn default_return_kind() -> ReturnKind {
    ReturnKind::Log
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
    /// Files beside each checkpoint that may hold its metadata (docs/checkpoint-metadata.md#metadata-beside-the-checkpoint),
    /// looked up in this order after the checkpoint itself and a Lightning checkpoint's
    /// `hyper_parameters`: `{stem}` is the checkpoint's name without its extension, `{name}` its whole
    /// name; each must end in .json, .yaml, .yml or .toml. An MLflow `MLmodel` in the checkpoint's
    /// directory or the two above is read too.
    #[serde(default = "default_sidecars")]
    pub sidecars: Vec<String>,
}

fn default_sidecars() -> Vec<String> {
    crate::checkpoint::metadata::DEFAULT_SIDECARS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
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
    /// The statistics of the other scaler kinds (required by their kind: docs/checkpoint-metadata.md#scalers).
    pub mean: String,
    pub std: String,
    pub min: String,
    pub max: String,
    /// The scaler's constants, when the checkpoint states them (optional; the code may declare them
    /// under `[scaler]` instead).
    pub scaler_factor: String,
    pub scaler_epsilon: String,
    pub scaler_clip: String,
    pub model_version: String,
    pub heads_version: String,
    pub heads: String,
    pub arch: String,
    /// The window of bars the model takes (optional; compared with `[model] window` by feature-schema).
    pub window: String,
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

impl CheckpointKeys {
    /// Where a checkpoint's metadata is looked up beside it (`sidecars`), with these keys.
    pub fn search<'a>(&'a self, sidecars: &'a [String]) -> crate::checkpoint::metadata::Search<'a> {
        crate::checkpoint::metadata::Search {
            sidecars,
            feature_cols: &self.feature_cols,
            feature_dtypes: &self.feature_dtypes,
            input_dim: &self.input_dim,
            run_id: &self.run_id,
        }
    }
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
            mean: "scaler.mean".into(),
            std: "scaler.std".into(),
            min: "scaler.min".into(),
            max: "scaler.max".into(),
            scaler_factor: "scaler.factor".into(),
            scaler_epsilon: "scaler.epsilon".into(),
            scaler_clip: "scaler.clip".into(),
            model_version: "model_version".into(),
            heads_version: "heads_version".into(),
            heads: "heads".into(),
            arch: "arch".into(),
            window: "window".into(),
            state_dict: "state_dict".into(),
            horizon: "targets.horizon".into(),
            thresholds: "targets.thresholds".into(),
            nan_policy: "nan_policy".into(),
            scaler_run_id: "scaler.run_id".into(),
            run_id: "run.run_id".into(),
        }
    }
}

/// The scaler as the code declares it: each a source, each optional. A value the checkpoint also states
/// must agree with it (norm-stats `scaler-mismatch`); one only the code states is used as stated.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScalerSection {
    /// `robust` (median/MAD), `standard` (mean/std), `min-max` or `identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Source>,
    /// Multiplies the spread, e.g. a robust z-score's 1.4826.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<Source>,
    /// Added to the divisor, e.g. 1e-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<Source>,
    /// The scaled value's bounds: a number c (±c) or `[low, high]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<Source>,
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

/// Key columns: the timestamp, then the symbol when there is one (`""` for a single instrument).
fn key_columns<'a>(timestamp: &'a str, symbol: &'a str) -> Vec<&'a str> {
    [timestamp, symbol]
        .into_iter()
        .filter(|k| !k.is_empty())
        .collect()
}

impl SliceSection {
    /// The slice's key columns: the timestamp, then the symbol when there is one.
    pub fn key_columns(&self) -> Vec<&str> {
        key_columns(&self.timestamp, &self.symbol)
    }
}

fn default_symbol() -> String {
    "symbol".into()
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
    /// The training-time features every builder must reproduce on the rows it shares with them: a
    /// frozen table (CSV or Parquet) keyed like the builders' tables, with the contract's feature
    /// columns. Default: the `[slice]` features (feature-parity's anchor, docs/gates/feature-parity.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
}

impl DataSection {
    /// The key columns of the prices and of every table the builders write: the timestamp, then the
    /// symbol when there is one.
    pub fn key_columns(&self) -> Vec<&str> {
        key_columns(&self.timestamp, &self.symbol)
    }
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
    /// Writes the labels (`forward_return`, `label`), for leakage and label-definition.
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
