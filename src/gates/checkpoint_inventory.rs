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
//!
//! **Why is this bad?** An unreadable checkpoint fails at the worst moment (the live process loading it),
//! and a pickle that names `os.system` runs that call for whoever loads it with plain `torch.load`.
//!
//! **Example.** `checkpoints/momentum_v2.pt` was saved with a custom class in its metadata
//! (`train.RunInfo`): `checkpoint-unsafe-pickle` naming `train.RunInfo`, the opcode and its byte offset.

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::error::Result;
use crate::inventory::{
    CHECKPOINT_AMBIGUOUS, CHECKPOINT_UNREADABLE, CHECKPOINT_UNSAFE, GLOB_EMPTY, MISSING_FACT,
    PRODUCTION_UNLISTED, VERSION_CONFLICT, inventory,
};
use crate::paths::display_path;

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
    ],
    needs: Needs::NOTHING,
    parts: Parts::Whole,
    profiles: &[Profile::PostTrain, Profile::PreBacktest, Profile::PreLive],
    run,
};

pub fn run(cx: &Context) -> Result<Report> {
    let (rows, mut findings) = inventory(cx.loaded, false, Some(cx.facts))?;
    if cx.runs(Id::FeatureSchema) {
        // feature-schema reports the production checkpoint's missing facts (with more context).
        let production = display_path(&cx.facts.production.path);
        findings.retain(|f| {
            f.code != MISSING_FACT.id || f.location.as_ref().is_none_or(|l| l.path != production)
        });
    }
    let n = rows.len();
    Ok(Report {
        findings,
        summary: format!("{n} checkpoint{}", if n == 1 { "" } else { "s" }),
        skipped: None,
    })
}
