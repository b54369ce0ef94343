//! # feature-schema (plan script 02_feature_schema_alignment)
//!
//! **What it does.** Aligns the feature vector across its sources: the code's ordered feature list and
//! dtypes against the production checkpoint's `feature_cols` and `feature_dtypes` (order-sensitive: the
//! first differing index is reported with both locations); `input_dim` against the feature count and the
//! first layer's weight shape (the first layer is named by the checkpoint's `arch`, never guessed from
//! dict order); the schema hash stored in the checkpoint against the one derived from the code. Every
//! required checkpoint fact that is missing is a finding naming the key and the file.
//!
//! **Why is this bad?** A model fed columns in a different order than it was trained on runs, produces
//! numbers, and trades on noise. Nothing crashes: the only symptom is money lost.
//!
//! **Example.** The code lists `["ret_1", "ret_5", "vol_20"]`, the checkpoint was trained on
//! `["ret_1", "vol_20", "ret_5"]`: `feature-order-mismatch` at index 1, pointing at the code line of
//! `"ret_5"` and the checkpoint key `feature_cols`.

use serde_json::Value;

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::checkpoint::TensorInfo;
use crate::contract;
use crate::error::Result;
use crate::facts::{CheckpointFact, CheckpointFacts, CodeFacts, Facts, Named};
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::source::Fact;

const fn code(id: &'static str, contract: ContractKind, summary: &'static str) -> Code {
    Code {
        id,
        gate: "feature-schema",
        contract,
        severity: Severity::Error,
        summary,
    }
}

pub const CHECKPOINT_MISSING_FACT: Code = code(
    "checkpoint-missing-fact",
    ContractKind::Checkpoint,
    "a required metadata key is missing from the production checkpoint",
);
pub const CHECKPOINT_FACT_INVALID: Code = code(
    "checkpoint-fact-invalid",
    ContractKind::Checkpoint,
    "a checkpoint metadata value has the wrong type or shape",
);
pub const FEATURE_SET_MISMATCH: Code = code(
    "feature-set-mismatch",
    ContractKind::FeatureVector,
    "code and checkpoint list different features",
);
pub const FEATURE_ORDER_MISMATCH: Code = code(
    "feature-order-mismatch",
    ContractKind::FeatureVector,
    "code and checkpoint list the same features in a different order",
);
pub const FEATURE_DTYPE_MISMATCH: Code = code(
    "feature-dtype-mismatch",
    ContractKind::FeatureVector,
    "a feature's dtype differs between code and checkpoint",
);
pub const INPUT_DIM_MISMATCH: Code = code(
    "input-dim-mismatch",
    ContractKind::Checkpoint,
    "the checkpoint's input_dim differs from the number of features",
);
pub const FIRST_LAYER_MISMATCH: Code = code(
    "first-layer-shape-mismatch",
    ContractKind::Checkpoint,
    "the first layer's weight does not take input_dim inputs",
);
pub const FIRST_LAYER_MISSING: Code = code(
    "first-layer-missing",
    ContractKind::Checkpoint,
    "the first layer named by `arch` has no weight tensor in the checkpoint",
);
pub const WINDOW_MISMATCH: Code = code(
    "window-mismatch",
    ContractKind::Checkpoint,
    "the checkpoint was trained on another input window than the code declares",
);
pub const SCHEMA_HASH_MISMATCH: Code = code(
    "schema-hash-mismatch",
    ContractKind::FeatureVector,
    "the schema hash stored in the checkpoint differs from the one derived from code",
);

pub const FACT_FROM_CHECKPOINT: Code = Code {
    severity: Severity::Warning,
    ..code(
        "fact-from-checkpoint",
        ContractKind::Checkpoint,
        "a code fact is read from the production checkpoint (or its metadata), so it is compared with itself",
    )
};

pub const GATE: Gate = Gate {
    id: Id::FeatureSchema,
    name: "feature-schema",
    plan_script: Some("02_feature_schema_alignment"),
    codes: &[
        CHECKPOINT_MISSING_FACT,
        CHECKPOINT_FACT_INVALID,
        FEATURE_SET_MISMATCH,
        FEATURE_ORDER_MISMATCH,
        FEATURE_DTYPE_MISMATCH,
        INPUT_DIM_MISMATCH,
        FIRST_LAYER_MISMATCH,
        FIRST_LAYER_MISSING,
        SCHEMA_HASH_MISMATCH,
        WINDOW_MISMATCH,
        FACT_FROM_CHECKPOINT,
    ],
    needs: Needs::NOTHING,
    parts: Parts::Whole,
    profiles: &[Profile::PostTrain, Profile::PreBacktest, Profile::PreLive],
    run,
};

/// A code fact read from the production checkpoint (or a file beside it), at its key in the config
/// (`config_text`: the config's text, when it could be read).
fn from_checkpoint(cx: &Context, config_text: Option<&str>, key: &str, fact: &Fact) -> Finding {
    let config = crate::paths::display_path(&cx.loaded.path);
    let at = config_text
        .and_then(|text| crate::keypath::toml_key(&config, text, key).ok())
        .map_or_else(
            || crate::finding::Location::file(&config).with_label(key.to_owned()),
            |f| f.location,
        );
    Finding::new(
        &FACT_FROM_CHECKPOINT,
        format!(
            "`{key}` is read from {}, the checkpoint it is checked against: the gates compare the checkpoint with itself",
            fact.origin.path
        ),
    )
    .at(at)
    .related(fact.origin.clone())
    .help("point it at the code or config that defines the value (a Python constant, a YAML or TOML key), never at the checkpoint")
}

/// A checkpoint value of the wrong type or shape (`what`: what it must be).
fn invalid(f: &CheckpointFact, what: &str) -> Finding {
    Finding::new(
        &CHECKPOINT_FACT_INVALID,
        format!("checkpoint key `{}` {what}", f.key),
    )
    .at(f.location.clone())
}

/// The checkpoint names some features more than once.
fn listed_twice(twice: &[&String], feature_cols: &CheckpointFact, code: &CodeFacts) -> Finding {
    Finding::new(
        &FEATURE_SET_MISMATCH,
        format!("the checkpoint lists {} more than once", quoted(twice)),
    )
    .at(feature_cols.location.clone())
    .related(code.columns.origin.clone())
    .help("a feature list names each column once; retrain with the code's list")
}

/// The code and the checkpoint list different features (`at`: the code's first feature the checkpoint
/// lacks).
fn set_mismatch(
    at: &Named,
    feature_cols: &CheckpointFact,
    missing: &[&String],
    extra: &[&String],
) -> Finding {
    let mut f = Finding::new(
        &FEATURE_SET_MISMATCH,
        "the code and the production checkpoint list different features",
    )
    .at(at.location.clone())
    .related(feature_cols.location.clone())
    .help("retrain on the code's feature list, or restore the list the checkpoint was trained on");
    if !missing.is_empty() {
        f = f.note(format!(
            "in the code, not in the checkpoint: {}",
            quoted(missing)
        ));
    }
    if !extra.is_empty() {
        f = f.note(format!(
            "in the checkpoint, not in the code: {}",
            quoted(extra)
        ));
    }
    f
}

/// The checkpoint lists the code's features in another order, first at index `i`.
fn order_mismatch(
    i: usize,
    code: &CodeFeatures,
    ck_names: &[String],
    feature_cols: &CheckpointFact,
) -> Finding {
    let names = &code.names;
    let moved = names.iter().zip(ck_names).filter(|(a, b)| a != b).count();
    Finding::new(
        &FEATURE_ORDER_MISMATCH,
        format!(
            "the checkpoint has `{}` at index {i} where the code has `{}`",
            ck_names[i], names[i]
        ),
    )
    .at(code.named[i].location.clone().with_label(format!("index {i}")))
    .related(feature_cols.item(i))
    .help("emit features in the order the model was trained on; build rows by name, never by position")
    .note(format!("{moved} of {} positions differ", names.len()))
}

/// Feature `feature` has dtype `ours` in the code and `theirs` in the checkpoint.
fn dtype_mismatch(
    feature: &Named,
    ours: &str,
    theirs: &str,
    code: &CodeFacts,
    feature_dtypes: &CheckpointFact,
) -> Finding {
    Finding::new(
        &FEATURE_DTYPE_MISMATCH,
        format!(
            "feature `{}` is {ours} in the code and {theirs} in the checkpoint",
            feature.name
        ),
    )
    .at(code.dtypes.origin.clone())
    .related(feature.location.clone())
    .related(feature_dtypes.location.clone())
    .help("cast features to the dtype the model was trained with, or retrain")
}

/// The checkpoint's `input_dim` is `dim`, the code lists `features` features.
fn input_dim_mismatch(
    dim: u64,
    features: usize,
    input_dim: &CheckpointFact,
    code: &CodeFacts,
) -> Finding {
    Finding::new(
        &INPUT_DIM_MISMATCH,
        format!("input_dim is {dim}, the code lists {features} features"),
    )
    .at(input_dim.location.clone())
    .related(code.columns.origin.clone())
    .help("input_dim must equal len(FEATURE_COLS) at training time")
}

/// `arch` names `layer` first, but the checkpoint has no tensor `weight`.
fn first_layer_missing(layer: &str, weight: &str, arch: &CheckpointFact) -> Finding {
    Finding::new(
        &FIRST_LAYER_MISSING,
        format!("`arch`'s first layer is `{layer}`, but the checkpoint has no tensor `{weight}`"),
    )
    .at(arch.location.clone())
}

/// The first layer's weight `t` does not take `features` inputs (nor `input_dim`), each of `bars`
/// bars when a Flatten puts a window's bars side by side before it.
fn first_layer_mismatch(
    t: &TensorInfo,
    (features, bars): (usize, u64),
    input_dim: Option<u64>,
    arch: &CheckpointFact,
    code: &CodeFacts,
) -> Finding {
    let takes = if bars > 1 {
        format!(
            "{} inputs ({bars} bars × {features})",
            bars * features as u64
        )
    } else {
        format!("{features} inputs")
    };
    Finding::new(
        &FIRST_LAYER_MISMATCH,
        format!(
            "first layer `{}` has shape {:?}; it must take {takes} (input_dim {}, {} features)",
            t.name,
            t.shape,
            input_dim
                .map(|d| d.to_string())
                .unwrap_or_else(|| "missing".into()),
            features
        ),
    )
    .at(arch
        .location
        .clone()
        .with_label(format!("tensor `{}`", t.name)))
    .related(code.columns.origin.clone())
}

/// The checkpoint stores schema hash `stored`, the code derives `derived`.
fn schema_hash_mismatch(
    stored: &str,
    derived: &str,
    schema_hash: &CheckpointFact,
    code: &CodeFacts,
) -> Finding {
    Finding::new(
        &SCHEMA_HASH_MISMATCH,
        format!("the checkpoint stores schema hash {stored}, the code derives {derived}"),
    )
    .at(code.columns.origin.clone())
    .related(schema_hash.location.clone())
    .help("the hash covers names, order and dtypes (docs/checkpoint-metadata.md has the recipe); retrain or restore the feature list")
}

/// The `name` builder declares features the code lacks, or lacks some of the code's.
fn builder_set_mismatch(
    name: &str,
    declared: &Fact,
    code: &CodeFacts,
    missing: &[&String],
    extra: &[&String],
) -> Finding {
    let mut f = Finding::new(
        &FEATURE_SET_MISMATCH,
        format!("the {name} builder declares other features than the code"),
    )
    .at(declared.origin.clone())
    .related(code.columns.origin.clone())
    .help("every builder must produce exactly the contract's features");
    if !missing.is_empty() {
        f = f.note(format!("not in the {name} builder: {}", quoted(missing)));
    }
    if !extra.is_empty() {
        f = f.note(format!("only in the {name} builder: {}", quoted(extra)));
    }
    f
}

/// The `name` builder declares the code's features in another order, first at index `i`.
fn builder_order_mismatch(
    name: &str,
    i: usize,
    columns: &[String],
    fact: &Fact,
    code: &CodeFeatures,
) -> Finding {
    Finding::new(
        &FEATURE_ORDER_MISMATCH,
        format!(
            "the {name} builder declares `{}` at index {i} where the code has `{}`",
            columns[i], code.names[i]
        ),
    )
    .at(fact.item(i).with_label(format!("index {i}")))
    .related(code.named[i].location.clone())
    .help("emit features in the contract's order; build rows by name, never by position")
}

/// The code's features, as every step compares them.
struct CodeFeatures<'a> {
    facts: &'a CodeFacts,
    /// Names in the contract's order.
    names: Vec<String>,
    /// One dtype per feature.
    dtypes: Vec<String>,
    /// Each feature with its list item's line.
    named: &'a [Named],
}

impl<'a> CodeFeatures<'a> {
    /// The code's names, dtypes and their lines (an error when the code's list cannot be decoded).
    fn of(facts: &'a Facts) -> Result<Self> {
        let names = facts.feature_names()?;
        let dtypes = facts.feature_dtypes()?;
        Ok(CodeFeatures {
            facts: &facts.code,
            names,
            dtypes,
            named: &facts.features()?.names,
        })
    }

    /// The schema hash the code derives (names, order and dtypes).
    fn schema_hash(&self) -> String {
        contract::schema_hash(
            self.names
                .iter()
                .map(String::as_str)
                .zip(self.dtypes.iter().map(String::as_str)),
        )
    }
}

pub fn run(cx: &Context) -> Result<Report> {
    let facts = cx.facts;
    let ck = &facts.checkpoint;
    // The finding's location names the file.
    let mut out: Vec<Finding> = crate::facts::missing_finding(
        &CHECKPOINT_MISSING_FACT,
        "the production checkpoint",
        &facts.production,
        &ck.missing(),
    )
    .into_iter()
    .collect();
    for (f, what) in contract::invalid_checkpoint_facts(ck) {
        out.push(invalid(f, what));
    }
    let self_sourced = facts.self_sourced();
    if !self_sourced.is_empty() {
        let text = cx.loaded.read_to_string(&cx.loaded.path).ok();
        for (key, fact) in self_sourced {
            out.push(from_checkpoint(cx, text.as_deref(), key, fact));
        }
    }
    let code = CodeFeatures::of(facts)?;
    let derived_hash = code.schema_hash();
    let ck_names = checkpoint_names(&ck.feature_cols, &mut out);
    if let Some(ck_names) = &ck_names {
        out.extend(compare_lists(&code, ck_names, ck));
        // Dtypes the code does not declare (float32 by default) are not compared with the checkpoint's.
        if cx.loaded.config.features.dtypes.is_some() {
            out.extend(compare_dtypes(&code, ck_names, ck));
        }
    }
    let input_dim = ck.input_dim.value.as_ref().and_then(Value::as_u64);
    if let Some(dim) = input_dim
        && dim != code.names.len() as u64
    {
        out.push(input_dim_mismatch(
            dim,
            code.names.len(),
            &ck.input_dim,
            code.facts,
        ));
    }
    out.extend(compare_first_layer(cx, &code, input_dim));
    out.extend(compare_window(cx)?);
    if let Some(stored) = ck.schema_hash.value.as_ref().and_then(Value::as_str)
        && cx.loaded.config.features.dtypes.is_some()
        && stored != derived_hash
    {
        out.push(schema_hash_mismatch(
            stored,
            &derived_hash,
            &ck.schema_hash,
            code.facts,
        ));
    }
    out.extend(compare_builders(cx, &code)?);
    Ok(Report {
        findings: out,
        summary: format!(
            "{} features · {}",
            code.names.len(),
            short_hash(&derived_hash)
        ),
        skipped: None,
    })
}

/// The code's window against the checkpoint's, when either states one.
fn compare_window(cx: &Context) -> Result<Option<Finding>> {
    let code = cx.facts.window()?;
    let ck = &cx.facts.checkpoint.window;
    let Some(v) = ck.value.as_ref() else {
        // A window the code declares and the checkpoint does not state is a missing fact.
        return Ok(None);
    };
    let Some(stated) = crate::facts::window_value(v) else {
        return Ok(Some(invalid(
            ck,
            "must be a positive number of bars, or null for rows",
        )));
    };
    if stated == code {
        return Ok(None);
    }
    let says = crate::facts::window_text;
    Ok(Some(
        Finding::new(
            &WINDOW_MISMATCH,
            format!(
                "the checkpoint was trained on {}, the code declares {}",
                says(stated),
                says(code)
            ),
        )
        .at(ck.location.clone())
        .related(cx.facts.code.window.origin.clone())
        .help("the window is part of the model's input: retrain on the code's window, or declare the one the model was trained on (`[model] window`)"),
    ))
}

/// The checkpoint's feature names; `None` without a `feature_cols`, or (with a finding) when it is not a
/// list of strings.
fn checkpoint_names(feature_cols: &CheckpointFact, out: &mut Vec<Finding>) -> Option<Vec<String>> {
    let names = crate::facts::strings(feature_cols.value.as_ref()?);
    if names.is_none() {
        out.push(invalid(feature_cols, "must be a list of strings"));
    }
    names
}

/// The first difference between the code's and the checkpoint's lists: a name the checkpoint repeats,
/// names on one side only, or the first index where the order differs.
fn compare_lists(
    code: &CodeFeatures,
    ck_names: &[String],
    ck: &CheckpointFacts,
) -> Option<Finding> {
    let names = &code.names;
    let twice: Vec<&String> = ck_names
        .iter()
        .enumerate()
        .filter(|(i, n)| ck_names[..*i].contains(n))
        .map(|(_, n)| n)
        .collect();
    if !twice.is_empty() {
        return Some(listed_twice(&twice, &ck.feature_cols, code.facts));
    }
    let missing = not_in(names, ck_names);
    let extra = not_in(ck_names, names);
    if !missing.is_empty() || !extra.is_empty() {
        let first = missing
            .first()
            .and_then(|m| names.iter().position(|n| n == *m))
            .unwrap_or(0);
        return Some(set_mismatch(
            &code.named[first],
            &ck.feature_cols,
            &missing,
            &extra,
        ));
    }
    let i = first_difference(names, ck_names)?;
    Some(order_mismatch(i, code, ck_names, &ck.feature_cols))
}

/// The first feature both lists name whose dtype differs, or a finding when the checkpoint's
/// `feature_dtypes` is neither one dtype nor a list aligned with `feature_cols`.
fn compare_dtypes(
    code: &CodeFeatures,
    ck_names: &[String],
    ck: &CheckpointFacts,
) -> Option<Finding> {
    let v = ck.feature_dtypes.value.as_ref()?;
    let ck_dtypes: Option<Vec<String>> = match v {
        Value::String(s) => Some(ck_names.iter().map(|_| s.clone()).collect()),
        other => crate::facts::strings(other).filter(|d| d.len() == ck_names.len()),
    }
    .map(|d| {
        d.iter()
            .map(|s| crate::facts::dtype_name(s).to_owned())
            .collect()
    });
    let Some(ck_dtypes) = ck_dtypes else {
        return Some(invalid(
            &ck.feature_dtypes,
            "must be one dtype or a list aligned with feature_cols",
        ));
    };
    let differ: Vec<(usize, usize)> = code
        .names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let j = ck_names.iter().position(|n| n == name)?;
            (ck_dtypes[j] != code.dtypes[i]).then_some((i, j))
        })
        .collect();
    let &(i, j) = differ.first()?;
    Some(
        dtype_mismatch(
            &code.named[i],
            &code.dtypes[i],
            &ck_dtypes[j],
            code.facts,
            &ck.feature_dtypes,
        )
        .note(format!(
            "{} of {} features differ",
            differ.len(),
            code.names.len()
        )),
    )
}

/// The first layer `arch` names against the features: a finding when `arch` names no layer, the layer
/// has no weight, or the weight does not take the feature count and `input_dim` inputs.
fn compare_first_layer(
    cx: &Context,
    code: &CodeFeatures,
    input_dim: Option<u64>,
) -> Option<Finding> {
    let arch = &cx.facts.checkpoint.arch;
    let first = crate::engine::arch::first_weight(arch.value.as_ref()?);
    let Some(weight) = first else {
        // A layer list without a Linear (norm layers only) has no first weight to compare.
        if arch
            .value
            .as_ref()
            .and_then(|a| a.get("layers"))
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().all(Value::is_object) && !l.is_empty())
        {
            return None;
        }
        return Some(invalid(
            arch,
            "must name its layers in order (`arch.layers`: the layer list, or the first format's module names)",
        ));
    };
    let sd = &cx.loaded.config.checkpoints.keys.state_dict;
    let layer = weight.rsplit_once('.').map_or(weight.as_str(), |(m, _)| m);
    let Some(t) = cx.facts.production.weight(sd, &weight) else {
        return Some(first_layer_missing(layer, &weight, arch));
    };
    // nn.Linear weights are [out, in]: `in` must be the feature count and input_dim, times the
    // window's bars when a Flatten comes first.
    let bars = if crate::engine::arch::flattens_first(arch.value.as_ref()?) {
        cx.facts.window().ok().flatten().unwrap_or(1)
    } else {
        1
    };
    let fan_in = (t.shape.len() == 2).then(|| t.shape[1]);
    let n = code.names.len();
    let takes_features =
        fan_in == Some(n as u64 * bars) && input_dim.is_none_or(|d| fan_in == Some(d * bars));
    (!takes_features).then(|| first_layer_mismatch(t, (n, bars), input_dim, arch, code.facts))
}

/// Each builder's declared column list (`columns` in `[builders]`) against the contract.
fn compare_builders(cx: &Context, code: &CodeFeatures) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for (name, spec) in crate::builders::builders(cx.loaded) {
        let Some((declared, fact)) = crate::builders::declared_columns(cx.loaded, spec)? else {
            continue;
        };
        let missing = not_in(&code.names, &declared);
        let extra = not_in(&declared, &code.names);
        if !missing.is_empty() || !extra.is_empty() {
            out.push(builder_set_mismatch(
                name, &fact, code.facts, &missing, &extra,
            ));
        } else if let Some(i) = first_difference(&code.names, &declared) {
            out.push(builder_order_mismatch(name, i, &declared, &fact, code));
        }
    }
    Ok(out)
}

/// The names of `a` that `b` lacks, in `a`'s order.
fn not_in<'a>(a: &'a [String], b: &[String]) -> Vec<&'a String> {
    a.iter().filter(|n| !b.contains(n)).collect()
}

/// The first index where two lists differ (within the shorter one).
fn first_difference(a: &[String], b: &[String]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Names as messages list them: `` `a`, `b` ``.
fn quoted(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A schema hash as the summary shows it: `sha256:abcd…ef`.
fn short_hash(hash: &str) -> String {
    hash.strip_prefix("sha256:")
        .map(|h| format!("sha256:{}…{}", &h[..4], &h[h.len() - 2..]))
        .unwrap_or_default()
}
