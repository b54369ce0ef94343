//! Checkpoint readers: metadata and tensor shapes, never tensor data, never pickle execution.
//!
//! The bytes read do not depend on tensor sizes: a torch archive costs its central directory and its
//! `data.pkl`, a safetensors file its header. A whole-file hash is computed only when asked
//! ([`sha256_file`]).

pub mod archive;
mod compat;
pub mod declared;
pub mod globs;
pub mod legacy;
pub mod metadata;
pub mod pickle;
pub mod safetensors;
pub mod torch;
pub mod tree;

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CheckpointError, Error, Result};

/// The non-tensor object tree of a checkpoint, as JSON. Tensors inside it appear as
/// `{"$tensor": {"dtype": ..., "shape": [...]}}`.
pub type Tree = serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// torch.save file (`.pt`, `.pth`, `.ckpt`): a zip archive, or the legacy (pre-1.6) stream
    Torch,
    Safetensors,
    /// A plain pickle (`.pkl`, `.pickle`), as some frameworks write their run parameters
    Pickle,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "pt" | "pth" | "ckpt" => Some(Format::Torch),
            "safetensors" => Some(Format::Safetensors),
            "pkl" | "pickle" => Some(Format::Pickle),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Torch => "torch",
            Format::Safetensors => "safetensors",
            Format::Pickle => "pickle",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
}

/// What a checkpoint says about itself.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    pub path: PathBuf,
    pub format: Format,
    /// File size from the file system (not read).
    pub size: u64,
    pub tree: Tree,
    pub tensors: Vec<TensorInfo>,
    /// Distinct bytes taken from the file to read it (header only: independent of tensor sizes,
    /// never more than `size`).
    pub bytes_read: u64,
    /// Globals declared safe in the config (`[checkpoints] safe-globals`) that this file's pickles
    /// reference, as `module.Name`, sorted.
    pub declared_globals: Vec<String>,
    /// Where else its facts live (Lightning `hyper_parameters`, sidecars, an MLflow `MLmodel`), in
    /// lookup order after the checkpoint's own tree ([`CheckpointInfo::attach`]).
    pub metadata: Vec<metadata::Layer>,
    /// The metadata files looked for beside it (display paths), for messages about a missing fact.
    pub metadata_searched: Vec<String>,
}

/// Where the state dict sits when the configured key holds no tensors: the layouts torch users save
/// (`torch.save({"model_state_dict": ...})`, `{"model": {"state_dict": ...}}`, `{"model": ...}`); a
/// bare `state_dict` keeps its tensors at the top level.
pub const STATE_DICT_KEYS: &[&str] = &[
    "state_dict",
    "model_state_dict",
    "model.state_dict",
    "model",
];

/// What a read may accept beyond the built-in rules.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// `[checkpoints] safe-globals`, as `module.Name` (checked by [`declared::check`]).
    pub safe_globals: Vec<String>,
}

const UNKNOWN_EXTENSION: &str = "unknown checkpoint extension (plumbline reads .pt, .pth, .ckpt, .safetensors, .pkl and .pickle)";

impl CheckpointInfo {
    /// A value by dotted key path (`scaler.median`, `heads.0.name`): in the checkpoint, else in its
    /// metadata layers.
    pub fn get(&self, key_path: &str) -> Option<&Tree> {
        self.find(key_path).map(|f| f.value)
    }

    /// A value by dotted key path with where it is written: the checkpoint's own tree first (no lines),
    /// then each metadata layer in order (a sidecar's line).
    /// A list in a sidecar comes with each item's line and column (the checkpoint has no lines).
    pub fn find(&self, key_path: &str) -> Option<metadata::Located<'_>> {
        if let Some(value) = lookup(&self.tree, key_path) {
            let location = crate::finding::Location::file(crate::paths::display_path(&self.path))
                .with_label(format!("checkpoint key `{key_path}`"));
            return Some(metadata::Located {
                value,
                location,
                items: Vec::new(),
            });
        }
        self.metadata.iter().find_map(|l| l.find(key_path))
    }

    /// Look for this checkpoint's metadata beside it and inside it (see [`metadata::layers`]).
    pub fn attach(&mut self, search: &metadata::Search, read: metadata::Read) -> Result<()> {
        let (layers, searched) = metadata::layers(&self.path, &self.tree, search, read)?;
        self.metadata = layers;
        self.metadata_searched = searched;
        Ok(())
    }

    /// The key the state dict sits under: `configured` when tensors sit there, else the first of
    /// [`STATE_DICT_KEYS`] that holds tensors; `None` for tensors at the top level (a bare state dict,
    /// a safetensors file).
    pub fn state_dict_key(&self, configured: &str) -> Option<String> {
        let holds = |k: &str| {
            let prefix = format!("{k}.");
            self.tensors.iter().any(|t| t.name.starts_with(&prefix))
        };
        std::iter::once(configured)
            .chain(STATE_DICT_KEYS.iter().copied())
            .find(|k| !k.is_empty() && holds(k))
            .map(str::to_owned)
    }

    /// A weight by its state-dict name, wherever the state dict sits ([`Self::state_dict_key`]).
    /// The state dict's tensors as (name without the state-dict prefix, dtype, shape), sorted by name:
    /// what `arch` names, and what `inventory --tensors` lists.
    pub fn state_dict_tensors(&self, state_dict_key: &str) -> Vec<(String, String, Vec<u64>)> {
        // Where the state dict sits in this file (a bare state dict and a safetensors file: the top level).
        let prefix = self
            .state_dict_key(state_dict_key)
            .map(|k| format!("{k}."))
            .unwrap_or_default();
        let mut t: Vec<_> = self
            .tensors
            .iter()
            .filter(|t| t.name.starts_with(&prefix))
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

    pub fn weight(&self, state_dict_key: &str, name: &str) -> Option<&TensorInfo> {
        let full = match self.state_dict_key(state_dict_key) {
            Some(k) => format!("{k}.{name}"),
            None => name.to_owned(),
        };
        self.tensors.iter().find(|t| t.name == full)
    }
}

/// Dotted key path lookup in a JSON tree; numeric segments index arrays.
pub fn lookup<'a>(tree: &'a Tree, key_path: &str) -> Option<&'a Tree> {
    if key_path.is_empty() {
        return Some(tree);
    }
    key_path.split('.').try_fold(tree, |node, seg| match node {
        Tree::Object(m) => m.get(seg),
        Tree::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Read a checkpoint's metadata and tensor table from a file, with the built-in rules only.
pub fn open(path: &Path) -> Result<CheckpointInfo> {
    open_with(path, &Reading::default())
}

/// Read a checkpoint's metadata and tensor table from a file.
pub fn open_with(path: &Path, reading: &Reading) -> Result<CheckpointInfo> {
    let format = format_of(path)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    read_from(path, format, file, size, reading)
}

/// Read a checkpoint whose bytes are already in memory (a staged blob), shown as `path`.
pub fn open_bytes(path: &Path, bytes: Vec<u8>, reading: &Reading) -> Result<CheckpointInfo> {
    let format = format_of(path)?;
    let size = bytes.len() as u64;
    read_from(path, format, std::io::Cursor::new(bytes), size, reading)
}

/// The format a path's extension names, or the error naming the extensions plumbline reads.
fn format_of(path: &Path) -> Result<Format> {
    Format::from_path(path).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        source: CheckpointError::Unsupported(UNKNOWN_EXTENSION.into()),
    })
}

fn read_from<R: Read + Seek>(
    path: &Path,
    format: Format,
    source: R,
    size: u64,
    reading: &Reading,
) -> Result<CheckpointInfo> {
    // No buffer: the readers ask for exact ranges (end records, central directory, `data.pkl`; the
    // safetensors length and header; a legacy file's pickles and storage counts), so a buffer would
    // only read around them.
    let (reader, counter) = CountingReader::new(source);
    let wrap = |source| Error::Checkpoint {
        path: path.to_path_buf(),
        source,
    };
    let rules = pickle::Rules {
        ids: pickle::Ids::Zip,
        declared: &reading.safe_globals,
        decimal: None,
    };
    let (tree, tensors, declared_globals) = match format {
        Format::Torch => {
            let a = torch::read(reader, rules).map_err(wrap)?;
            (a.tree, a.tensors, a.declared)
        }
        Format::Pickle => {
            let a = legacy::read_plain(reader, rules).map_err(wrap)?;
            (a.tree, a.tensors, a.declared)
        }
        Format::Safetensors => {
            let s = safetensors::read(reader).map_err(wrap)?;
            (s.tree, s.tensors, Vec::new())
        }
    };
    Ok(CheckpointInfo {
        path: path.to_path_buf(),
        format,
        size,
        tree,
        tensors,
        bytes_read: counter.get(),
        declared_globals,
        metadata: Vec::new(),
        metadata_searched: Vec::new(),
    })
}

/// A reader that counts the distinct bytes it hands out: a range read twice counts once, so the
/// count never exceeds the file.
pub struct CountingReader<R> {
    inner: R,
    pos: u64,
    ranges: Rc<RefCell<Vec<(u64, u64)>>>,
}

/// The distinct bytes a [`CountingReader`] handed out; readable after the reader is consumed.
#[derive(Clone)]
pub struct Counter(Rc<RefCell<Vec<(u64, u64)>>>);

impl Counter {
    pub fn get(&self) -> u64 {
        let mut ranges = self.0.borrow().clone();
        ranges.sort_unstable();
        let (mut total, mut end) = (0u64, 0u64);
        for (a, b) in ranges {
            let a = a.max(end);
            if b > a {
                total += b - a;
                end = b;
            }
        }
        total
    }
}

impl<R> CountingReader<R> {
    /// Wrap `inner` (positioned at its start).
    pub fn new(inner: R) -> (Self, Counter) {
        let ranges = Rc::new(RefCell::new(Vec::new()));
        (
            CountingReader {
                inner,
                pos: 0,
                ranges: ranges.clone(),
            },
            Counter(ranges),
        )
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.ranges
                .borrow_mut()
                .push((self.pos, self.pos + n as u64));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(pos)?;
        Ok(self.pos)
    }
}

/// sha256 of a whole file, as `sha256:<hex>`. Reads every byte: only for `--hash`, manifests and
/// duplicate-version checks.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex(&hasher.finalize())))
}

/// `sha256:` and the hex digest of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
