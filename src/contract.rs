//! `PipelineContract`: what the pipeline promises, derived from code and the production checkpoint.
//! Serialized canonically (see [`crate::canonical`]) to `docs/PIPELINE_CONTRACT.json`; its schema is
//! committed as `schemas/pipeline-contract.schema.json`. Nothing volatile goes in: no timestamps, no tool
//! version, no absolute paths, no source line numbers (those live in [`crate::facts`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::checkpoint::Format;
use crate::error::{Error, Result};
use crate::facts::{CheckpointFact, CheckpointFacts, Facts, invalid, vector_len};
pub use crate::facts::{Head, Targets};

/// Version of the contract format itself (bumped when these types change shape).
pub const CONTRACT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(
    title = "PipelineContract",
    description = "The contract of an ML trading pipeline, derived by plumbline from code and checkpoints."
)]
pub struct PipelineContract {
    /// Version of this format (plumbline's own schema version).
    pub contract_format: u32,
    pub pipeline: String,
    /// Bumped by every retrain that writes a new checkpoint.
    pub model_version: String,
    /// Bumped when the head map changes.
    pub heads_version: String,
    pub features: Features,
    pub targets: Targets,
    /// Output heads in output order, keyed by name.
    pub heads: Vec<Head>,
    pub production_checkpoint: ProductionCheckpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Features {
    /// The model's input columns, in order.
    pub columns: Vec<Feature>,
    /// `sha256:` + hex of sha256 over `name:dtype\n` for each column in order.
    pub schema_hash: String,
    pub nan_policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Feature {
    pub name: String,
    pub dtype: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProductionCheckpoint {
    /// Path relative to the config.
    pub path: String,
    pub format: Format,
    pub input_dim: u64,
    /// The schema hash the checkpoint stores (plumbline checks it against the derived one).
    pub schema_hash: String,
    pub scaler: Scaler,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scaler {
    pub kind: String,
    pub median_len: u64,
    pub mad_len: u64,
}

/// The schema hash (docs/checkpoint-metadata.md#the-schema-hash): sha256 over UTF-8 `name:dtype\n` per feature, in order.
pub fn schema_hash<'a>(features: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (name, dtype) in features {
        h.update(name.as_bytes());
        h.update(b":");
        h.update(dtype.as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{}", crate::checkpoint::hex(&h.finalize()))
}

/// A checkpoint fact, the test its value must pass, and what it must be.
type Rule<'a> = (&'a CheckpointFact, fn(&Value) -> bool, &'static str);

/// The checkpoint facts the contract is built from that have the wrong type, each with what it must be.
/// `check` reports them as `checkpoint-fact-invalid` findings; `derive` fails on the first.
pub fn invalid_checkpoint_facts(ck: &CheckpointFacts) -> Vec<(&CheckpointFact, &'static str)> {
    let rules: [Rule; 5] = [
        (
            &ck.input_dim,
            |v| v.as_u64().is_some(),
            "must be a non-negative int",
        ),
        (
            &ck.schema_hash,
            |v| v.as_str().is_some(),
            "must be a string `sha256:<hex>`",
        ),
        (
            &ck.scaler_kind,
            |v| v.as_str().is_some(),
            "must be a string",
        ),
        (
            &ck.median,
            |v| vector_len(v).is_some(),
            "must be a list of numbers or a 1-D tensor",
        ),
        (
            &ck.mad,
            |v| vector_len(v).is_some(),
            "must be a list of numbers or a 1-D tensor",
        ),
    ];
    rules
        .into_iter()
        .filter(|(f, ok, _)| f.value.as_ref().is_some_and(|v| !ok(v)))
        .map(|(f, _, what)| (f, what))
        .collect()
}

/// Resolve every fact of a config and build its contract (what `derive` and `docs --write` need).
pub fn from_config(loaded: &crate::config::Loaded) -> Result<PipelineContract> {
    let facts = crate::facts::collect(loaded)?;
    derive(
        &loaded.config.pipeline.name,
        &loaded.config.checkpoints.production,
        &facts,
    )
}

/// Build the contract. Fails (exit 2) when a code fact has the wrong type or a required checkpoint fact
/// is missing; the error names the file and the key or line.
pub fn derive(pipeline: &str, production_rel: &str, facts: &Facts) -> Result<PipelineContract> {
    let c = &facts.code;
    let names = facts.feature_names()?;
    let dtypes = facts.feature_dtypes()?;
    let columns: Vec<Feature> = names
        .iter()
        .zip(&dtypes)
        .map(|(n, d)| Feature {
            name: n.clone(),
            dtype: d.clone(),
        })
        .collect();
    let hash = schema_hash(columns.iter().map(|f| (f.name.as_str(), f.dtype.as_str())));
    let nan_policy = c
        .nan_policy
        .value
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(&c.nan_policy, "the NaN policy must be a string"))?
        .to_owned();
    let targets = facts.targets()?.clone();

    let ck = &facts.checkpoint;
    let missing = ck.missing();
    if !missing.is_empty() {
        let keys: Vec<String> = missing
            .iter()
            .map(|m| format!("`{}` ({})", m.key, m.field))
            .collect();
        return Err(Error::msg(format!(
            "{}: the production checkpoint lacks required metadata: {} (see docs/checkpoint-metadata.md)",
            crate::paths::display_path(&facts.production.path),
            keys.join(", ")
        )));
    }
    let ck_err = |f: &CheckpointFact, what: &str| {
        Error::at(f.location.clone(), format!("`{}` {what}", f.key))
    };
    let get = |f: &CheckpointFact| f.value.clone().unwrap_or(Value::Null);
    let input_dim = get(&ck.input_dim)
        .as_u64()
        .ok_or_else(|| ck_err(&ck.input_dim, "must be a non-negative int"))?;
    let stored_hash = get(&ck.schema_hash)
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ck_err(&ck.schema_hash, "must be a string"))?;
    let scaler_kind = get(&ck.scaler_kind)
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ck_err(&ck.scaler_kind, "must be a string"))?;
    let median_len = vector_len(&get(&ck.median))
        .ok_or_else(|| ck_err(&ck.median, "must be a list of numbers or a tensor"))?;
    let mad_len = vector_len(&get(&ck.mad))
        .ok_or_else(|| ck_err(&ck.mad, "must be a list of numbers or a tensor"))?;

    Ok(PipelineContract {
        contract_format: CONTRACT_FORMAT,
        pipeline: pipeline.to_owned(),
        model_version: facts.model_version()?,
        heads_version: facts.heads_version()?,
        features: Features {
            columns,
            schema_hash: hash,
            nan_policy,
        },
        targets,
        heads: facts.heads()?.to_vec(),
        production_checkpoint: ProductionCheckpoint {
            path: production_rel.replace('\\', "/"),
            format: facts.production.format,
            input_dim,
            schema_hash: stored_hash,
            scaler: Scaler {
                kind: scaler_kind,
                median_len,
                mad_len,
            },
        },
    })
}

/// Names of the contract's softmax heads (their outputs are logits).
pub fn softmax_heads(heads: &[Head]) -> Vec<String> {
    heads
        .iter()
        .filter(|h| h.kind == "softmax")
        .map(|h| h.name.clone())
        .collect()
}

/// The `<head>.<k>` columns of a contract's heads, in order.
pub fn output_columns(heads: &[Head]) -> Vec<(String, String, usize)> {
    heads
        .iter()
        .flat_map(|h| {
            let w: u64 = h.shape.iter().product();
            (0..w as usize).map(move |k| (format!("{}.{k}", h.name), h.name.clone(), k))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_hash_recipe() {
        // python3 -c 'import hashlib; print(hashlib.sha256(b"ret_1:float32\nvol_20:float32\n").hexdigest())'
        assert_eq!(
            schema_hash([("ret_1", "float32"), ("vol_20", "float32")]),
            "sha256:e74f88daf69b2e4cb520e9c79f3255e8be1ba5de360c80ed1850f9db25ce02a3"
        );
    }
}
