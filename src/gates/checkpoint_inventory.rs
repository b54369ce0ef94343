//! # checkpoint-inventory (plan script 01_checkpoint_inventory)
//!
//! **What it does.** Finds every checkpoint the config's globs match and reads each one's metadata and
//! tensor table (header only, never the tensor bytes, never executing pickle). A file that cannot be read,
//! or whose pickle references a global outside the weights-only allowlist, is an error; so is a glob that
//! matches nothing, and a production checkpoint the globs do not cover.
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
use crate::config::{Loaded, display_path};
use crate::error::{CheckpointError, Error, Result};
use crate::facts::{CheckpointFacts, vector_len};
use crate::finding::{Code, ContractKind, Finding, Location, Severity};

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
    "a checkpoint cannot be read (not a torch archive or safetensors file, truncated, corrupt)",
);
pub const CHECKPOINT_UNSAFE: Code = code(
    "checkpoint-unsafe-pickle",
    "a checkpoint's pickle references a global outside the weights-only allowlist; the file is refused",
);
pub const GLOB_EMPTY: Code = code("checkpoint-glob-empty", "a checkpoint glob matches no file");
pub const PRODUCTION_UNLISTED: Code = code(
    "checkpoint-production-unlisted",
    "the production checkpoint is not matched by any glob",
);

pub const GATE: Gate = Gate {
    name: "checkpoint-inventory",
    plan_script: Some("01_checkpoint_inventory"),
    codes: &[
        CHECKPOINT_UNREADABLE,
        CHECKPOINT_UNSAFE,
        GLOB_EMPTY,
        PRODUCTION_UNLISTED,
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
    /// Bytes read to describe the file (header only).
    pub bytes_read: u64,
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
            if p.is_file() && Format::from_path(&p).is_some() {
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
            None => checkpoint::open(&path),
        };
        match read {
            Ok(info) => {
                let f = CheckpointFacts::read(&info, &loaded.config.checkpoints.keys);
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
                    bytes_read: info.bytes_read,
                    median_len: f.median.value.as_ref().and_then(vector_len),
                    sha256,
                    production: is_production,
                });
            }
            Err(Error::Checkpoint { source, .. }) => {
                let code = if matches!(source, CheckpointError::UnsafeGlobal { .. }) {
                    &CHECKPOINT_UNSAFE
                } else {
                    &CHECKPOINT_UNREADABLE
                };
                findings.push(
                    Finding::new(code, source.to_string())
                        .at(Location::file(&display))
                        .help("re-save it from the training code with plain tensors, dicts, lists, numbers and strings (docs/checkpoint-metadata.md)"),
                );
                rows.push(Row {
                    path: display,
                    format: Format::from_path(&path),
                    size,
                    model_version: None,
                    input_dim: None,
                    heads: vec![],
                    tensors: 0,
                    bytes_read: 0,
                    median_len: None,
                    sha256,
                    production: is_production,
                });
            }
            Err(other) => return Err(other),
        }
    }
    Ok((rows, findings))
}

pub fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

pub fn run(cx: &Context) -> Result<Report> {
    let (rows, findings) = inventory(cx.loaded, false, Some(&cx.facts.production))?;
    let n = rows.len();
    Ok(Report {
        findings,
        summary: format!("{n} checkpoint{}", if n == 1 { "" } else { "s" }),
        skipped: None,
    })
}
