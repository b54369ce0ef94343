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

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, Gate, Report};
use crate::checkpoint::{self, Format};
use crate::config::Loaded;
use crate::error::{CheckpointError, Error, Result};
use crate::facts::{CheckpointFacts, vector_len};
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::paths::display_path;

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "checkpoint-inventory",
        contract: ContractKind::Checkpoint,
        severity: Severity::Error,
        summary,
    }
}

pub const CHECKPOINT_UNREADABLE: Code = code(
    "checkpoint-unreadable",
    "a checkpoint cannot be read (an extension plumbline does not read, truncated, corrupt, or a tensor kind it does not describe)",
);
pub const CHECKPOINT_UNSAFE: Code = code(
    "checkpoint-unsafe-pickle",
    "a checkpoint's pickle references a global outside the weights-only allowlist; the file is refused",
);
pub const CHECKPOINT_AMBIGUOUS: Code = code(
    "checkpoint-ambiguous",
    "torch could read a checkpoint differently from plumbline (entries named twice, bytes around the archive, a pickle opcode across a frame); the file is refused",
);
pub const GLOB_EMPTY: Code = code("checkpoint-glob-empty", "a checkpoint glob matches no file");
pub const PRODUCTION_UNLISTED: Code = code(
    "checkpoint-production-unlisted",
    "the production checkpoint is not matched by any glob",
);

pub const MISSING_FACT: Code = code(
    "inventory-missing-fact",
    "a checkpoint lacks a required metadata key",
);
pub const VERSION_CONFLICT: Code = code(
    "checkpoint-version-conflict",
    "two checkpoints claim the same model version but hold different models",
);

pub const GATE: Gate = Gate {
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
    needs_engine: false,
    run,
};

/// One row of `plumbline inventory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Row {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_dim: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heads: Vec<String>,
    pub tensors: usize,
    /// Distinct bytes read to describe the file (header only); absent when it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    /// Globals declared safe in the config (`checkpoints.safe-globals`) that the file references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declared_globals: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub production: bool,
}

/// Expand the config's globs (sorted, deduplicated) into config-relative paths.
pub fn expand(loaded: &Loaded, findings: &mut Vec<Finding>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for pattern in &loaded.config.checkpoints.globs {
        // The config's directory is taken literally; only the pattern from the config is a glob.
        let root = glob::Pattern::escape(&loaded.root.to_string_lossy());
        let full = format!("{root}/{pattern}");
        let paths = glob::glob(&full).map_err(|e| {
            Error::at(
                Location::file(display_path(&loaded.path)),
                format!("checkpoint glob `{pattern}`: {e}"),
            )
        })?;
        let before = out.len();
        for p in paths {
            let p = p.map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?;
            // Every file the glob matches is read: one plumbline cannot read (an unknown
            // extension) is an unreadable-checkpoint finding, not skipped in silence.
            if p.is_file() {
                out.push(p);
            }
        }
        if out.len() == before {
            findings.push(
                Finding::new(
                    &GLOB_EMPTY,
                    format!("checkpoint glob `{pattern}` matches no checkpoint file"),
                )
                .at(Location::file(display_path(&loaded.path)).with_label("checkpoints.globs")),
            );
        }
    }
    out.extend(loaded.extra_checkpoints.iter().cloned());
    out.sort();
    out.dedup();
    Ok(out)
}

/// Read every checkpoint the globs find. Unreadable and unsafe files become findings. A checkpoint
/// already read (the production one, during `check`) is passed in and not read again.
pub fn inventory(
    loaded: &Loaded,
    hash: bool,
    already_read: Option<&checkpoint::CheckpointInfo>,
) -> Result<(Vec<Row>, Vec<Finding>)> {
    let mut findings = Vec::new();
    let paths = expand(loaded, &mut findings)?;
    let production = loaded.resolve(&loaded.config.checkpoints.production);
    if !paths.iter().any(|p| same_file(p, &production)) {
        findings.push(
            Finding::new(
                &PRODUCTION_UNLISTED,
                format!(
                    "the production checkpoint {} is not matched by `checkpoints.globs`",
                    display_path(&production)
                ),
            )
            .at(Location::file(display_path(&loaded.path)).with_label("checkpoints.production")),
        );
    }
    let mut rows = Vec::new();
    let mut read_ok: Vec<(checkpoint::CheckpointInfo, Option<String>)> = Vec::new();
    for path in paths {
        let display = display_path(&path);
        let is_production = same_file(&path, &production);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let sha256 = if hash {
            Some(checkpoint::sha256_file(&path)?)
        } else {
            None
        };
        let read = match already_read.filter(|info| same_file(&info.path, &path)) {
            Some(info) => Ok(info.clone()),
            None => checkpoint::open_with(&path, &loaded.reading()),
        };
        match read {
            Ok(info) => {
                let f = CheckpointFacts::read(&info, &loaded.config.checkpoints.keys);
                // A plain pickle (run parameters beside the weights) is read and checked for what it
                // references; the required facts are asked of checkpoints that hold weights.
                let missing = if info.format == Format::Pickle {
                    Vec::new()
                } else {
                    f.missing()
                };
                for m in missing {
                    findings.push(
                        Finding::new(
                            &MISSING_FACT,
                            format!("{display} has no `{}` ({})", m.key, m.field),
                        )
                        .at(m.location.clone())
                        .help("write every required key from the training script (docs/checkpoint-metadata.md), or point `[checkpoints.keys]` at where it lives"),
                    );
                }
                let version = f
                    .model_version
                    .value
                    .as_ref()
                    .and_then(crate::contract::version);
                rows.push(Row {
                    path: display,
                    format: Some(info.format),
                    size,
                    model_version: f
                        .model_version
                        .value
                        .as_ref()
                        .and_then(crate::contract::version),
                    input_dim: f.input_dim.value.as_ref().and_then(|v| v.as_u64()),
                    heads: f
                        .heads
                        .value
                        .as_ref()
                        .and_then(|h| h.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|h| {
                                    h.get("name").and_then(|n| n.as_str()).map(str::to_owned)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    tensors: info.tensors.len(),
                    bytes_read: Some(info.bytes_read),
                    declared_globals: info.declared_globals.clone(),
                    median_len: f.median.value.as_ref().and_then(vector_len),
                    sha256,
                    production: is_production,
                });
                read_ok.push((info, version));
            }
            Err(Error::Checkpoint { source, .. }) => {
                let code = match source {
                    CheckpointError::UnsafeGlobal { .. } => &CHECKPOINT_UNSAFE,
                    CheckpointError::Ambiguous(_) => &CHECKPOINT_AMBIGUOUS,
                    _ => &CHECKPOINT_UNREADABLE,
                };
                let help = if matches!(source, CheckpointError::Ambiguous(_)) {
                    "re-save it with torch.save from the training code; a file edited, re-zipped or concatenated by other tools can be read two ways (docs/checkpoint-metadata.md#the-torch-archive-pt-pth-ckpt)"
                } else {
                    "re-save it from the training code with plain tensors, dicts, lists, numbers and strings (docs/checkpoint-metadata.md)"
                };
                findings.push(
                    Finding::new(code, source.to_string())
                        .at(Location::file(&display))
                        .help(help),
                );
                rows.push(Row {
                    path: display,
                    format: Format::from_path(&path),
                    size,
                    model_version: None,
                    input_dim: None,
                    heads: vec![],
                    tensors: 0,
                    bytes_read: None,
                    declared_globals: Vec::new(),
                    median_len: None,
                    sha256,
                    production: is_production,
                });
            }
            Err(other) => return Err(other),
        }
    }
    findings.extend(version_conflicts(
        &read_ok,
        &loaded.config.checkpoints.keys,
    )?);
    Ok((rows, findings))
}

/// Checkpoints claiming one model version must hold one model.
fn version_conflicts(
    read: &[(checkpoint::CheckpointInfo, Option<String>)],
    keys: &crate::config::CheckpointKeys,
) -> Result<Vec<Finding>> {
    let state_dict = &keys.state_dict;
    let mut out = Vec::new();
    let mut hashes: std::collections::BTreeMap<PathBuf, String> = Default::default();
    for (i, (a, va)) in read.iter().enumerate() {
        let Some(va) = va else { continue };
        // Compare each file with the first earlier file of the same version only (one finding per file).
        let Some((b, _)) = read[..i].iter().find(|(_, vb)| vb.as_ref() == Some(va)) else {
            continue;
        };
        let differs = if a.format == b.format {
            let mut hash = |p: &std::path::Path| -> Result<String> {
                if let Some(h) = hashes.get(p) {
                    return Ok(h.clone());
                }
                let h = checkpoint::sha256_file(p)?;
                hashes.insert(p.to_path_buf(), h.clone());
                Ok(h)
            };
            let (ha, hb) = (hash(&a.path)?, hash(&b.path)?);
            (ha != hb).then(|| format!("sha256 {} vs {}", short(&ha), short(&hb)))
        } else {
            let (ta, tb) = (tensor_table(a, state_dict), tensor_table(b, state_dict));
            if ta != tb {
                Some("their tensor tables (names, dtypes, shapes) differ".to_owned())
            } else {
                [&keys.feature_cols, &keys.schema_hash, &keys.input_dim]
                    .into_iter()
                    .find(|k| a.get(k) != b.get(k))
                    .map(|k| format!("their `{k}` differ"))
            }
        };
        if let Some(why) = differs {
            out.push(
                Finding::new(
                    &VERSION_CONFLICT,
                    format!(
                        "{} and {} both claim model version {va}, but {why}",
                        display_path(&b.path),
                        display_path(&a.path)
                    ),
                )
                .at(Location::file(display_path(&a.path)).with_label("model_version"))
                .related(Location::file(display_path(&b.path)).with_label("model_version"))
                .help("a retrain writes a new model version; bump MODEL_VERSION, or remove the stale file"),
            );
        }
    }
    Ok(out)
}

fn short(h: &str) -> String {
    let h = h.strip_prefix("sha256:").unwrap_or(h);
    format!("{}…", &h[..h.len().min(12)])
}

/// Tensor names (without the state-dict prefix), dtypes and shapes, sorted.
fn tensor_table(
    info: &checkpoint::CheckpointInfo,
    state_dict: &str,
) -> Vec<(String, String, Vec<u64>)> {
    let prefix = format!("{state_dict}.");
    let mut t: Vec<_> = info
        .tensors
        .iter()
        .filter(|t| info.format == Format::Safetensors || t.name.starts_with(&prefix))
        .map(|t| {
            (
                t.name.strip_prefix(&prefix).unwrap_or(&t.name).to_owned(),
                t.dtype.clone(),
                t.shape.clone(),
            )
        })
        .collect();
    t.sort();
    t
}

pub fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

pub fn run(cx: &Context) -> Result<Report> {
    let (rows, mut findings) = inventory(cx.loaded, false, Some(&cx.facts.production))?;
    if cx.runs("feature-schema") {
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
