//! Facts: every value the contract is made of, resolved from the config's source pointers, plus the
//! production checkpoint's own facts. Each keeps its provenance so findings can point at lines.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::{self, CheckpointInfo, Tree};
use crate::config::{CheckpointKeys, Loaded};
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;
use crate::scaler::Kind;
use crate::source::Unconfigured;
use crate::source::{Fact, Resolver};

/// Facts from the pipeline's code (and whatever else the config points at).
#[derive(Debug, Clone)]
pub struct CodeFacts {
    pub model_version: Fact,
    pub heads_version: Fact,
    pub heads: Fact,
    /// The model's input window in bars, or `null` for rows.
    pub window: Fact,
    pub columns: Fact,
    pub dtypes: Fact,
    pub nan_policy: Fact,
    pub horizon: Fact,
    pub thresholds: Fact,
    /// The scaler as the code declares it (`[scaler]`), each where configured.
    pub scaler: CodeScaler,
}

/// The `[scaler]` facts of the code, each optional.
#[derive(Debug, Clone, Default)]
pub struct CodeScaler {
    pub kind: Option<Fact>,
    pub factor: Option<Fact>,
    pub epsilon: Option<Fact>,
    pub clip: Option<Fact>,
}

/// A fact a checkpoint must carry, looked up by its configured key.
#[derive(Debug, Clone)]
pub struct CheckpointFact {
    /// The config field that names the key (`input-dim`), for messages.
    pub field: &'static str,
    pub key: String,
    pub value: Option<Tree>,
    pub location: Location,
    /// For a list in a sidecar: each item's (line, column).
    pub items: Vec<(u32, u32)>,
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
    pub mean: CheckpointFact,
    pub std: CheckpointFact,
    pub min: CheckpointFact,
    pub max: CheckpointFact,
    pub factor: CheckpointFact,
    pub epsilon: CheckpointFact,
    pub clip: CheckpointFact,
    pub model_version: CheckpointFact,
    pub heads_version: CheckpointFact,
    pub heads: CheckpointFact,
    pub arch: CheckpointFact,
    /// The window of bars the model was trained on (optional: compared when the code or the
    /// checkpoint states one).
    pub window: CheckpointFact,
    /// The scaler kind: the checkpoint's when it states one plumbline knows, else the code's, else
    /// robust (the documented default).
    pub kind: Kind,
    /// The kind the code declares, if it does (then the checkpoint need not).
    pub code_kind: Option<Kind>,
    /// The kind the checkpoint states when plumbline does not know it (`quantile`): no gate can scale
    /// a row as the pipeline does, so the model gates say so rather than scale another way.
    pub unknown_kind: Option<String>,
    /// Fields (`heads`) the code does not declare: the checkpoint need not state them.
    pub not_required: Vec<&'static str>,
}

impl CheckpointFact {
    /// Look `key` up in a checkpoint (a missing key gives `value: None`).
    pub fn lookup(info: &CheckpointInfo, field: &'static str, key: &str) -> Self {
        let found = info.find(key);
        CheckpointFact {
            field,
            key: key.to_owned(),
            items: found.as_ref().map(|f| f.items.clone()).unwrap_or_default(),
            value: found.as_ref().map(|f| f.value.clone()),
            location: found.map(|f| f.location).unwrap_or_else(|| {
                Location::file(display_path(&info.path))
                    .with_label(format!("checkpoint key `{key}`"))
            }),
        }
    }

    /// Where list item `i` is written: its own line in a sidecar, else the fact's location.
    pub fn item(&self, i: usize) -> Location {
        let mut loc = self.location.clone();
        if let Some(&(line, column)) = self.items.get(i) {
            (loc.line, loc.column) = (Some(line), Some(column));
        }
        loc
    }
}

impl CheckpointFacts {
    /// The facts of `info` by `keys`; `code_kind`: the kind the code declares, if it does.
    pub fn read(info: &CheckpointInfo, keys: &CheckpointKeys, code_kind: Option<Kind>) -> Self {
        let fact = |field: &'static str, key: &str| CheckpointFact::lookup(info, field, key);
        let scaler_kind = fact("scaler-kind", &keys.scaler_kind);
        let text = scaler_kind.value.as_ref().map(|v| match v.as_str() {
            Some(s) => s.to_owned(),
            None => v.to_string(),
        });
        let stated = text.as_deref().and_then(Kind::parse);
        CheckpointFacts {
            // The checkpoint's kind decides which statistics it must hold; the code's when it states
            // none (a kind it states that plumbline does not know is `unknown_kind`).
            kind: stated.or(code_kind).unwrap_or(Kind::Robust),
            code_kind,
            unknown_kind: text.filter(|_| stated.is_none()),
            not_required: Vec::new(),
            feature_cols: fact("feature-cols", &keys.feature_cols),
            feature_dtypes: fact("feature-dtypes", &keys.feature_dtypes),
            input_dim: fact("input-dim", &keys.input_dim),
            schema_hash: fact("schema-hash", &keys.schema_hash),
            scaler_kind,
            median: fact("median", &keys.median),
            mad: fact("mad", &keys.mad),
            mean: fact("mean", &keys.mean),
            std: fact("std", &keys.std),
            min: fact("min", &keys.min),
            max: fact("max", &keys.max),
            factor: fact("scaler-factor", &keys.scaler_factor),
            epsilon: fact("scaler-epsilon", &keys.scaler_epsilon),
            clip: fact("scaler-clip", &keys.scaler_clip),
            model_version: fact("model-version", &keys.model_version),
            heads_version: fact("heads-version", &keys.heads_version),
            heads: fact("heads", &keys.heads),
            arch: fact("arch", &keys.arch),
            window: fact("window", &keys.window),
        }
    }

    /// The two statistics the scaler's kind stores (centre, spread source); none for identity.
    pub fn stats(&self) -> Option<(&CheckpointFact, &CheckpointFact)> {
        Some(match self.kind {
            Kind::Robust => (&self.median, &self.mad),
            Kind::Standard => (&self.mean, &self.std),
            Kind::MinMax => (&self.min, &self.max),
            Kind::Identity => return None,
        })
    }

    /// Every required fact, in the documented order: the scaler's kind unless the code declares it, and
    /// the statistics of the kind.
    /// A checkpoint's facts as the config asks for them: read at the configured keys, and what the
    /// code does not declare not required of it (there is nothing to compare it with).
    pub fn configured(
        info: &CheckpointInfo,
        cfg: &crate::config::Config,
        code_kind: Option<Kind>,
    ) -> Self {
        let mut f = CheckpointFacts::read(info, &cfg.checkpoints.keys, code_kind);
        f.not_required = [
            (cfg.model.heads_version.is_none(), "heads-version"),
            (cfg.model.heads.is_none(), "heads"),
            (cfg.features.dtypes.is_none(), "feature-dtypes"),
            (cfg.targets.thresholds.is_none(), "thresholds"),
            (cfg.model.window.is_none(), "window"),
        ]
        .into_iter()
        .filter_map(|(absent, field)| absent.then_some(field))
        .collect();
        // The schema hash pins the names and dtypes; a checkpoint that states its feature list (and
        // its dtypes, when the code declares dtypes) is compared fact by fact, and the hash adds nothing.
        if f.feature_cols.value.is_some()
            && (cfg.features.dtypes.is_none() || f.feature_dtypes.value.is_some())
        {
            f.not_required.push("schema-hash");
        }
        f
    }

    /// Whether the checkpoint must state `field` (`heads`): false when the code does not declare it.
    pub fn is_required(&self, field: &str) -> bool {
        !self.not_required.contains(&field)
    }

    pub fn required(&self) -> Vec<&CheckpointFact> {
        let mut out = self.required_all();
        out.retain(|f| !self.not_required.contains(&f.field));
        out
    }

    fn required_all(&self) -> Vec<&CheckpointFact> {
        let mut out = vec![
            &self.feature_cols,
            &self.feature_dtypes,
            &self.input_dim,
            &self.schema_hash,
        ];
        if self.code_kind.is_none() {
            out.push(&self.scaler_kind);
        }
        if let Some((a, b)) = self.stats() {
            out.extend([a, b]);
        }
        out.extend([
            &self.model_version,
            &self.heads_version,
            &self.heads,
            &self.arch,
            &self.window,
        ]);
        out
    }

    pub fn missing(&self) -> Vec<&CheckpointFact> {
        self.required()
            .into_iter()
            .filter(|f| f.value.is_none())
            .collect()
    }
}

/// What a checkpoint lacks, as one sentence: `checkpoints/m.pt has no `scaler.mad` (mad)`, or
/// `checkpoints/m.pt lacks 11 required facts: `feature_cols` (feature-cols), …`.
fn missing_message(display: &str, missing: &[&CheckpointFact]) -> String {
    match missing {
        [one] => format!("{display} has no `{}` ({})", one.key, one.field),
        many => format!(
            "{display} lacks {} required facts: {}",
            many.len(),
            many.iter()
                .map(|m| format!("`{}` ({})", m.key, m.field))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The required facts a checkpoint lacks as one finding of `code`: at the key for one, at the file for
/// several, with where they can be declared.
pub fn missing_finding(
    code: &'static crate::finding::Code,
    display: &str,
    info: &CheckpointInfo,
    missing: &[&CheckpointFact],
) -> Option<crate::finding::Finding> {
    let first = missing.first()?;
    let at = if missing.len() == 1 {
        first.location.clone()
    } else {
        Location::file(display_path(&info.path))
            .with_label(format!("{} required facts", missing.len()))
    };
    Some(
        crate::finding::Finding::new(code, missing_message(display, missing))
            .at(at)
            .help(declare_help(info)),
    )
}

/// Where a checkpoint's missing facts can be declared: the checkpoint, the sidecar files plumbline
/// looked for beside it, or other keys.
fn declare_help(info: &CheckpointInfo) -> String {
    let sidecars = if info.metadata_searched.is_empty() {
        String::new()
    } else {
        format!(
            ", or in a file beside it ({})",
            info.metadata_searched.join(", ")
        )
    };
    format!(
        "write them into the checkpoint from the training script{sidecars}, or point `[checkpoints.keys]` at where they live (docs/checkpoint-metadata.md#metadata-beside-the-checkpoint)"
    )
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

/// A named item of a code fact and where it is written (its list item's line where the source has one).
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub location: Location,
}

/// The code's feature list and dtypes, decoded once when the facts are collected.
#[derive(Debug, Clone)]
pub struct Features {
    pub names: Vec<Named>,
    /// One dtype per feature, or why the dtypes fact cannot give them.
    pub dtypes: std::result::Result<Vec<String>, Unusable>,
}

/// Decode the code's features (names by [`decode_features`], then their dtypes).
fn features(columns: &Fact, dtypes: &Fact) -> std::result::Result<Features, Unusable> {
    let names = decode_features(columns).map_err(|e| Unusable::from_error(e, &columns.origin))?;
    let plain: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
    let dtypes = decode_dtypes(dtypes, &plain).map_err(|e| Unusable::from_error(e, &dtypes.origin));
    Ok(Features { names, dtypes })
}

/// A list of strings stored in a checkpoint (`feature_cols`, `feature_dtypes`); `None` for anything
/// else. The checkpoint's own list is checked against the code's by feature-schema.
pub fn strings(v: &Tree) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// A dtype by torch's short name: `torch.float32` (what `str(tensor.dtype)` writes) is `float32`.
pub fn dtype_name(s: &str) -> &str {
    s.strip_prefix("torch.").unwrap_or(s)
}

/// Feature dtypes plumbline knows (torch's names).
pub const DTYPES: &[&str] = &[
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
];

/// A code fact of the wrong shape: the message, and the value as found (shortened).
pub fn invalid(fact: &Fact, what: &str) -> Error {
    Error::at(
        fact.origin.clone(),
        format!("{what} (got {})", short(&fact.value)),
    )
}

/// A value as messages quote it: its JSON, cut at 80 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The code's feature list by the one rule every consumer reads it with: a non-empty list of non-empty,
/// distinct strings, each with the location of its item. The first violation is an error at its item.
fn decode_features(fact: &Fact) -> Result<Vec<Named>> {
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
        if let Some(j) = names.iter().position(|n: &Named| n.name == name) {
            return Err(Error::at(
                fact.item(i),
                format!("feature `{name}` is listed twice (indices {j} and {i})"),
            ));
        }
        names.push(Named {
            name: name.to_owned(),
            location: fact.item(i),
        });
    }
    if names.is_empty() {
        return Err(invalid(fact, "the feature list is empty"));
    }
    Ok(names)
}

/// Dtypes aligned with `names`, from one dtype string, a list, or a dict name → dtype.
fn decode_dtypes(fact: &Fact, names: &[String]) -> Result<Vec<String>> {
    let check = |d: &str| -> Result<String> {
        let d = dtype_name(d);
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

/// The head map of a code fact: a list of `{name, kind, size | shape}` in output order.
fn decode_heads(fact: &Fact) -> Result<Vec<Head>> {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Targets {
    /// Label horizon in bars.
    pub horizon: u64,
    /// Label thresholds by name.
    pub thresholds: BTreeMap<String, f64>,
}

/// A version is an int or a non-empty string; ints are written as their decimal digits.
pub fn version(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The label horizon and thresholds the code states.
fn decode_targets(c: &CodeFacts) -> Result<Targets> {
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
    Ok(Targets {
        horizon,
        thresholds,
    })
}

/// A version fact (`model.version`, `model.heads-version`): an int or a non-empty string.
fn decode_version(fact: &Fact, what: &str) -> std::result::Result<String, Unusable> {
    version(&fact.value).ok_or_else(|| {
        Unusable::from_error(
            invalid(
                fact,
                &format!("the {what} must be an int or a non-empty string"),
            ),
            &fact.origin,
        )
    })
}

/// The window fact: a positive number of bars, or `null` (rows).
fn decode_window(fact: &Fact) -> std::result::Result<Option<u64>, Unusable> {
    window_value(&fact.value).ok_or_else(|| Unusable {
        message: format!(
            "the model's window must be a positive number of bars, or null for rows (found {})",
            fact.value
        ),
        location: fact.origin.clone(),
    })
}

/// A window value as the code or a checkpoint states it: `Some(None)` for rows (`null`), `Some(Some(n))`
/// for a window of `n` bars (one bar is still a window: the model takes `[batch, 1, features]`), `None`
/// when it is neither.
pub fn window_value(v: &Tree) -> Option<Option<u64>> {
    match v {
        Tree::Null => Some(None),
        v => v.as_u64().filter(|n| *n > 0).map(Some),
    }
}

/// A window as messages say it: `rows`, or `windows of N bars`.
pub fn window_text(w: Option<u64>) -> String {
    match w {
        None => "rows".to_owned(),
        Some(1) => "windows of 1 bar".to_owned(),
        Some(n) => format!("windows of {n} bars"),
    }
}

/// Why a fact cannot be used, and where it is.
#[derive(Debug, Clone)]
pub struct Unusable {
    pub message: String,
    pub location: Location,
}

impl Unusable {
    /// As an error that stops the run (exit 2), at the fact's file and line.
    pub fn error(&self) -> Error {
        Error::at(self.location.clone(), self.message.clone())
    }

    fn from_error(e: Error, fallback: &Location) -> Unusable {
        match e {
            Error::At { location, message } => Unusable { message, location },
            other => Unusable {
                message: other.to_string(),
                location: fallback.clone(),
            },
        }
    }
}

/// Everything `derive` and the gates read, resolved once.
#[derive(Debug, Clone)]
pub struct Facts {
    pub code: CodeFacts,
    pub production: CheckpointInfo,
    pub checkpoint: CheckpointFacts,
    /// The code's features, decoded once: every consumer reads this, never `code.columns` again.
    pub features: std::result::Result<Features, Unusable>,
    /// The code's head map, decoded once (never `code.heads` again).
    pub heads: std::result::Result<Vec<Head>, Unusable>,
    /// The label horizon and thresholds, decoded once.
    pub targets: std::result::Result<Targets, Unusable>,
    /// The checkpoint's `feature_cols` when it follows the rule of every feature list, decoded once.
    pub checkpoint_features: Option<Vec<String>>,
    /// The model and heads versions, decoded once.
    pub model_version: std::result::Result<String, Unusable>,
    pub heads_version: std::result::Result<String, Unusable>,
    /// The model's input window in bars (`None`: rows), decoded once.
    pub window: std::result::Result<Option<u64>, Unusable>,
}

impl Facts {
    /// The code's NaN policy, as the scaler applies it.
    pub fn nan_policy(&self) -> crate::scaler::NanPolicy {
        crate::scaler::NanPolicy::parse(self.code.nan_policy.value.as_str().unwrap_or(""))
    }

    /// The production checkpoint's scaler (its kind's two statistics, one number per model input, and
    /// the factor, epsilon and clip the checkpoint or else the code states), or why it cannot be used.
    /// Gates turn the reason into their own finding; the audit into an error.
    pub fn scaler(&self) -> std::result::Result<crate::scaler::Scaler, Unusable> {
        let ck = &self.checkpoint;
        let n = self
            .model_feature_names()
            .map_err(|e| Unusable::from_error(e, &ck.scaler_kind.location))?
            .len();
        if let Some(kind) = &ck.unknown_kind {
            return Err(Unusable {
                message: format!(
                    "the checkpoint's scaler kind `{kind}` is not one plumbline knows ({}), so no row can be scaled as the pipeline scales it",
                    Kind::KNOWN
                ),
                location: ck.scaler_kind.location.clone(),
            });
        }
        let get = |f: &CheckpointFact| {
            let what = if f.value.is_none() {
                "is not stated".to_owned()
            } else {
                format!("is not a list of {n} numbers")
            };
            f.value
                .as_ref()
                .and_then(crate::scaler::numbers)
                .filter(|v| v.len() == n)
                .ok_or_else(|| Unusable {
                    message: format!(
                        "`{}` {what} (the {} scaler's statistic), so probe rows cannot be scaled",
                        f.key,
                        ck.kind.name()
                    ),
                    location: f.location.clone(),
                })
        };
        let stats = match ck.stats() {
            Some((a, b)) => Some((get(a)?, get(b)?)),
            None => None,
        };
        let mut s = crate::scaler::Scaler::new(ck.kind, stats, n);
        let stated = self.scaler_constants();
        s.factor = stated.factor.unwrap_or(1.0);
        s.epsilon = stated.epsilon.unwrap_or(0.0);
        s.clip = stated.clip;
        Ok(s)
    }

    /// The scaler's constants as stated: each the checkpoint's (or its sidecar's) when it states a valid
    /// one, else the code's (`None` in code: not stated). The contract and the scaling read this.
    pub fn scaler_constants(&self) -> crate::scaler::Constants {
        let (ck, code) = (&self.checkpoint, &self.code.scaler);
        let pick = |f: &CheckpointFact, c: &Option<Fact>, read: fn(&Value) -> Option<f64>| {
            f.value
                .as_ref()
                .and_then(read)
                .or_else(|| c.as_ref().and_then(|c| read(&c.value)))
        };
        crate::scaler::Constants {
            factor: pick(&ck.factor, &code.factor, crate::scaler::factor),
            epsilon: pick(&ck.epsilon, &code.epsilon, crate::scaler::epsilon),
            clip: ck
                .clip
                .value
                .as_ref()
                .and_then(crate::scaler::clip)
                .or_else(|| {
                    code.clip
                        .as_ref()
                        .and_then(|c| crate::scaler::clip(&c.value))
                }),
        }
    }

    /// The code facts read from the production checkpoint itself or a metadata file beside it, with
    /// their config keys: a gate that compares the code with the checkpoint would compare the
    /// checkpoint with itself.
    pub fn self_sourced(&self) -> Vec<(&'static str, &Fact)> {
        let ck = display_path(&self.production.path);
        let beside: Vec<&str> = self
            .production
            .metadata
            .iter()
            .map(|l| l.display.as_str())
            .collect();
        let c = &self.code;
        [
            ("model.version", &c.model_version),
            ("model.heads-version", &c.heads_version),
            ("model.heads", &c.heads),
            ("model.window", &c.window),
            ("features.columns", &c.columns),
            ("features.dtypes", &c.dtypes),
            ("features.nan-policy", &c.nan_policy),
            ("targets.horizon", &c.horizon),
            ("targets.thresholds", &c.thresholds),
        ]
        .into_iter()
        .filter(|(_, f)| f.origin.path == ck || beside.contains(&f.origin.path.as_str()))
        .collect()
    }

    /// The model's input columns: the production checkpoint's `feature_cols` (what the weights were
    /// trained on) when it follows the rule of every feature list (`decode_features`), else the code's
    /// list. The slice is read in this order, so the model gates run the model as trained while
    /// feature-schema reports any mismatch (and a checkpoint list that breaks the rule).
    pub fn model_feature_names(&self) -> Result<Vec<String>> {
        match &self.checkpoint_features {
            Some(names) => Ok(names.clone()),
            None => self.feature_names(),
        }
    }

    /// The code's features (the contract's order), or the error at the list's file and line.
    pub fn features(&self) -> Result<&Features> {
        self.features.as_ref().map_err(Unusable::error)
    }

    /// The code's heads in output order, or the error at the head map's file and line.
    pub fn heads(&self) -> Result<&[Head]> {
        self.heads
            .as_ref()
            .map(Vec::as_slice)
            .map_err(Unusable::error)
    }

    /// The label horizon and thresholds, or the error at their file and line.
    pub fn targets(&self) -> Result<&Targets> {
        self.targets.as_ref().map_err(Unusable::error)
    }

    /// The model version the code states.
    pub fn model_version(&self) -> Result<String> {
        self.model_version.clone().map_err(|u| u.error())
    }

    /// The heads version the code states.
    pub fn heads_version(&self) -> Result<String> {
        self.heads_version.clone().map_err(|u| u.error())
    }

    /// The model's input window in bars, `None` for rows.
    pub fn window(&self) -> Result<Option<u64>> {
        self.window.clone().map_err(|u| u.error())
    }

    /// The code's feature names (the contract's order).
    pub fn feature_names(&self) -> Result<Vec<String>> {
        Ok(self
            .features()?
            .names
            .iter()
            .map(|n| n.name.clone())
            .collect())
    }

    /// One dtype per code feature.
    pub fn feature_dtypes(&self) -> Result<Vec<String>> {
        self.features()?.dtypes.clone().map_err(|u| u.error())
    }
}

/// The `[scaler]` facts the config points at, resolved and checked: a kind plumbline knows, a positive
/// factor, a non-negative epsilon, a clip that is a positive number or `[low, high]`. A value of the
/// wrong shape is an error at its line, like every code fact.
fn code_scaler(r: &mut Resolver, loaded: &Loaded) -> Result<CodeScaler> {
    let s = &loaded.config.scaler;
    let mut get =
        |src: &Option<crate::config::Source>| src.as_ref().map(|s| r.resolve(s)).transpose();
    let out = CodeScaler {
        kind: get(&s.kind)?,
        factor: get(&s.factor)?,
        epsilon: get(&s.epsilon)?,
        clip: get(&s.clip)?,
    };
    // `None` in code (null) means "not stated": no clip, the default factor and epsilon.
    let check = |f: &Option<Fact>, ok: fn(&Value) -> bool, what: &str| match f {
        Some(f) if !f.value.is_null() && !ok(&f.value) => Err(invalid(f, what)),
        _ => Ok(()),
    };
    check(
        &out.factor,
        |v| crate::scaler::factor(v).is_some(),
        "the scaler factor must be a positive number",
    )?;
    check(
        &out.epsilon,
        |v| crate::scaler::epsilon(v).is_some(),
        "the scaler epsilon must be a non-negative number",
    )?;
    check(
        &out.clip,
        |v| crate::scaler::clip(v).is_some(),
        "the scaler clip must be a positive number c (±c) or [low, high]",
    )?;
    decode_kind(&out)?;
    Ok(out)
}

/// The kind the code declares, if it declares one; an unknown name is an error at its line.
fn decode_kind(code: &CodeScaler) -> Result<Option<Kind>> {
    let Some(f) = code.kind.as_ref().filter(|f| !f.value.is_null()) else {
        return Ok(None);
    };
    f.value
        .as_str()
        .and_then(Kind::parse)
        .map(Some)
        .ok_or_else(|| {
            invalid(
                f,
                &format!("the scaler kind must be one of {} (or a spelling docs/checkpoint-metadata.md#scalers lists)", Kind::KNOWN),
            )
        })
}

/// The scaler kind the code declares, resolved alone (for `inventory`, which reads no other code fact).
pub fn code_scaler_kind(loaded: &Loaded) -> Result<Option<Kind>> {
    let mut r = Resolver::new(loaded, None);
    let kind = match &loaded.config.scaler.kind {
        Some(src) => Some(r.resolve(src)?),
        None => None,
    };
    decode_kind(&CodeScaler {
        kind,
        ..CodeScaler::default()
    })
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
    let mut r = Resolver::new(loaded, Some(&production));
    let code = CodeFacts {
        scaler: code_scaler(&mut r, loaded)?,
        model_version: r.resolve(&cfg.model.version)?,
        heads_version: r.resolve_or(&cfg.model.heads_version, Unconfigured::HEADS_VERSION)?,
        heads: r.resolve_or(&cfg.model.heads, Unconfigured::HEADS)?,
        window: r.resolve_or(&cfg.model.window, Unconfigured::WINDOW)?,
        columns: r.resolve(&cfg.features.columns)?,
        dtypes: r.resolve_or(&cfg.features.dtypes, Unconfigured::DTYPES)?,
        nan_policy: r.resolve_or(&cfg.features.nan_policy, Unconfigured::NAN_POLICY)?,
        horizon: r.resolve(&cfg.targets.horizon)?,
        thresholds: r.resolve_or(&cfg.targets.thresholds, Unconfigured::THRESHOLDS)?,
    };
    drop(r);
    let checkpoint = CheckpointFacts::configured(&production, cfg, decode_kind(&code.scaler)?);
    Ok(Facts {
        features: features(&code.columns, &code.dtypes),
        heads: decode_heads(&code.heads).map_err(|e| Unusable::from_error(e, &code.heads.origin)),
        targets: decode_targets(&code).map_err(|e| Unusable::from_error(e, &code.horizon.origin)),
        checkpoint_features: checkpoint.feature_cols.value.as_ref().and_then(|v| {
            decode_features(&Fact::new(
                v.clone(),
                checkpoint.feature_cols.location.clone(),
            ))
            .ok()
            .map(|names| names.into_iter().map(|n| n.name).collect())
        }),
        model_version: decode_version(&code.model_version, "model version"),
        heads_version: decode_version(&code.heads_version, "heads version"),
        window: decode_window(&code.window),
        code,
        production,
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fact(v: serde_json::Value) -> Fact {
        Fact::new(v, Location::at("m.py", 7))
    }

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn errors_quote_long_values_shortened() {
        let long = "x".repeat(200);
        let e = err(decode_features(&fact(json!(long))));
        assert!(e.contains(&format!("(got \"{}…)", "x".repeat(79))), "{e}");
        let e = err(decode_features(&fact(json!("short"))));
        assert!(e.ends_with("(got \"short\")"), "{e}");
    }

    #[test]
    fn dtypes_as_one_string_a_list_or_a_dict() {
        let names: Vec<String> = vec!["a".into(), "b".into()];
        assert_eq!(
            decode_dtypes(&fact(json!("float32")), &names).unwrap(),
            ["float32", "float32"]
        );
        assert_eq!(
            decode_dtypes(&fact(json!(["float32", "int64"])), &names).unwrap(),
            ["float32", "int64"]
        );
        assert_eq!(
            decode_dtypes(&fact(json!({"b": "int64", "a": "float64"})), &names).unwrap(),
            ["float64", "int64"]
        );
        assert!(
            err(decode_dtypes(&fact(json!(["float32"])), &names)).contains("a list of 2 dtypes")
        );
        assert!(
            err(decode_dtypes(&fact(json!({"a": "float32"})), &names))
                .contains("no dtype for feature `b`")
        );
        assert!(
            err(decode_dtypes(
                &fact(json!({"a": "float32", "b": "float32", "c": "float32"})),
                &names
            ))
            .contains("`c`, which is not a feature")
        );
        assert!(
            err(decode_dtypes(&fact(json!("float128")), &names))
                .starts_with("m.py:7: unknown dtype `float128`")
        );
    }

    #[test]
    fn heads_take_size_or_shape() {
        let h = decode_heads(&fact(json!([{"name": "d", "kind": "softmax", "size": 3}, {"name": "m", "kind": "regression", "shape": [1, 2]}]))).unwrap();
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
            assert!(err(decode_heads(&fact(bad))).contains("head `d` needs `size`"));
        }
        assert!(
            err(decode_heads(&fact(json!([{"kind": "k", "size": 1}]))))
                .contains("head 0 has no `name`")
        );
        assert!(
            err(decode_heads(&fact(json!([{"name": "d", "size": 1}]))))
                .contains("head `d` has no `kind`")
        );
        assert!(err(decode_heads(&fact(json!([{"name": "d", "kind": "k", "size": 1}, {"name": "d", "kind": "k", "size": 1}])))).contains("listed twice"));
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
}
