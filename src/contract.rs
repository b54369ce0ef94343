//! `PipelineContract`: what the pipeline promises, derived from code and the production checkpoint.
//! Serialized canonically (see [`crate::canonical`]) to `docs/PIPELINE_CONTRACT.json`; its schema is
//! committed as `schemas/pipeline-contract.schema.json`. Nothing volatile goes in: no timestamps, no tool
//! version, no absolute paths, no source line numbers (those live in [`crate::facts`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::checkpoint::Format;
use crate::error::Result;
use crate::facts::{CheckpointFact, CheckpointFacts, Facts, invalid, vector_len};
pub use crate::facts::{Head, Targets};

/// Version of the contract format itself (bumped when these types change shape). Every earlier format
/// is still read ([`read`]): a base revision may hold any of them.
///
/// - 1: the production checkpoint's `input-dim`, `schema-hash` and `scaler` were required.
/// - 2: the contract derives from code facts alone; each checkpoint fact is present when the checkpoint
///   (or its metadata beside it) states it, and `missing` names the required ones it lacks.
pub const CONTRACT_FORMAT: u32 = 2;

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
    /// The model's input: a window of this many bars per symbol, ordered by timestamp (absent: rows,
    /// one bar per input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u64>,
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
    /// The input width the checkpoint's metadata states (absent when it does not state one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_dim: Option<u64>,
    /// The schema hash the checkpoint stores (plumbline checks it against the derived one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaler: Option<Scaler>,
    /// The required metadata the checkpoint does not carry, by field name (`feature-cols`), in the
    /// documented order (docs/checkpoint-metadata.md). feature-schema reports each as a finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// The production scaler (docs/checkpoint-metadata.md#scalers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scaler {
    /// `robust`, `standard`, `min-max` or `identity` (the canonical name of the stated kind).
    pub kind: String,
    /// The length of each statistic the kind stores, by name (`median`, `mad`); empty for identity.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stats: std::collections::BTreeMap<String, u64>,
    /// Multiplies the spread (a robust z-score's 1.4826), when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Added to the divisor, when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// The scaled value's bounds `[low, high]`, when the pipeline clips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<[f64; 2]>,
}

/// How docs and reports show a checkpoint fact the checkpoint does not state.
pub const NOT_STATED: &str = "not stated by the checkpoint";

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
    const STAT: &str = "must be a list of numbers or a 1-D tensor";
    let mut rules: Vec<Rule> = vec![
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
            |v| v.as_str().and_then(crate::scaler::Kind::parse).is_some(),
            "must name a scaler kind: robust, standard, min-max or identity",
        ),
        (
            &ck.factor,
            |v| crate::scaler::factor(v).is_some(),
            "must be a positive number",
        ),
        (
            &ck.epsilon,
            |v| crate::scaler::epsilon(v).is_some(),
            "must be a non-negative number",
        ),
        (
            &ck.clip,
            |v| crate::scaler::clip(v).is_some(),
            "must be a positive number c (±c) or [low, high]",
        ),
    ];
    if let Some((a, b)) = ck.stats() {
        rules.push((a, |v| vector_len(v).is_some(), STAT));
        rules.push((b, |v| vector_len(v).is_some(), STAT));
    }
    rules
        .into_iter()
        .filter(|(f, ok, _)| f.value.as_ref().is_some_and(|v| !ok(v)))
        .map(|(f, _, what)| (f, what))
        .collect()
}

/// The scaler as the contract states it: the kind (the checkpoint's, else the code's), the lengths of
/// its statistics, and its constants ([`Facts::scaler_constants`]); `None` while the kind or a
/// statistic is missing or invalid.
fn scaler(facts: &Facts, valid: &dyn Fn(&CheckpointFact) -> Option<Value>) -> Option<Scaler> {
    let ck = &facts.checkpoint;
    if ck.unknown_kind.is_some() || (valid(&ck.scaler_kind).is_none() && ck.code_kind.is_none()) {
        return None;
    }
    let mut stats = std::collections::BTreeMap::new();
    if let (Some((a, b)), Some((na, nb))) = (ck.stats(), ck.kind.stats()) {
        stats.insert(na.to_owned(), vector_len(&valid(a)?)?);
        stats.insert(nb.to_owned(), vector_len(&valid(b)?)?);
    }
    let stated = facts.scaler_constants();
    Some(Scaler {
        kind: ck.kind.name().to_owned(),
        stats,
        factor: stated.factor,
        epsilon: stated.epsilon,
        clip: stated.clip.map(|(lo, hi)| [lo, hi]),
    })
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

/// Build the contract from the code's facts. Fails (exit 2) only when a code fact has the wrong type (the
/// error names the file and line); the checkpoint's facts are taken where it states them, and one it
/// lacks or states with the wrong type is left out (feature-schema reports it): a bare state dict never
/// blocks `derive`, `docs` or the hook.
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
    // A checkpoint fact of the wrong type is left out like a missing one: feature-schema reports it.
    let invalid: Vec<&str> = invalid_checkpoint_facts(ck)
        .iter()
        .map(|(f, _)| f.field)
        .collect();
    let valid = |f: &CheckpointFact| {
        f.value
            .as_ref()
            .filter(|_| !invalid.contains(&f.field))
            .cloned()
    };
    let scaler = scaler(facts, &valid);
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
        window: facts.window()?,
        targets,
        heads: facts.heads()?.to_vec(),
        production_checkpoint: ProductionCheckpoint {
            path: production_rel.replace('\\', "/"),
            format: facts.production.format,
            input_dim: valid(&ck.input_dim).and_then(|v| v.as_u64()),
            schema_hash: valid(&ck.schema_hash).and_then(|v| v.as_str().map(str::to_owned)),
            scaler,
            missing: ck.missing().iter().map(|f| f.field.to_owned()).collect(),
        },
    })
}

/// A contract as committed (at a base revision): in today's format, with the format it was written in.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub contract: PipelineContract,
    /// The `contract-format` of the file (earlier formats are upgraded on reading).
    pub format: u32,
}

/// Read a committed contract of any format this plumbline knows, upgrading it to today's. A format it
/// does not know (a newer plumbline wrote it) or a file that does not parse is the error, as a sentence.
pub fn read(bytes: &[u8]) -> std::result::Result<Committed, String> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let format = v
        .get("contract-format")
        .and_then(Value::as_u64)
        .ok_or("it has no `contract-format` (an int)")?;
    let format = u32::try_from(format)
        .ok()
        .filter(|f| (1..=CONTRACT_FORMAT).contains(f))
        .ok_or_else(|| {
            format!("contract format {format} is not one this plumbline reads (1 to {CONTRACT_FORMAT}); a newer plumbline wrote it")
        })?;
    for from in format..CONTRACT_FORMAT {
        upgrade(from, &mut v);
    }
    let contract = serde_json::from_value(v).map_err(|e| e.to_string())?;
    Ok(Committed { contract, format })
}

/// Upgrade a contract of format `from` to `from + 1`, in place.
fn upgrade(from: u32, v: &mut Value) {
    // 1 → 2: the production checkpoint's facts became optional and `missing` was added (empty: a
    // format-1 contract had every fact); the scaler's `median-len` and `mad-len` became `stats`, and
    // its kind is written by its canonical name.
    debug_assert_eq!(from, 1, "one upgrade step per earlier format");
    if let Some(sc) = v
        .pointer_mut("/production-checkpoint/scaler")
        .and_then(Value::as_object_mut)
    {
        let mut stats = serde_json::Map::new();
        for (old, new) in [("median-len", "median"), ("mad-len", "mad")] {
            if let Some(n) = sc.remove(old) {
                stats.insert(new.to_owned(), n);
            }
        }
        sc.insert("stats".to_owned(), Value::Object(stats));
        if let Some(kind) = sc.get("kind").and_then(Value::as_str) {
            let canonical = crate::scaler::Kind::parse(kind).map_or(kind, |k| k.name());
            sc.insert("kind".to_owned(), Value::from(canonical));
        }
    }
    v["contract-format"] = Value::from(from + 1);
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
