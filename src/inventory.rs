//! The checkpoint inventory: every checkpoint the config's globs find, read header-only, as rows and
//! findings. The checkpoint-inventory gate reports it; `plumbline inventory` prints it as a table and the
//! audit packet lists it. Its finding codes are defined here and registered by the checkpoint-inventory
//! gate (gates/checkpoint_inventory.rs), which reports them.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::checkpoint::globs::same_file;
use crate::checkpoint::{self, Format};
use crate::config::{CheckpointKeys, Loaded};
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

pub const ARCH_INVALID: Code = code(
    "arch-invalid",
    "a checkpoint's `arch` cannot be read, so its tensors cannot be accounted for nor the model run",
);
pub const ARCH_TENSOR_UNUSED: Code = code(
    "arch-tensor-unused",
    "a checkpoint holds tensors its `arch` does not use: the model that runs is not the one trained",
);
pub const ARCH_TENSOR_MISSING: Code = code(
    "arch-tensor-missing",
    "`arch` names a parameter the checkpoint's state dict does not have",
);
pub const ARCH_TENSOR_SHAPE: Code = code(
    "arch-tensor-shape",
    "a tensor's shape is not the one `arch` gives its layer",
);

pub const MISSING_FACT: Code = code(
    "inventory-missing-fact",
    "a checkpoint lacks a required metadata key",
);
pub const VERSION_CONFLICT: Code = code(
    "checkpoint-version-conflict",
    "two checkpoints claim the same model version but hold different models",
);

/// A checkpoint glob that matches nothing.
fn glob_empty(loaded: &Loaded, pattern: &str) -> Finding {
    Finding::new(
        &GLOB_EMPTY,
        format!("checkpoint glob `{pattern}` matches no checkpoint file"),
    )
    .at(Location::file(display_path(&loaded.path)).with_label("checkpoints.globs"))
}

/// The production checkpoint, outside every glob.
fn production_unlisted(loaded: &Loaded, production: &Path) -> Finding {
    Finding::new(
        &PRODUCTION_UNLISTED,
        format!(
            "the production checkpoint {} is not matched by `checkpoints.globs`",
            display_path(production)
        ),
    )
    .at(Location::file(display_path(&loaded.path)).with_label("checkpoints.production"))
}

/// A checkpoint refused as unsafe, ambiguous or unreadable, by why.
fn refused(display: &str, source: &CheckpointError) -> Finding {
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
    Finding::new(code, source.to_string())
        .at(Location::file(display))
        .help(help)
}

/// A path a checkpoint glob matched that is not a readable file (`why`: a dangling or looping link, a
/// directory).
fn not_a_file(display: &str, why: &str) -> Finding {
    Finding::new(
        &CHECKPOINT_UNREADABLE,
        format!("{display}: a checkpoint glob matches it, but it is {why}"),
    )
    .at(Location::file(display))
    .help("remove it, fix the link, or narrow `checkpoints.globs` so that it matches checkpoint files only")
}

/// Two checkpoints, `a` and the earlier `b`, claiming model version `version` but differing by `why`.
fn version_conflict(
    a: &checkpoint::CheckpointInfo,
    b: &checkpoint::CheckpointInfo,
    version: &str,
    why: &str,
) -> Finding {
    Finding::new(
        &VERSION_CONFLICT,
        format!(
            "{} and {} both claim model version {version}, but {why}",
            display_path(&b.path),
            display_path(&a.path)
        ),
    )
    .at(Location::file(display_path(&a.path)).with_label("model_version"))
    .related(Location::file(display_path(&b.path)).with_label("model_version"))
    .help("a retrain writes a new model version; bump MODEL_VERSION, or remove the stale file")
}

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

/// Read every checkpoint the globs find. Unreadable and unsafe files become findings. The facts of a
/// run that has them (`check`, the packet) are passed in: the production checkpoint is not read again,
/// nor the code's scaler kind resolved again.
pub fn inventory(
    loaded: &Loaded,
    hash: bool,
    facts: Option<&crate::facts::Facts>,
    covered: Covered,
) -> Result<(Vec<Row>, Vec<Finding>)> {
    let already_read = facts.map(|f| &f.production);
    let code_kind = match facts {
        Some(f) => f.checkpoint.code_kind,
        None => crate::facts::code_scaler_kind(loaded)?,
    };
    let found = loaded.checkpoint_files()?;
    let mut findings: Vec<Finding> = found
        .empty
        .iter()
        .map(|pattern| glob_empty(loaded, pattern))
        .collect();
    let production = loaded.resolve(&loaded.config.checkpoints.production);
    if !found.files.iter().any(|p| same_file(p, &production)) {
        findings.push(production_unlisted(loaded, &production));
    }
    let mut rows = Vec::new();
    for (path, why) in &found.unreadable {
        // Not a file: no size, no hash.
        let file = FileRow {
            display: display_path(path),
            size: 0,
            sha256: None,
            production: false,
        };
        findings.push(not_a_file(&file.display, why));
        rows.push(file.refused(Format::from_path(path)));
    }
    let mut read_ok: Vec<(checkpoint::CheckpointInfo, Option<String>)> = Vec::new();
    for path in found.files {
        let file = FileRow::of(&path, same_file(&path, &production), hash)?;
        match open(loaded, &path, already_read) {
            Ok(info) => {
                let f = CheckpointFacts::configured(&info, &loaded.config, code_kind);
                findings.extend(missing_facts(&file.display, &info, &f));
                let covered = if file.production {
                    covered
                } else {
                    Covered::default()
                };
                // The command engine runs the team's own code: an `arch` in the team's own format
                // is metadata then, not a model description plumbline must read.
                let native =
                    crate::engine::EngineKind::of(loaded) == crate::engine::EngineKind::Native;
                findings.extend(accounting(
                    &file.display,
                    &info,
                    &loaded.config.checkpoints.keys,
                    covered,
                    native,
                ));
                rows.push(file.read(&info, &f));
                read_ok.push((info, model_version(&f)));
            }
            Err(Error::Checkpoint { source, .. }) => {
                findings.push(refused(&file.display, &source));
                rows.push(file.refused(Format::from_path(&path)));
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

/// The checkpoint at `path`: the one already read when it is that file, else read now.
fn open(
    loaded: &Loaded,
    path: &Path,
    already_read: Option<&checkpoint::CheckpointInfo>,
) -> Result<checkpoint::CheckpointInfo> {
    match already_read.filter(|info| same_file(&info.path, path)) {
        Some(info) => Ok(info.clone()),
        None => loaded.open_checkpoint(path),
    }
}

/// Which of the production checkpoint's gaps other gates of the run report: the first layer's weight
/// (feature-schema: `first-layer-missing`) and the heads' weights (heads: `head-arch-mismatch`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Covered {
    pub first_layer: bool,
    pub heads: bool,
}

/// Whether the inventory reports `arch-invalid` for `info`: the native engine builds the model, and the
/// checkpoint has an `arch` it cannot read. Gates that would report the same cause leave it to the
/// inventory when it runs (one predicate, so no cause goes unreported).
pub fn reports_arch_invalid(loaded: &Loaded, info: &checkpoint::CheckpointInfo) -> bool {
    let keys = &loaded.config.checkpoints.keys;
    crate::engine::EngineKind::of(loaded) == crate::engine::EngineKind::Native
        && info.find(&keys.arch).is_some()
        && crate::engine::arch::Arch::read(info, keys).is_err()
}

/// Every tensor of `info`'s state dict accounted for by its `arch`: unused tensors, missing parameters
/// and shapes that differ, each naming the tensor and the layer, at the line `arch` is written. An
/// `arch` the native engine (`native`) cannot read is `arch-invalid`; none at all is a missing fact.
fn accounting(
    display: &str,
    info: &checkpoint::CheckpointInfo,
    keys: &CheckpointKeys,
    covered: Covered,
    native: bool,
) -> Vec<Finding> {
    use crate::engine::arch::{Arch, Gap};
    // No `arch` at all is a missing fact (feature-schema, inventory-missing-fact).
    if info.find(&keys.arch).is_none() {
        return Vec::new();
    }
    let arch = match Arch::read(info, keys) {
        Ok(a) => a,
        Err(_) if !native => return Vec::new(),
        Err(e) => {
            let (at, message) = match e {
                crate::error::Error::At { location, message } => (location, message),
                other => (Location::file(display), other.to_string()),
            };
            return vec![
                Finding::new(&ARCH_INVALID, format!("{display}: {message}"))
                    .at(at)
                    .help("docs/checkpoint-metadata.md#the-arch-format lists each layer type and its arguments; python/plumbline_torch.py writes `arch` from the module"),
            ];
        }
    };
    let at = info
        .find(&keys.arch)
        .map_or_else(|| Location::file(display), |f| f.location);
    let first = arch.first_input();
    let heads: Vec<String> = arch
        .heads
        .iter()
        .map(|h| format!("{}.weight", h.layer))
        .collect();
    let dims = |shape: &[Option<u64>]| {
        let d: Vec<String> = shape
            .iter()
            .map(|d| d.map_or_else(|| "_".to_owned(), |d| d.to_string()))
            .collect();
        format!("[{}]", d.join(", "))
    };
    let tensors = info.state_dict_tensors(&keys.state_dict);
    arch.account(&tensors)
        .into_iter()
        .filter_map(|gap| match gap {
            Gap::Missing(p) if covered.first_layer && first.as_ref() == Some(&p.name) => None,
            Gap::Missing(p) if covered.heads && heads.contains(&p.name) => None,
            Gap::Missing(p) => Some(Finding::new(
                &ARCH_TENSOR_MISSING,
                format!("{display}: `arch` layer `{}` needs `{}` {}, which the state dict does not have", p.layer, p.name, dims(&p.shape)),
            )
            .at(at.clone())),
            Gap::Shape { param, found } => Some(Finding::new(
                &ARCH_TENSOR_SHAPE,
                format!("{display}: `{}` is {found:?}; `arch` layer `{}` needs {}", param.name, param.layer, dims(&param.shape)),
            )
            .at(at.clone())
            .help("the widths in `arch` (input_dim, hidden) must be the trained model's; `plumbline inventory --tensors` lists the shapes")),
            Gap::Unused { module, tensors } => Some(Finding::new(
                &ARCH_TENSOR_UNUSED,
                format!(
                    "{display}: module `{module}` ({}) is in the state dict, but `arch` does not use it: the model plumbline runs is not the one trained",
                    tensors.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                ),
            )
            .at(at.clone())
            .help("describe every layer of the network in `arch` (docs/checkpoint-metadata.md#the-arch-format); a layer plumbline cannot run yet needs the command engine")),
        })
        .collect()
}

/// The required metadata keys a checkpoint lacks, as findings.
fn missing_facts(
    display: &str,
    info: &checkpoint::CheckpointInfo,
    f: &CheckpointFacts,
) -> Vec<Finding> {
    // A plain pickle (run parameters beside the weights) is read and checked for what it references;
    // the required facts are asked of checkpoints that hold weights.
    if info.format == Format::Pickle {
        return Vec::new();
    }
    crate::facts::missing_finding(&MISSING_FACT, display, info, &f.missing())
        .into_iter()
        .collect()
}

/// The model version a checkpoint claims, when it has a readable one.
fn model_version(f: &CheckpointFacts) -> Option<String> {
    f.model_version
        .value
        .as_ref()
        .and_then(crate::facts::version)
}

/// The names of a checkpoint's heads, in order.
fn head_names(f: &CheckpointFacts) -> Vec<String> {
    f.heads
        .value
        .as_ref()
        .and_then(|h| h.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|h| h.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What every row says about its file, read or refused.
struct FileRow {
    display: String,
    size: u64,
    sha256: Option<String>,
    production: bool,
}

impl FileRow {
    /// The file's shown path, size and (with `hash`) sha256.
    fn of(path: &Path, production: bool, hash: bool) -> Result<FileRow> {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let sha256 = if hash {
            Some(checkpoint::sha256_file(path)?)
        } else {
            None
        };
        Ok(FileRow {
            display: display_path(path),
            size,
            sha256,
            production,
        })
    }

    /// The row of a checkpoint that was read.
    fn read(self, info: &checkpoint::CheckpointInfo, f: &CheckpointFacts) -> Row {
        Row {
            path: self.display,
            format: Some(info.format),
            size: self.size,
            model_version: model_version(f),
            input_dim: f.input_dim.value.as_ref().and_then(|v| v.as_u64()),
            heads: head_names(f),
            tensors: info.tensors.len(),
            bytes_read: Some(info.bytes_read),
            declared_globals: info.declared_globals.clone(),
            median_len: f.median.value.as_ref().and_then(vector_len),
            sha256: self.sha256,
            production: self.production,
        }
    }

    /// The row of a checkpoint that was refused: what its name and size say.
    fn refused(self, format: Option<Format>) -> Row {
        Row {
            path: self.display,
            format,
            size: self.size,
            model_version: None,
            input_dim: None,
            heads: vec![],
            tensors: 0,
            bytes_read: None,
            declared_globals: Vec::new(),
            median_len: None,
            sha256: self.sha256,
            production: self.production,
        }
    }
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
            let (ta, tb) = (
                a.state_dict_tensors(state_dict),
                b.state_dict_tensors(state_dict),
            );
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
            out.push(version_conflict(a, b, va, &why));
        }
    }
    Ok(out)
}

fn short(h: &str) -> String {
    let h = h.strip_prefix("sha256:").unwrap_or(h);
    format!("{}…", &h[..h.len().min(12)])
}
