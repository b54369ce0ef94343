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

use serde_json::{Map, Value};

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::error::Result;
use crate::facts::{CheckpointFact, CodeFacts};
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
    needs: Needs::NOTHING,
    parts: Parts::Whole,
    profiles: &[Profile::PostTrain, Profile::PreLive],
    run,
};

/// The production checkpoint does not record label fact `f`.
fn targets_missing(f: &CheckpointFact) -> Finding {
    Finding::new(
        &TARGETS_MISSING,
        format!("the production checkpoint has no `{}`", f.key),
    )
    .at(f.location.clone())
    .help("store the label definition the model was trained on, in the checkpoint or a sidecar beside it (docs/checkpoint-metadata.md#metadata-beside-the-checkpoint)")
}

/// The code's horizon differs from `value`, the one in `place`.
fn horizon_mismatch(code: &CodeFacts, place: &Place, value: &Value) -> Finding {
    Finding::new(
        &HORIZON_MISMATCH,
        format!(
            "the label horizon is {} in the code and {value} in the {}",
            code.horizon.value, place.what
        ),
    )
    .at(code.horizon.origin.clone())
    .related(place.location.clone())
    .help(help(place.what))
}

/// The thresholds in `place` are not a dict name → number.
fn thresholds_not_a_dict(place: &Place) -> Finding {
    Finding::new(
        &THRESHOLD_MISMATCH,
        format!(
            "the thresholds in the {} are not a dict name → number",
            place.what
        ),
    )
    .at(place.location.clone())
}

/// Threshold `name` is `ours` in the code and `theirs` in `place` (`None`: absent).
fn threshold_mismatch(
    code: &CodeFacts,
    place: &Place,
    name: &str,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Finding {
    let show = |v: Option<&Value>| v.map_or("absent".to_owned(), Value::to_string);
    Finding::new(
        &THRESHOLD_MISMATCH,
        format!(
            "threshold `{name}` is {} in the code and {} in the {}",
            show(ours),
            show(theirs),
            place.what
        ),
    )
    .at(code.thresholds.origin.clone())
    .related(place.location.clone())
    .help(help(place.what))
}

/// A label fact in one place (`value`: `None` when the place lacks it).
struct Place {
    what: &'static str,
    value: Option<Value>,
    location: Location,
}

pub fn run(cx: &Context) -> Result<Report> {
    let code = &cx.facts.code;
    let keys = &cx.loaded.config.checkpoints.keys;
    let info = &cx.facts.production;
    let docs = docs_json(cx);
    let ck_h = CheckpointFact::lookup(info, "horizon", &keys.horizon);
    let ck_t = CheckpointFact::lookup(info, "thresholds", &keys.thresholds);
    let mut out: Vec<Finding> = [&ck_h, &ck_t]
        .into_iter()
        .filter(|f| f.value.is_none() && cx.facts.checkpoint.is_required(f.field))
        .map(targets_missing)
        .collect();
    // Horizon: one value per place.
    for p in places(&ck_h, docs.as_ref(), "targets.horizon") {
        if let Some(value) = p.value.as_ref().filter(|v| !v.is_null())
            && !same_number(value, &code.horizon.value)
        {
            out.push(horizon_mismatch(code, &p, value));
        }
    }
    // Thresholds: by name.
    let code_t = code.thresholds.value.as_object();
    if let Some(code_t) = code_t {
        for p in places(&ck_t, docs.as_ref(), "targets.thresholds") {
            out.extend(compare_thresholds(code, code_t, &p));
        }
    }
    let n = code_t.map_or(0, |t| t.len());
    Ok(Report {
        findings: out,
        summary: summary(&code.horizon.value, n, docs.is_some()),
        skipped: None,
    })
}

/// The label fact at `key` in each place: the checkpoint, then the docs JSON when it has the key.
fn places(ck: &CheckpointFact, docs: Option<&(String, String)>, key: &str) -> Vec<Place> {
    let mut places = vec![Place {
        what: "checkpoint",
        value: ck.value.clone(),
        location: ck.location.clone(),
    }];
    if let Some((display, text)) = docs
        && let Ok(f) = crate::keypath::json_key(display, text, key)
    {
        places.push(Place {
            what: "docs",
            value: Some(f.value),
            location: f.location,
        });
    }
    places
}

/// The code's thresholds against those in `place`, name by name (a place without thresholds compares
/// nothing).
fn compare_thresholds(code: &CodeFacts, ours: &Map<String, Value>, place: &Place) -> Vec<Finding> {
    let Some(value) = &place.value else {
        return Vec::new();
    };
    let Some(theirs) = value.as_object() else {
        return vec![thresholds_not_a_dict(place)];
    };
    let mut names: Vec<&String> = ours.keys().chain(theirs.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (ours.get(name), theirs.get(name));
            let same = matches!((a, b), (Some(x), Some(y)) if same_number(x, y));
            (!same).then(|| threshold_mismatch(code, place, name, a, b))
        })
        .collect()
}

/// The summary: the code's horizon, how many thresholds, and whether the docs were compared.
fn summary(horizon: &Value, thresholds: usize, docs_compared: bool) -> String {
    format!(
        "horizon {horizon} · {thresholds} threshold{}{}",
        if thresholds == 1 { "" } else { "s" },
        if docs_compared {
            ""
        } else {
            " · docs not compared (see docs-drift)"
        }
    )
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
