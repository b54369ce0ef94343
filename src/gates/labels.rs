//! # labels (target-label contract)
//!
//! **What it does.** Compares the label definition in three places: the code (`[targets]` in the config:
//! horizon and thresholds), the production checkpoint's metadata (`targets.horizon`,
//! `targets.thresholds`: what the model was trained on), and the committed docs contract JSON. Each
//! difference names the value in each place, with the code line, the checkpoint key and the docs line.
//!
//! **Why is this bad?** A model trained to predict the 5-bar move, read by a backtest that scores it on
//! the 10-bar move, looks weak or strong for reasons that have nothing to do with the model; thresholds
//! that moved in code but not in the model silently change what "long" means.
//!
//! **Example.** `HORIZON = 10` in `pipeline/labels.py`, the checkpoint says 5: `label-horizon-mismatch`
//! at the code line, with the checkpoint key and the docs line beside it.

use serde_json::Value;

use super::{Context, Gate, Id, Needs, Profile, Report};
use crate::error::Result;
use crate::facts::CheckpointFact;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "labels",
        contract: ContractKind::TargetLabel,
        severity: Severity::Error,
        summary,
    }
}

pub const HORIZON_MISMATCH: Code = code(
    "label-horizon-mismatch",
    "the label horizon differs between code, checkpoint and docs",
);
pub const THRESHOLD_MISMATCH: Code = code(
    "label-threshold-mismatch",
    "a label threshold differs between code, checkpoint and docs",
);
pub const TARGETS_MISSING: Code = code(
    "checkpoint-targets-missing",
    "the checkpoint does not record the label horizon or thresholds it was trained on",
);

pub const GATE: Gate = Gate {
    id: Id::Labels,
    name: "labels",
    plan_script: None,
    codes: &[HORIZON_MISMATCH, THRESHOLD_MISMATCH, TARGETS_MISSING],
    needs: Needs {
        engine: false,
        slice: false,
        base: false,
    },
    profiles: &[Profile::PostTrain, Profile::PreLive],
    run,
};

/// A label fact in one place.
struct Place {
    what: &'static str,
    value: Value,
    location: Location,
}

pub fn run(cx: &Context) -> Result<Report> {
    let code = &cx.facts.code;
    let keys = &cx.loaded.config.checkpoints.keys;
    let info = &cx.facts.production;
    let mut out = Vec::new();
    let docs = docs_json(cx);

    let ck_h = CheckpointFact::lookup(info, "horizon", &keys.horizon);
    let ck_t = CheckpointFact::lookup(info, "thresholds", &keys.thresholds);
    for f in [&ck_h, &ck_t] {
        if f.value.is_none() {
            out.push(
                Finding::new(&TARGETS_MISSING, format!("the production checkpoint has no `{}`", f.key))
                    .at(f.location.clone())
                    .help("store the label definition the model was trained on (docs/checkpoint-metadata.md)"),
            );
        }
    }

    // Horizon: one value per place.
    let mut places = vec![Place {
        what: "checkpoint",
        value: ck_h.value.clone().unwrap_or(Value::Null),
        location: ck_h.location.clone(),
    }];
    if let Some((display, text)) = &docs
        && let Ok(f) = crate::source::keypath::json_key(display, text, "targets.horizon")
    {
        places.push(Place {
            what: "docs",
            value: f.value,
            location: f.origin,
        });
    }
    for p in places.iter().filter(|p| !p.value.is_null()) {
        if !same_number(&p.value, &code.horizon.value) {
            out.push(
                Finding::new(
                    &HORIZON_MISMATCH,
                    format!(
                        "the label horizon is {} in the code and {} in the {}",
                        code.horizon.value, p.value, p.what
                    ),
                )
                .at(code.horizon.origin.clone())
                .related(p.location.clone())
                .help(help(p.what)),
            );
        }
    }

    // Thresholds: by name.
    let code_t = code.thresholds.value.as_object();
    let mut places = vec![("checkpoint", ck_t.value.clone(), ck_t.location.clone())];
    if let Some((display, text)) = &docs
        && let Ok(f) = crate::source::keypath::json_key(display, text, "targets.thresholds")
    {
        places.push(("docs", Some(f.value), f.origin));
    }
    if let Some(code_t) = code_t {
        for (what, value, location) in &places {
            let Some(value) = value else { continue };
            let Some(other) = value.as_object() else {
                out.push(
                    Finding::new(
                        &THRESHOLD_MISMATCH,
                        format!("the thresholds in the {what} are not a dict name → number"),
                    )
                    .at(location.clone()),
                );
                continue;
            };
            let mut names: Vec<&String> = code_t.keys().chain(other.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let (a, b) = (code_t.get(name), other.get(name));
                let same = matches!((a, b), (Some(x), Some(y)) if same_number(x, y));
                if !same {
                    let show = |v: Option<&Value>| v.map_or("absent".to_owned(), Value::to_string);
                    out.push(
                        Finding::new(
                            &THRESHOLD_MISMATCH,
                            format!(
                                "threshold `{name}` is {} in the code and {} in the {what}",
                                show(a),
                                show(b)
                            ),
                        )
                        .at(code.thresholds.origin.clone())
                        .related(location.clone())
                        .help(help(what)),
                    );
                }
            }
        }
    }

    let horizon = &code.horizon.value;
    let n = code_t.map_or(0, |t| t.len());
    Ok(Report {
        findings: out,
        summary: format!(
            "horizon {horizon} · {n} threshold{}{}",
            if n == 1 { "" } else { "s" },
            if docs.is_some() {
                ""
            } else {
                " · docs not compared (see docs-drift)"
            }
        ),
        skipped: None,
    })
}

fn help(place: &str) -> &'static str {
    if place == "docs" {
        "run `plumbline docs --write` and commit the result"
    } else {
        "retrain with the code's label definition, or restore the definition the model was trained on"
    }
}

/// Numbers compare by value (`5` and `5.0` are the same horizon).
fn same_number(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The committed docs contract JSON, when it can be read (docs-drift reports when it cannot).
fn docs_json(cx: &Context) -> Option<(String, String)> {
    let rel = &cx.loaded.config.docs.json;
    let text = cx.loaded.read_to_string(&cx.loaded.resolve(rel)).ok()?;
    serde_json::from_str::<Value>(&text).ok()?;
    Some((cx.loaded.display(rel), text))
}
