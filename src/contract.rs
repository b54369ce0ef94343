//! `PipelineContract`: what the pipeline promises, derived from code and the production checkpoint.
//! Serialized canonically (see [`crate::canonical`]) to `docs/PIPELINE_CONTRACT.json`; its schema is
//! committed as `schemas/pipeline-contract.schema.json`. Nothing volatile goes in: no timestamps, no tool
//! version, no absolute paths, no source line numbers (those live in [`crate::facts`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::checkpoint::Format;
use crate::error::{Error, Result};
use crate::facts::{CheckpointFact, CheckpointFacts, Facts, vector_len};
use crate::source::Fact;

/// Version of the contract format itself (bumped when these types change shape).
pub const CONTRACT_FORMAT: u32 = 1;

/// Feature dtypes plumbline knows (torch's names).
pub const DTYPES: &[&str] = &[
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
];

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
pub struct Targets {
    /// Label horizon in bars.
    pub horizon: u64,
    /// Label thresholds by name.
    pub thresholds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Head {
    pub name: String,
    /// Position in the model's output (never used to find a head: names are).
    pub index: u32,
    /// What the head's output means, e.g. `softmax` (class logits), `sigmoid`, `regression`.
    pub kind: String,
    /// Output shape per row.
    pub shape: Vec<u64>,
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

/// The schema hash of DESIGN §5: sha256 over UTF-8 `name:dtype\n` per feature, in order.
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

fn invalid(fact: &Fact, what: &str) -> Error {
    Error::at(
        fact.origin.clone(),
        format!("{what} (got {})", short(&fact.value)),
    )
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// A version is an int or a non-empty string; ints are written as their decimal digits.
pub fn version(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The ordered feature names of a code fact.
pub fn feature_names(fact: &Fact) -> Result<Vec<String>> {
    let arr = fact
        .value
        .as_array()
        .ok_or_else(|| invalid(fact, "the feature list must be a list of strings"))?;
    let mut names = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        let name = v.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::at(
                fact.item(i),
                format!("feature {i} must be a non-empty string (got {})", short(v)),
            )
        })?;
        if let Some(j) = names.iter().position(|n| n == name) {
            return Err(Error::at(
                fact.item(i),
                format!("feature `{name}` is listed twice (indices {j} and {i})"),
            ));
        }
        names.push(name.to_owned());
    }
    if names.is_empty() {
        return Err(invalid(fact, "the feature list is empty"));
    }
    Ok(names)
}

/// Dtypes aligned with `names`, from one dtype string, a list, or a dict name → dtype.
pub fn feature_dtypes(fact: &Fact, names: &[String]) -> Result<Vec<String>> {
    let check = |d: &str| -> Result<String> {
        if DTYPES.contains(&d) {
            Ok(d.to_owned())
        } else {
            Err(invalid(
                fact,
                &format!("unknown dtype `{d}` (known: {})", DTYPES.join(", ")),
            ))
        }
    };
    match &fact.value {
        Value::String(d) => {
            let d = check(d)?;
            Ok(names.iter().map(|_| d.clone()).collect())
        }
        Value::Array(a) if a.len() == names.len() => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| invalid(fact, "dtypes must be strings"))
                    .and_then(check)
            })
            .collect(),
        Value::Object(m) => {
            if let Some(extra) = m.keys().find(|k| !names.contains(k)) {
                return Err(invalid(
                    fact,
                    &format!("dtype given for `{extra}`, which is not a feature"),
                ));
            }
            names
                .iter()
                .map(|n| {
                    m.get(n)
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            Error::at(fact.origin.clone(), format!("no dtype for feature `{n}`"))
                        })
                        .and_then(check)
                })
                .collect()
        }
        _ => Err(invalid(
            fact,
            &format!(
                "dtypes must be one dtype, a list of {} dtypes, or a dict feature → dtype",
                names.len()
            ),
        )),
    }
}

/// The head map of a code fact: a list of `{name, kind, size | shape}` in output order.
pub fn heads(fact: &Fact) -> Result<Vec<Head>> {
    let arr = fact.value.as_array().ok_or_else(|| {
        invalid(
            fact,
            "the head map must be a list of {name, kind, size} dicts",
        )
    })?;
    let mut out: Vec<Head> = Vec::new();
    for (i, h) in arr.iter().enumerate() {
        let at = fact.item(i);
        let obj = h.as_object().ok_or_else(|| {
            Error::at(
                at.clone(),
                format!("head {i} must be a dict with name, kind and size"),
            )
        })?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let name = name
            .ok_or_else(|| Error::at(at.clone(), format!("head {i} has no `name`")))?
            .to_owned();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::at(at.clone(), format!("head `{name}` has no `kind`")))?
            .to_owned();
        let shape = match (obj.get("shape"), obj.get("size")) {
            (Some(s), None) => s
                .as_array()
                .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>()),
            (None, Some(s)) => s.as_u64().map(|n| vec![n]),
            _ => None,
        }
        .ok_or_else(|| {
            Error::at(
                at.clone(),
                format!("head `{name}` needs `size` (an int) or `shape` (a list of ints)"),
            )
        })?;
        if out.iter().any(|o| o.name == name) {
            return Err(Error::at(at, format!("head `{name}` is listed twice")));
        }
        out.push(Head {
            name,
            index: i as u32,
            kind,
            shape,
        });
    }
    Ok(out)
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
    let names = feature_names(&c.columns)?;
    let dtypes = feature_dtypes(&c.dtypes, &names)?;
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
    let horizon = c.horizon.value.as_u64().ok_or_else(|| {
        invalid(
            &c.horizon,
            "the label horizon must be a non-negative int (bars)",
        )
    })?;
    let thresholds = c
        .thresholds
        .value
        .as_object()
        .ok_or_else(|| invalid(&c.thresholds, "thresholds must be a dict name → number"))?
        .iter()
        .map(|(k, v)| {
            v.as_f64()
                .map(|f| (k.clone(), f))
                .ok_or_else(|| invalid(&c.thresholds, &format!("threshold `{k}` is not a number")))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;

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
        model_version: version(&c.model_version.value).ok_or_else(|| {
            invalid(
                &c.model_version,
                "the model version must be an int or a non-empty string",
            )
        })?,
        heads_version: version(&c.heads_version.value).ok_or_else(|| {
            invalid(
                &c.heads_version,
                "the heads version must be an int or a non-empty string",
            )
        })?,
        features: Features {
            columns,
            schema_hash: hash,
            nan_policy,
        },
        targets: Targets {
            horizon,
            thresholds,
        },
        heads: heads(&c.heads)?,
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
pub fn softmax_heads(heads_fact: &Fact) -> Vec<String> {
    heads(heads_fact)
        .map(|hs| {
            hs.into_iter()
                .filter(|h| h.kind == "softmax")
                .map(|h| h.name)
                .collect()
        })
        .unwrap_or_default()
}

/// The `<head>.<k>` columns of a contract's heads, in order.
pub fn output_columns(heads_fact: &Fact) -> Result<Vec<(String, String, usize)>> {
    Ok(heads(heads_fact)?
        .into_iter()
        .flat_map(|h| {
            let w: u64 = h.shape.iter().product();
            (0..w as usize).map(move |k| (format!("{}.{k}", h.name), h.name.clone(), k))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Location;
    use serde_json::json;

    #[test]
    fn schema_hash_recipe() {
        // python3 -c 'import hashlib; print(hashlib.sha256(b"ret_1:float32\nvol_20:float32\n").hexdigest())'
        assert_eq!(
            schema_hash([("ret_1", "float32"), ("vol_20", "float32")]),
            "sha256:e74f88daf69b2e4cb520e9c79f3255e8be1ba5de360c80ed1850f9db25ce02a3"
        );
    }

    fn fact(v: serde_json::Value) -> Fact {
        Fact::new(v, Location::at("m.py", 7))
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn versions_are_ints_or_non_empty_strings() {
        assert_eq!(version(&json!(3)), Some("3".into()));
        assert_eq!(version(&json!(-1)), Some("-1".into()));
        assert_eq!(version(&json!(u64::MAX)), Some(u64::MAX.to_string()));
        assert_eq!(version(&json!("v3.1")), Some("v3.1".into()));
        assert_eq!(version(&json!("  ")), None);
        assert_eq!(version(&json!(3.5)), None);
        assert_eq!(version(&json!(null)), None);
    }

    #[test]
    fn dtypes_as_one_string_a_list_or_a_dict() {
        let names: Vec<String> = vec!["a".into(), "b".into()];
        assert_eq!(
            feature_dtypes(&fact(json!("float32")), &names).unwrap(),
            ["float32", "float32"]
        );
        assert_eq!(
            feature_dtypes(&fact(json!(["float32", "int64"])), &names).unwrap(),
            ["float32", "int64"]
        );
        assert_eq!(
            feature_dtypes(&fact(json!({"b": "int64", "a": "float64"})), &names).unwrap(),
            ["float64", "int64"]
        );
        assert!(
            err(feature_dtypes(&fact(json!(["float32"])), &names)).contains("a list of 2 dtypes")
        );
        assert!(
            err(feature_dtypes(&fact(json!({"a": "float32"})), &names))
                .contains("no dtype for feature `b`")
        );
        assert!(
            err(feature_dtypes(
                &fact(json!({"a": "float32", "b": "float32", "c": "float32"})),
                &names
            ))
            .contains("`c`, which is not a feature")
        );
        assert!(
            err(feature_dtypes(&fact(json!("float128")), &names))
                .starts_with("m.py:7: unknown dtype `float128`")
        );
    }

    #[test]
    fn heads_take_size_or_shape() {
        let h = heads(&fact(json!([{"name": "d", "kind": "softmax", "size": 3}, {"name": "m", "kind": "regression", "shape": [1, 2]}]))).unwrap();
        assert_eq!(
            h[0],
            Head {
                name: "d".into(),
                index: 0,
                kind: "softmax".into(),
                shape: vec![3]
            }
        );
        assert_eq!(
            h[1],
            Head {
                name: "m".into(),
                index: 1,
                kind: "regression".into(),
                shape: vec![1, 2]
            }
        );
        for bad in [
            json!([{"name": "d", "kind": "k", "size": 3, "shape": [3]}]),
            json!([{"name": "d", "kind": "k"}]),
            json!([{"name": "d", "kind": "k", "shape": ["3"]}]),
        ] {
            assert!(err(heads(&fact(bad))).contains("head `d` needs `size`"));
        }
        assert!(
            err(heads(&fact(json!([{"kind": "k", "size": 1}])))).contains("head 0 has no `name`")
        );
        assert!(
            err(heads(&fact(json!([{"name": "d", "size": 1}])))).contains("head `d` has no `kind`")
        );
        assert!(err(heads(&fact(json!([{"name": "d", "kind": "k", "size": 1}, {"name": "d", "kind": "k", "size": 1}])))).contains("listed twice"));
    }

    #[test]
    fn errors_quote_long_values_shortened() {
        let long = "x".repeat(200);
        let e = err(feature_names(&fact(json!(long))));
        assert!(e.contains(&format!("(got \"{}…)", "x".repeat(79))), "{e}");
        let e = err(feature_names(&fact(json!("short"))));
        assert!(e.ends_with("(got \"short\")"), "{e}");
    }
}
