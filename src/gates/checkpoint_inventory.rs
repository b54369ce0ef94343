//! # checkpoint-inventory (plan script 01_checkpoint_inventory)
//!
//! **What it does.** Finds every checkpoint the config's globs match and reads each one's metadata and
//! tensor table (header only, never the tensor bytes, never executing pickle). A file that cannot be read,
//! or whose pickle references a global outside the weights-only allowlist, is an error; so is a glob that
//! matches nothing, and a production checkpoint the globs do not cover. Every checkpoint must carry the
//! required facts (docs/checkpoint-metadata.md); for the production checkpoint feature-schema reports
//! them when it runs. Two checkpoints claiming the same model version must hold the same model: files of
//! one format are compared by whole-file sha256 (the only place inventory hashes whole files), a torch
//! archive and a safetensors twin by their tensor tables (names, dtypes, shapes) and feature metadata.
//! The production checkpoint's model version must be the code's (`checkpoint-version-mismatch`): a
//! version bumped in the code without the checkpoint, or the other way round, means the code describes
//! a model that is not the one deployed.
//!
//! **Why is this bad?** An unreadable checkpoint fails at the worst moment (the live process loading it),
//! and a pickle that names `os.system` runs that call for whoever loads it with plain `torch.load`.
//!
//! **Example.** `checkpoints/momentum_v2.pt` was saved with a custom class in its metadata
//! (`train.RunInfo`): `checkpoint-unsafe-pickle` naming `train.RunInfo`, the opcode and its byte offset.

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Severity};
use crate::inventory::{
    ARCH_INVALID, ARCH_TENSOR_MISSING, ARCH_TENSOR_SHAPE, ARCH_TENSOR_UNUSED, CHECKPOINT_AMBIGUOUS,
    CHECKPOINT_UNREADABLE, CHECKPOINT_UNSAFE, Covered, GLOB_EMPTY, MISSING_FACT,
    PRODUCTION_UNLISTED, VERSION_CONFLICT, inventory,
};
use crate::paths::display_path;

pub const VERSION_MISMATCH: Code = Code {
    id: "checkpoint-version-mismatch",
    gate: "checkpoint-inventory",
    contract: ContractKind::Checkpoint,
    severity: Severity::Error,
    summary: "the production checkpoint states another model version than the code",
};

/// The production checkpoint states model version `stated`; the code says `code`.
fn version_mismatch(cx: &Context, stated: &str, code: &str) -> Finding {
    let ck = &cx.facts.checkpoint.model_version;
    Finding::new(
        &VERSION_MISMATCH,
        format!(
            "{} is model version {stated}, the code says {code}: the production checkpoint is not the model the code describes",
            display_path(&cx.facts.production.path)
        ),
    )
    .at(ck.location.clone())
    .related(cx.facts.code.model_version.origin.clone())
    .help("point `checkpoints.production` at the checkpoint trained as this version, or put the code's version back")
}

pub const GATE: Gate = Gate {
    id: Id::CheckpointInventory,
    name: "checkpoint-inventory",
    plan_script: Some("01_checkpoint_inventory"),
    codes: &[
        CHECKPOINT_UNREADABLE,
        CHECKPOINT_UNSAFE,
        CHECKPOINT_AMBIGUOUS,
        GLOB_EMPTY,
        PRODUCTION_UNLISTED,
        MISSING_FACT,
        VERSION_CONFLICT,
        VERSION_MISMATCH,
        ARCH_INVALID,
        ARCH_TENSOR_UNUSED,
        ARCH_TENSOR_MISSING,
        ARCH_TENSOR_SHAPE,
    ],
    needs: Needs::NOTHING,
    parts: Parts::Whole,
    profiles: &[Profile::PostTrain, Profile::PreBacktest, Profile::PreLive],
    run,
};

pub fn run(cx: &Context) -> Result<Report> {
    let covered = Covered {
        first_layer: cx.runs(Id::FeatureSchema),
        // heads checks the head weights against `arch` only when the checkpoint states its heads.
        heads: cx.runs(Id::Heads) && cx.facts.checkpoint.heads.value.is_some(),
    };
    let (rows, mut findings) = inventory(cx.loaded, false, Some(cx.facts), covered)?;
    if cx.runs(Id::FeatureSchema) {
        // feature-schema reports the production checkpoint's missing facts (with more context).
        let production = display_path(&cx.facts.production.path);
        findings.retain(|f| {
            f.code != MISSING_FACT.id || f.location.as_ref().is_none_or(|l| l.path != production)
        });
    }
    // The production checkpoint is the model the code describes: the versions agree.
    if let (Some(stated), Ok(code)) = (
        cx.facts
            .checkpoint
            .model_version
            .value
            .as_ref()
            .and_then(crate::facts::version),
        &cx.facts.model_version,
    ) && stated != *code
    {
        findings.push(version_mismatch(cx, &stated, code));
    }
    let n = rows.len();
    Ok(Report {
        findings,
        summary: format!("{n} checkpoint{}", if n == 1 { "" } else { "s" }),
        skipped: None,
    })
}
