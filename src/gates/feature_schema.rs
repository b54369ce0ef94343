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

use super::{Context, Gate, Id, Needs, Profile, Report};
use crate::contract;
use crate::error::Result;
use crate::facts::CheckpointFact;
use crate::finding::{Code, ContractKind, Finding, Severity};

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
pub const SCHEMA_HASH_MISMATCH: Code = code(
    "schema-hash-mismatch",
    ContractKind::FeatureVector,
    "the schema hash stored in the checkpoint differs from the one derived from code",
);

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
    ],
    needs: Needs {
        engine: false,
        slice: false,
        base: false,
    },
    profiles: &[Profile::PostTrain, Profile::PreBacktest, Profile::PreLive],
    run,
};

fn invalid(f: &CheckpointFact, what: &str) -> Finding {
    Finding::new(
        &CHECKPOINT_FACT_INVALID,
        format!("checkpoint key `{}` {what}", f.key),
    )
    .at(f.location.clone())
}

pub fn run(cx: &Context) -> Result<Report> {
    let facts = cx.facts;
    let code = &facts.code;
    let ck = &facts.checkpoint;
    let mut out = Vec::new();
    let help_meta = "write it from the training script (docs/checkpoint-metadata.md lists every key), or point `[checkpoints.keys]` at where it lives";
    for m in ck.missing() {
        out.push(
            Finding::new(
                &CHECKPOINT_MISSING_FACT,
                format!("the production checkpoint has no `{}` ({})", m.key, m.field),
            )
            .at(m.location.clone())
            .help(help_meta),
        );
    }

    for (f, what) in contract::invalid_checkpoint_facts(ck) {
        out.push(invalid(f, what));
    }

    let names = facts.feature_names()?;
    // Where each of the code's features is written (its list item's line).
    let at = |i: usize| facts.features().map(|f| f.names[i].location.clone());
    let dtypes = facts.feature_dtypes()?;
    let derived_hash = contract::schema_hash(
        names
            .iter()
            .map(String::as_str)
            .zip(dtypes.iter().map(String::as_str)),
    );
    let ck_names = match &ck.feature_cols.value {
        Some(v) => match crate::facts::strings(v) {
            Some(n) => Some(n),
            None => {
                out.push(invalid(&ck.feature_cols, "must be a list of strings"));
                None
            }
        },
        None => None,
    };

    if let Some(ck_names) = &ck_names {
        let missing: Vec<&String> = names.iter().filter(|n| !ck_names.contains(n)).collect();
        let extra: Vec<&String> = ck_names.iter().filter(|n| !names.contains(n)).collect();
        let twice: Vec<&String> = ck_names
            .iter()
            .enumerate()
            .filter(|(i, n)| ck_names[..*i].contains(n))
            .map(|(_, n)| n)
            .collect();
        if !twice.is_empty() {
            let list: Vec<String> = twice.iter().map(|s| format!("`{s}`")).collect();
            out.push(
                Finding::new(
                    &FEATURE_SET_MISMATCH,
                    format!("the checkpoint lists {} more than once", list.join(", ")),
                )
                .at(ck.feature_cols.location.clone())
                .related(code.columns.origin.clone())
                .help("a feature list names each column once; retrain with the code's list"),
            );
        } else if !missing.is_empty() || !extra.is_empty() {
            let first = missing
                .first()
                .and_then(|m| names.iter().position(|n| n == *m))
                .unwrap_or(0);
            let list = |v: &[&String]| {
                v.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut f = Finding::new(&FEATURE_SET_MISMATCH, "the code and the production checkpoint list different features")
                .at(at(first)?)
                .related(ck.feature_cols.location.clone())
                .help("retrain on the code's feature list, or restore the list the checkpoint was trained on");
            if !missing.is_empty() {
                f = f.note(format!(
                    "in the code, not in the checkpoint: {}",
                    list(&missing)
                ));
            }
            if !extra.is_empty() {
                f = f.note(format!(
                    "in the checkpoint, not in the code: {}",
                    list(&extra)
                ));
            }
            out.push(f);
        } else if let Some(i) = names.iter().zip(ck_names).position(|(a, b)| a != b) {
            let moved = names.iter().zip(ck_names).filter(|(a, b)| a != b).count();
            out.push(
                Finding::new(
                    &FEATURE_ORDER_MISMATCH,
                    format!("the checkpoint has `{}` at index {i} where the code has `{}`", ck_names[i], names[i]),
                )
                .at(at(i)?.with_label(format!("index {i}")))
                .related(ck.feature_cols.location.clone())
                .help("emit features in the order the model was trained on; build rows by name, never by position")
                .note(format!("{moved} of {} positions differ", names.len())),
            );
        }
    }

    if let (Some(ck_names), Some(v)) = (&ck_names, &ck.feature_dtypes.value) {
        let ck_dtypes: Option<Vec<String>> = match v {
            Value::String(s) => Some(ck_names.iter().map(|_| s.clone()).collect()),
            other => crate::facts::strings(other).filter(|d| d.len() == ck_names.len()),
        };
        match ck_dtypes {
            None => out.push(invalid(
                &ck.feature_dtypes,
                "must be one dtype or a list aligned with feature_cols",
            )),
            Some(ck_dtypes) => {
                for (i, name) in names.iter().enumerate() {
                    let Some(j) = ck_names.iter().position(|n| n == name) else {
                        continue;
                    };
                    if ck_dtypes[j] != dtypes[i] {
                        out.push(
                            Finding::new(
                                &FEATURE_DTYPE_MISMATCH,
                                format!(
                                    "feature `{name}` is {} in the code and {} in the checkpoint",
                                    dtypes[i], ck_dtypes[j]
                                ),
                            )
                            .at(code.dtypes.origin.clone())
                            .related(at(i)?)
                            .related(ck.feature_dtypes.location.clone())
                            .help(
                                "cast features to the dtype the model was trained with, or retrain",
                            ),
                        );
                        break;
                    }
                }
            }
        }
    }

    let input_dim = ck.input_dim.value.as_ref().and_then(Value::as_u64);
    if let Some(dim) = input_dim
        && dim != names.len() as u64
    {
        out.push(
            Finding::new(
                &INPUT_DIM_MISMATCH,
                format!(
                    "input_dim is {dim}, the code lists {} features",
                    names.len()
                ),
            )
            .at(ck.input_dim.location.clone())
            .related(code.columns.origin.clone())
            .help("input_dim must equal len(FEATURE_COLS) at training time"),
        );
    }

    if let Some(arch) = &ck.arch.value {
        let first = arch
            .get("layers")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .and_then(Value::as_str);
        match first {
            None => out.push(invalid(
                &ck.arch,
                "must name its layers in order (`arch.layers`, a list of module names)",
            )),
            Some(layer) => {
                let sd = &cx.loaded.config.checkpoints.keys.state_dict;
                let weight = format!("{layer}.weight");
                match facts.production.weight(sd, &weight) {
                    None => out.push(
                        Finding::new(&FIRST_LAYER_MISSING, format!("`arch.layers[0]` is `{layer}`, but the checkpoint has no tensor `{weight}`"))
                            .at(ck.arch.location.clone()),
                    ),
                    Some(t) => {
                        // nn.Linear weights are [out, in]: `in` must be the feature count and input_dim.
                        let fan_in = (t.shape.len() == 2).then(|| t.shape[1]);
                        let takes_features = fan_in == Some(names.len() as u64) && input_dim.is_none_or(|d| fan_in == Some(d));
                        if !takes_features {
                            out.push(
                                Finding::new(
                                    &FIRST_LAYER_MISMATCH,
                                    format!(
                                        "first layer `{}` has shape {:?}; it must take {} inputs (input_dim {}, {} features)",
                                        t.name,
                                        t.shape,
                                        names.len(),
                                        input_dim.map(|d| d.to_string()).unwrap_or_else(|| "missing".into()),
                                        names.len()
                                    ),
                                )
                                .at(ck.arch.location.clone().with_label(format!("tensor `{}`", t.name)))
                                .related(code.columns.origin.clone()),
                            );
                        }
                    }
                }
            }
        }
    }

    if let Some(v) = &ck.schema_hash.value {
        match v.as_str() {
            Some(stored) if stored != derived_hash => out.push(
                Finding::new(&SCHEMA_HASH_MISMATCH, format!("the checkpoint stores schema hash {stored}, the code derives {derived_hash}"))
                    .at(code.columns.origin.clone())
                    .related(ck.schema_hash.location.clone())
                    .help("the hash covers names, order and dtypes (docs/checkpoint-metadata.md has the recipe); retrain or restore the feature list"),
            ),
            _ => {}
        }
    }

    // Each builder's declared column list (`columns` in `[builders]`) against the contract.
    for (name, spec) in crate::builders::builders(cx.loaded) {
        let Some((declared, fact)) = crate::builders::declared_columns(cx.loaded, spec)? else {
            continue;
        };
        let missing: Vec<&String> = names.iter().filter(|n| !declared.contains(n)).collect();
        let extra: Vec<&String> = declared.iter().filter(|n| !names.contains(n)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            let list = |v: &[&String]| {
                v.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut f = Finding::new(
                &FEATURE_SET_MISMATCH,
                format!("the {name} builder declares other features than the code"),
            )
            .at(fact.origin.clone())
            .related(code.columns.origin.clone())
            .help("every builder must produce exactly the contract's features");
            if !missing.is_empty() {
                f = f.note(format!("not in the {name} builder: {}", list(&missing)));
            }
            if !extra.is_empty() {
                f = f.note(format!("only in the {name} builder: {}", list(&extra)));
            }
            out.push(f);
        } else if let Some(i) = names.iter().zip(&declared).position(|(a, b)| a != b) {
            out.push(
                Finding::new(
                    &FEATURE_ORDER_MISMATCH,
                    format!(
                        "the {name} builder declares `{}` at index {i} where the code has `{}`",
                        declared[i], names[i]
                    ),
                )
                .at(fact.item(i).with_label(format!("index {i}")))
                .related(at(i)?)
                .help(
                    "emit features in the contract's order; build rows by name, never by position",
                ),
            );
        }
    }

    let short = derived_hash
        .strip_prefix("sha256:")
        .map(|h| format!("sha256:{}…{}", &h[..4], &h[h.len() - 2..]))
        .unwrap_or_default();
    Ok(Report {
        findings: out,
        summary: format!("{} features · {short}", names.len()),
        skipped: None,
    })
}
