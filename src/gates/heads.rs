//! # heads (head-mapping contract)
//!
//! **What it does.** Checks the output heads: every checkpoint the globs find carries a head map keyed
//! by name (a list of `{name, index, kind, shape}` with unique names); the production checkpoint's map
//! equals the code's (same names, same positions, kinds and shapes); the map agrees with the model the
//! checkpoint describes (`arch.heads` names the same heads, in output order, and each head layer's weight
//! has as many rows as the head's shape holds); a `softmax` head has at least two classes. Heads named
//! by the ruleset are checked once the ruleset exists (next version); version rules against the base
//! branch come with the base-branch classification.
//!
//! **Why is this bad?** Consumers that take "output 0" as the direction probabilities read the
//! magnitude instead the day someone reorders the heads; nothing fails, the actions are just wrong.
//!
//! **Example.** The checkpoint's head map lists `magnitude` at index 0 and `direction` at index 1, the
//! code has them the other way round: `head-order-mismatch` at the code line of `direction`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::checkpoint::{self, CheckpointInfo};
use crate::contract::Head;
use crate::engine::arch;
use crate::error::Result;
use crate::facts::CheckpointFact;
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::paths::display_path;

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "heads",
        contract: ContractKind::HeadMapping,
        severity: Severity::Error,
        summary,
    }
}

pub const NOT_KEYED: Code = code(
    "heads-not-keyed",
    "a checkpoint's head map is missing or not keyed by name (a list of {name, index, kind, shape}, names unique)",
);
pub const HEAD_SET_MISMATCH: Code = code(
    "head-set-mismatch",
    "the code and the checkpoint name different heads",
);
pub const HEAD_ORDER_MISMATCH: Code = code(
    "head-order-mismatch",
    "a head sits at another output position in the checkpoint than in the code",
);
pub const HEAD_KIND_MISMATCH: Code = code(
    "head-kind-mismatch",
    "a head's kind or shape differs between the code and the checkpoint",
);
pub const HEAD_ARCH_MISMATCH: Code = code(
    "head-arch-mismatch",
    "the head map disagrees with the model in the checkpoint (arch.heads order, or the head layer's weight shape)",
);

pub const RULESET_HEAD: Code = code(
    "ruleset-head-mismatch",
    "a head the ruleset names does not exist, or has the wrong kind or width",
);

pub const GATE: Gate = Gate {
    id: Id::Heads,
    name: "heads",
    plan_script: None,
    codes: &[
        NOT_KEYED,
        HEAD_SET_MISMATCH,
        HEAD_ORDER_MISMATCH,
        HEAD_KIND_MISMATCH,
        HEAD_ARCH_MISMATCH,
        RULESET_HEAD,
    ],
    needs: Needs::NOTHING,
    parts: Parts::Whole,
    profiles: &[Profile::PostTrain, Profile::PreLive],
    run,
};

/// A checkpoint's head map, parsed; `Err` says what is wrong with it.
fn head_map(f: &CheckpointFact) -> std::result::Result<Vec<Head>, String> {
    let Some(v) = &f.value else {
        return Err(format!("has no `{}`", f.key));
    };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("`{}` is not a list of {{name, index, kind, shape}}", f.key))?;
    let mut out: Vec<Head> = Vec::new();
    for (i, h) in arr.iter().enumerate() {
        let name = h
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("`{}.{i}` has no `name`", f.key))?;
        if out.iter().any(|o| o.name == name) {
            return Err(format!("`{}` names head `{name}` twice", f.key));
        }
        let index = match h.get("index") {
            None => i as u32,
            Some(x) => x
                .as_u64()
                .ok_or_else(|| format!("`{}.{i}.index` is not an int", f.key))?
                as u32,
        };
        let kind = h
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("head `{name}` has no `kind`"))?;
        let shape = h
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .ok_or_else(|| format!("head `{name}` has no `shape` (a list of ints)"))?;
        out.push(Head {
            name: name.to_owned(),
            index,
            kind: kind.to_owned(),
            shape,
        });
    }
    out.sort_by_key(|h| h.index);
    Ok(out)
}

pub fn run(cx: &Context) -> Result<Report> {
    let keys = &cx.loaded.config.checkpoints.keys;
    let code_fact = &cx.facts.code.heads;
    let code_heads = cx.facts.heads()?.to_vec();
    let mut out = Vec::new();

    // Every checkpoint: a head map keyed by name. Unreadable files are the inventory's findings.
    let paths = cx.loaded.checkpoint_files()?.files;
    let production = &cx.facts.production;
    let mut checked = 0;
    for path in &paths {
        let other;
        let info: &CheckpointInfo = if crate::checkpoint::globs::same_file(path, &production.path) {
            production
        } else {
            match cx.loaded.open_checkpoint(path) {
                Ok(i) => {
                    other = i;
                    &other
                }
                Err(_) => continue,
            }
        };
        checked += 1;
        let fact = CheckpointFact::lookup(info, "heads", &keys.heads);
        // Heads the code does not declare need not be in the checkpoint; stated ones are compared.
        if fact.value.is_none() && !cx.facts.checkpoint.is_required("heads") {
            continue;
        }
        if let Err(why) = head_map(&fact) {
            out.push(
                Finding::new(&NOT_KEYED, format!("{} {why}", display_path(&info.path)))
                    .at(fact.location.clone())
                    .related(code_fact.origin.clone())
                    .help("save the head map with the weights, or in a sidecar beside them: [{name, index, kind, shape}] per head (docs/checkpoint-metadata.md#metadata-beside-the-checkpoint)"),
            );
        }
    }

    let fact = &cx.facts.checkpoint.heads;
    if let Ok(ck_heads) = head_map(fact) {
        compare(&code_heads, &ck_heads, cx, &mut out);
        against_arch(&ck_heads, cx, &mut out);
    }

    if let Some(rl) = cx.ruleset()? {
        out.extend(ruleset_heads(rl, &code_heads));
    }

    let n = code_heads.len();
    Ok(Report {
        findings: out,
        summary: format!(
            "{n} head{} · {checked} checkpoint{}",
            if n == 1 { "" } else { "s" },
            if checked == 1 { "" } else { "s" }
        ),
        skipped: None,
    })
}

fn compare(code: &[Head], ck: &[Head], cx: &Context, out: &mut Vec<Finding>) {
    let code_fact = &cx.facts.code.heads;
    let ck_fact = &cx.facts.checkpoint.heads;
    let a: BTreeSet<&str> = code.iter().map(|h| h.name.as_str()).collect();
    let b: BTreeSet<&str> = ck.iter().map(|h| h.name.as_str()).collect();
    if a != b {
        let only = |x: &BTreeSet<&str>, y: &BTreeSet<&str>| {
            x.difference(y)
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut f = Finding::new(&HEAD_SET_MISMATCH, "the code and the production checkpoint name different heads")
            .at(code_fact.origin.clone())
            .related(ck_fact.location.clone())
            .help("retrain with the code's heads (and bump the heads version), or restore the heads the model has");
        if !a.is_subset(&b) {
            f = f.note(format!("in the code only: {}", only(&a, &b)));
        }
        if !b.is_subset(&a) {
            f = f.note(format!("in the checkpoint only: {}", only(&b, &a)));
        }
        out.push(f);
        return;
    }
    for (i, h) in code.iter().enumerate() {
        let c = ck
            .iter()
            .find(|c| c.name == h.name)
            .expect("same name sets");
        let pos = ck
            .iter()
            .position(|c| c.name == h.name)
            .expect("same name sets");
        if pos != i {
            out.push(
                Finding::new(
                    &HEAD_ORDER_MISMATCH,
                    format!(
                        "head `{}` is output {i} in the code and output {pos} in the checkpoint",
                        h.name
                    ),
                )
                .at(code_fact.item(i).with_label(format!("head `{}`", h.name)))
                .related(ck_fact.location.clone())
                .help("look heads up by name, never by position; restore the order the model was trained with, or retrain and bump the heads version"),
            );
            break;
        }
        if c.kind != h.kind || c.shape != h.shape {
            out.push(
                Finding::new(
                    &HEAD_KIND_MISMATCH,
                    format!(
                        "head `{}` is {} {:?} in the code and {} {:?} in the checkpoint",
                        h.name, h.kind, h.shape, c.kind, c.shape
                    ),
                )
                .at(code_fact.item(i).with_label(format!("head `{}`", h.name)))
                .related(ck_fact.location.clone())
                .help("the code's head map must describe the model: retrain, or restore the head definition"),
            );
        }
    }
}

/// Findings on the head map against the model the checkpoint describes (`arch`): order, layer
/// widths, softmax classes.
fn against_arch(ck: &[Head], cx: &Context, out: &mut Vec<Finding>) {
    let keys = &cx.loaded.config.checkpoints.keys;
    let info = &cx.facts.production;
    let ck_fact = &cx.facts.checkpoint.heads;
    // A missing `arch` is feature-schema's `checkpoint-missing-fact`; a present one must be readable.
    if info.get(&keys.arch).is_none() {
        return;
    }
    let arch = match arch::Arch::read(info, keys) {
        Ok(a) => a,
        // Reported once: checkpoint-inventory's `arch-invalid` when it runs too.
        Err(e) => {
            if !(cx.runs(super::Id::CheckpointInventory)
                && crate::inventory::reports_arch_invalid(cx.loaded, info))
            {
                out.push(arch_unreadable(e, ck_fact));
            }
            return;
        }
    };
    let arch_names: Vec<&str> = arch.heads.iter().map(|h| h.name.as_str()).collect();
    let map_names: Vec<&str> = ck.iter().map(|h| h.name.as_str()).collect();
    if arch_names != map_names {
        out.push(arch_order_mismatch(
            &map_names,
            &keys.arch,
            &arch_names,
            ck_fact,
        ));
    }
    for h in ck {
        let Some(a) = arch.heads.iter().find(|a| a.name == h.name) else {
            continue;
        };
        let size: u64 = h.shape.iter().product();
        match arch::weight(info, keys, &a.layer) {
            None => out.push(head_weight_missing(h, a, ck_fact)),
            Some(w) if w.shape.first() != Some(&size) => {
                out.push(head_weight_mismatch(h, size, w, ck_fact));
            }
            Some(_) => {}
        }
        if h.kind == "softmax" && size < 2 {
            out.push(softmax_too_narrow(h, size, ck_fact));
        }
    }
}

/// The checkpoint's `arch` cannot be read: the heads cannot be checked against the model.
fn arch_unreadable(e: crate::error::Error, ck_fact: &CheckpointFact) -> Finding {
    let (location, message) = match e {
        crate::error::Error::At { location, message } => (location, message),
        other => (ck_fact.location.clone(), other.to_string()),
    };
    Finding::new(
        &HEAD_ARCH_MISMATCH,
        format!("the heads cannot be checked against the model: {message}"),
    )
    .at(location)
    .help("describe the model in `arch` (docs/checkpoint-metadata.md#the-arch-format)")
}

/// The head map orders the outputs otherwise than the model produces them.
fn arch_order_mismatch(
    map_names: &[&str],
    arch_key: &str,
    arch_names: &[&str],
    ck_fact: &CheckpointFact,
) -> Finding {
    Finding::new(
        &HEAD_ARCH_MISMATCH,
        format!(
            "the head map orders the outputs [{}], the model (`{arch_key}.heads`) produces [{}]",
            map_names.join(", "),
            arch_names.join(", ")
        ),
    )
    .at(ck_fact.location.clone())
    .help("write the head map from the model's own head order when saving the checkpoint")
}

/// The checkpoint has no weight tensor for a head's layer.
fn head_weight_missing(h: &Head, a: &arch::ArchHead, ck_fact: &CheckpointFact) -> Finding {
    Finding::new(
        &HEAD_ARCH_MISMATCH,
        format!(
            "head `{}`: the checkpoint has no tensor `{}.weight`",
            h.name, a.layer
        ),
    )
    .at(ck_fact.location.clone())
}

/// A head layer's weight has another number of rows than the head's shape holds.
fn head_weight_mismatch(
    h: &Head,
    size: u64,
    w: &checkpoint::TensorInfo,
    ck_fact: &CheckpointFact,
) -> Finding {
    Finding::new(
        &HEAD_ARCH_MISMATCH,
        format!(
            "head `{}` has shape {:?} ({size} outputs), but `{}` has shape {:?}",
            h.name, h.shape, w.name, w.shape
        ),
    )
    .at(ck_fact.location.clone())
}

/// A softmax head with fewer than two classes.
fn softmax_too_narrow(h: &Head, size: u64, ck_fact: &CheckpointFact) -> Finding {
    Finding::new(
        &HEAD_ARCH_MISMATCH,
        format!(
            "head `{}` is a softmax over {size} output: a softmax needs at least two classes",
            h.name
        ),
    )
    .at(ck_fact.location.clone())
}

/// Every head the ruleset names exists with the kind its use needs.
fn ruleset_heads(rl: &crate::ruleset::Loaded, heads: &[Head]) -> Vec<Finding> {
    let rs = &rl.ruleset;
    let mut out = Vec::new();
    let find = |name: &str| heads.iter().find(|h| h.name == name);
    let width = |h: &Head| h.shape.iter().product::<u64>() as usize;
    let mut check = |key: &str, name: &str, want: Option<&str>, need: usize| {
        let msg = match find(name) {
            None => Some(format!(
                "the ruleset names head `{name}`, which the code's head map does not have"
            )),
            Some(h) if want.is_some_and(|k| h.kind != k) => Some(format!(
                "the ruleset uses head `{name}` as a {} head, but it is {}",
                want.unwrap_or(""),
                h.kind
            )),
            Some(h) if width(h) < need => Some(format!(
                "the ruleset needs {need} outputs of head `{name}`, which has {}",
                width(h)
            )),
            _ => None,
        };
        if let Some(m) = msg {
            out.push(
                Finding::new(&RULESET_HEAD, m)
                    .at(rl.location(key))
                    .help("the ruleset must name the model's heads by their names and kinds (the code's head map)"),
            );
        }
    };
    check(
        "signal.head",
        &rs.signal.head,
        Some("softmax"),
        rs.signal.classes.len(),
    );
    check("sizing.head", &rs.sizing.head, Some("regression"), 1);
    for (i, g) in rs.risk_gates.iter().enumerate() {
        if let Some(crate::ruleset::Read::Head(h, k)) = g.read() {
            check(&format!("risk-gates.{i}.reads"), &h, None, k + 1);
        }
    }
    if let Some(h) = find(&rs.signal.head)
        && h.kind == "softmax"
        && width(h) != rs.signal.classes.len()
    {
        out.push(
            Finding::new(
                &RULESET_HEAD,
                format!(
                    "`signal.classes` names {} classes, head `{}` has {}",
                    rs.signal.classes.len(),
                    h.name,
                    width(h)
                ),
            )
            .at(rl.location("signal.classes")),
        );
    }
    out
}
