//! Facts: every value the contract is made of, resolved from the config's source pointers, plus the
//! production checkpoint's own facts. Each keeps its provenance so findings can point at lines.

use crate::checkpoint::{self, CheckpointInfo, Tree};
use crate::config::{CheckpointKeys, Loaded};
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;
use crate::source::{Fact, Resolver};

/// Facts from the pipeline's code (and whatever else the config points at).
#[derive(Debug, Clone)]
pub struct CodeFacts {
    pub model_version: Fact,
    pub heads_version: Fact,
    pub heads: Fact,
    pub columns: Fact,
    pub dtypes: Fact,
    pub nan_policy: Fact,
    pub horizon: Fact,
    pub thresholds: Fact,
}

/// A fact a checkpoint must carry, looked up by its configured key.
#[derive(Debug, Clone)]
pub struct CheckpointFact {
    /// The config field that names the key (`input-dim`), for messages.
    pub field: &'static str,
    pub key: String,
    pub value: Option<Tree>,
    pub location: Location,
}

/// The production checkpoint's facts, each possibly missing (a missing one is a finding, not a crash).
#[derive(Debug, Clone)]
pub struct CheckpointFacts {
    pub feature_cols: CheckpointFact,
    pub feature_dtypes: CheckpointFact,
    pub input_dim: CheckpointFact,
    pub schema_hash: CheckpointFact,
    pub scaler_kind: CheckpointFact,
    pub median: CheckpointFact,
    pub mad: CheckpointFact,
    pub model_version: CheckpointFact,
    pub heads_version: CheckpointFact,
    pub heads: CheckpointFact,
    pub arch: CheckpointFact,
}

impl CheckpointFact {
    /// Look `key` up in a checkpoint (a missing key gives `value: None`).
    pub fn lookup(info: &CheckpointInfo, field: &'static str, key: &str) -> Self {
        CheckpointFact {
            field,
            key: key.to_owned(),
            value: info.get(key).cloned(),
            location: Location::file(display_path(&info.path))
                .with_label(format!("checkpoint key `{key}`")),
        }
    }
}

impl CheckpointFacts {
    pub fn read(info: &CheckpointInfo, keys: &CheckpointKeys) -> Self {
        let fact = |field: &'static str, key: &str| CheckpointFact::lookup(info, field, key);
        CheckpointFacts {
            feature_cols: fact("feature-cols", &keys.feature_cols),
            feature_dtypes: fact("feature-dtypes", &keys.feature_dtypes),
            input_dim: fact("input-dim", &keys.input_dim),
            schema_hash: fact("schema-hash", &keys.schema_hash),
            scaler_kind: fact("scaler-kind", &keys.scaler_kind),
            median: fact("median", &keys.median),
            mad: fact("mad", &keys.mad),
            model_version: fact("model-version", &keys.model_version),
            heads_version: fact("heads-version", &keys.heads_version),
            heads: fact("heads", &keys.heads),
            arch: fact("arch", &keys.arch),
        }
    }

    /// Every required fact, in the documented order.
    pub fn required(&self) -> [&CheckpointFact; 11] {
        [
            &self.feature_cols,
            &self.feature_dtypes,
            &self.input_dim,
            &self.schema_hash,
            &self.scaler_kind,
            &self.median,
            &self.mad,
            &self.model_version,
            &self.heads_version,
            &self.heads,
            &self.arch,
        ]
    }

    pub fn missing(&self) -> Vec<&CheckpointFact> {
        self.required()
            .into_iter()
            .filter(|f| f.value.is_none())
            .collect()
    }
}

/// Length of a stats vector stored as a list or as a tensor node.
pub fn vector_len(v: &Tree) -> Option<u64> {
    match v {
        Tree::Array(a) => Some(a.len() as u64),
        Tree::Object(_) => {
            let shape = checkpoint::lookup(v, "$tensor.shape")?.as_array()?;
            shape.iter().map(Tree::as_u64).product::<Option<u64>>()
        }
        _ => None,
    }
}

/// Why a fact cannot be used, and where it is.
#[derive(Debug, Clone)]
pub struct Unusable {
    pub message: String,
    pub location: Location,
}

/// Everything `derive` and the gates read, resolved once.
#[derive(Debug, Clone)]
pub struct Facts {
    pub code: CodeFacts,
    pub production: CheckpointInfo,
    pub checkpoint: CheckpointFacts,
}

impl Facts {
    /// The code's NaN policy, as the scaler applies it.
    pub fn nan_policy(&self) -> crate::scaler::NanPolicy {
        crate::scaler::NanPolicy::parse(self.code.nan_policy.value.as_str().unwrap_or(""))
    }

    /// The production checkpoint's scaler (`median` and `mad`, one number per model input), or why it
    /// cannot be used. Gates turn the reason into their own finding; the audit into an error.
    pub fn scaler(&self) -> std::result::Result<crate::scaler::Scaler, Unusable> {
        let ck = &self.checkpoint;
        let n = self.model_feature_names().map(|v| v.len()).unwrap_or(0);
        let get = |f: &CheckpointFact| {
            f.value
                .as_ref()
                .and_then(crate::scaler::numbers)
                .filter(|v| v.len() == n)
                .ok_or_else(|| Unusable {
                    message: format!(
                        "`{}` is not a list of {n} numbers, so probe rows cannot be scaled",
                        f.key
                    ),
                    location: f.location.clone(),
                })
        };
        Ok(crate::scaler::Scaler {
            median: get(&ck.median)?,
            mad: get(&ck.mad)?,
        })
    }

    /// The model's input columns: the production checkpoint's `feature_cols` (what the weights were
    /// trained on), or the code's list when the checkpoint has no usable one. The slice is read in this
    /// order, so the model gates run the model as trained while feature-schema reports any mismatch.
    pub fn model_feature_names(&self) -> Result<Vec<String>> {
        let from_checkpoint = self.checkpoint.feature_cols.value.as_ref().and_then(|v| {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        match from_checkpoint {
            Some(names) if !names.is_empty() => Ok(names),
            _ => self.feature_names(),
        }
    }

    /// The code's feature list (the contract's order). Not a list of strings: an error at its source.
    pub fn feature_names(&self) -> Result<Vec<String>> {
        let f = &self.code.columns;
        f.value
            .as_array()
            .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| {
                Error::at(
                    f.origin.clone(),
                    "the feature list must be a list of strings",
                )
            })
    }
}

/// Read the production checkpoint and resolve every source of the config. A source that cannot be
/// resolved is an error (exit 2) naming its file and line; a fact missing from the checkpoint is not.
pub fn collect(loaded: &Loaded) -> Result<Facts> {
    let cfg = &loaded.config;
    let production_path = loaded.resolve(&cfg.checkpoints.production);
    let production = loaded
        .open_checkpoint(&production_path)
        .map_err(|e| match e {
            Error::Io { path, source } => Error::msg(format!(
                "production checkpoint {} (checkpoints.production in {}): {source}",
                display_path(&path),
                display_path(&loaded.path)
            )),
            other => other,
        })?;
    let checkpoint = CheckpointFacts::read(&production, &cfg.checkpoints.keys);
    let mut r = Resolver::new(loaded, Some(&production));
    let code = CodeFacts {
        model_version: r.resolve(&cfg.model.version)?,
        heads_version: r.resolve(&cfg.model.heads_version)?,
        heads: r.resolve(&cfg.model.heads)?,
        columns: r.resolve(&cfg.features.columns)?,
        dtypes: r.resolve(&cfg.features.dtypes)?,
        nan_policy: r.resolve(&cfg.features.nan_policy)?,
        horizon: r.resolve(&cfg.targets.horizon)?,
        thresholds: r.resolve(&cfg.targets.thresholds)?,
    };
    drop(r);
    Ok(Facts {
        code,
        production,
        checkpoint,
    })
}
