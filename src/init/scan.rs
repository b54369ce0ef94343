//! What `plumbline init` finds in a repository: every value of its Python constants (tree-sitter) and
//! of its YAML, TOML and JSON files (the same readers the sources use), and every checkpoint with the
//! metadata beside it, as key paths with values. [`super::guess`] picks the facts from them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checkpoint::{self, CheckpointInfo, metadata};
use crate::keypath::{self, Kind};
use crate::paths::display_path;
use crate::source::python::PythonModule;

/// Directories never scanned: version control, environments, caches, build output.
const SKIP_DIRS: &[&str] = &[
    "node_modules",
    "target",
    "__pycache__",
    "venv",
    "env",
    "site-packages",
    "build",
    "dist",
];
/// Extensions of checkpoints (the formats plumbline reads, and ONNX for the inventory).
pub const CHECKPOINT_EXTS: &[&str] = &[
    "pt",
    "pth",
    "ckpt",
    "bin",
    "safetensors",
    "onnx",
    "pkl",
    "pickle",
];
/// Text files that may hold facts.
const TEXT_EXTS: &[&str] = &["py", "yaml", "yml", "toml", "json"];
/// Text files larger than this are not facts files (data, logs).
const MAX_TEXT: u64 = 1 << 20;
/// Files looked at, at most (a repository with more is scanned in part, and the report says so).
const MAX_FILES: usize = 20_000;
/// CSV files whose header is read, at most (a data folder does not count towards [`MAX_FILES`]).
const MAX_TABLES: usize = 2_000;

/// Where a value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A module constant: (file relative to the root, name).
    Python(String, String),
    /// A key path in a text file.
    Key(String, Kind, String),
}

/// One value found, with where.
#[derive(Debug, Clone)]
pub struct Found {
    pub place: Place,
    pub value: Value,
}

impl Found {
    /// The last segment of the key path or the constant's name, lowercased.
    pub fn name(&self) -> String {
        match &self.place {
            Place::Python(_, n) => n.to_ascii_lowercase(),
            Place::Key(_, _, k) => k.rsplit('.').next().unwrap_or(k).to_ascii_lowercase(),
        }
    }

    /// The whole key path (or constant name), lowercased, for matching parents (`scaler.factor`).
    pub fn path(&self) -> String {
        match &self.place {
            Place::Python(_, n) => n.to_ascii_lowercase(),
            Place::Key(_, _, k) => k.to_ascii_lowercase(),
        }
    }

    pub fn file(&self) -> &str {
        match &self.place {
            Place::Python(f, _) | Place::Key(f, _, _) => f,
        }
    }
}

/// A checkpoint with what plumbline read of it and its metadata, as key paths.
pub struct Checkpoint {
    /// Relative to the root.
    pub rel: String,
    pub info: Option<CheckpointInfo>,
    /// Why it could not be read, if so.
    pub unreadable: Option<String>,
    /// Key paths in the checkpoint's own tree and in each metadata layer (sidecar, MLmodel, …).
    pub values: Vec<Found>,
}

/// Everything the scan saw.
pub struct Scan {
    pub code: Vec<Found>,
    pub checkpoints: Vec<Checkpoint>,
    /// Files that could not be parsed (relative path, why): said in the report, never fatal.
    pub skipped: Vec<(String, String)>,
    /// Whether the scan stopped at [`MAX_FILES`].
    pub truncated: bool,
    /// Each CSV file's header (relative path, column names): where a slice of feature rows may be.
    pub tables: Vec<(String, Vec<String>)>,
}

/// The files a walk collects: fact files (capped), CSV tables (capped on their own).
#[derive(Default)]
struct Walked {
    files: Vec<PathBuf>,
    tables: Vec<PathBuf>,
}

/// Scan `root`, skipping the files in `exclude` (relative paths: the config being written, the docs).
pub fn scan(root: &Path, exclude: &[String]) -> Scan {
    let mut walked = Walked::default();
    let truncated = walk(root, Path::new(""), &mut walked);
    let mut files = walked.files;
    files.sort();
    walked.tables.sort();
    let mut out = Scan {
        code: Vec::new(),
        checkpoints: Vec::new(),
        skipped: Vec::new(),
        truncated,
        tables: walked
            .tables
            .iter()
            .filter_map(|rel| {
                Some((
                    display_path(rel),
                    crate::table::csv_header(&root.join(rel))?,
                ))
            })
            .collect(),
    };
    for rel in &files {
        let key = display_path(rel);
        if exclude.contains(&key) {
            continue;
        }
        let ext = rel
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if CHECKPOINT_EXTS.contains(&ext.as_str()) {
            out.checkpoints.push(checkpoint(root, &key));
        } else if let Err(why) = text_file(root, rel, &key, &ext, &mut out.code) {
            out.skipped.push((key, why));
        }
    }
    // A checkpoint's metadata files are the checkpoint's facts, not the code's.
    let beside: Vec<PathBuf> = out
        .checkpoints
        .iter()
        .filter_map(|c| c.info.as_ref())
        .flat_map(|i| {
            i.metadata
                .iter()
                .filter_map(|l| Path::new(&l.display).canonicalize().ok())
        })
        .collect();
    out.code.retain(|f| {
        root.join(f.file())
            .canonicalize()
            .map_or(true, |p| !beside.contains(&p))
    });
    out
}

/// Collect the files under `root/rel`; true when [`MAX_FILES`] stopped it.
fn walk(root: &Path, rel: &Path, out: &mut Walked) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return false;
    };
    let mut entries: Vec<_> = entries.filter_map(std::result::Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = e.file_type() else { continue };
        // A link to a file is followed (`production.pt -> runs/42/best.pt`); a link to a directory is
        // not (it may loop).
        let is_file = kind.is_file() || (kind.is_symlink() && e.path().is_file());
        if kind.is_dir() {
            if name.starts_with('.') || SKIP_DIRS.contains(&name.as_ref()) {
                continue;
            }
            if walk(root, &rel.join(e.file_name()), out) {
                return true;
            }
        } else if is_file && relevant(&name) {
            // Only files that may hold facts count towards the cap: a data folder of 20 000 Parquet
            // files must not stop the scan before the code.
            if out.files.len() >= MAX_FILES {
                return true;
            }
            out.files.push(rel.join(e.file_name()));
        } else if is_file
            && name.to_ascii_lowercase().ends_with(".csv")
            && out.tables.len() < MAX_TABLES
        {
            out.tables.push(rel.join(e.file_name()));
        }
    }
    false
}

/// A file the scan reads: a checkpoint or a text file that may hold facts (an MLflow `MLmodel` is read
/// as a checkpoint's metadata).
fn relevant(name: &str) -> bool {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    ext.is_some_and(|e| CHECKPOINT_EXTS.contains(&e.as_str()) || TEXT_EXTS.contains(&e.as_str()))
}

/// The values of a Python, YAML, TOML or JSON file, into `out`. Other files are ignored.
fn text_file(
    root: &Path,
    rel: &Path,
    key: &str,
    ext: &str,
    out: &mut Vec<Found>,
) -> std::result::Result<(), String> {
    let kind = Kind::of(rel);
    if ext != "py" && kind.is_none() {
        return Ok(());
    }
    let path = root.join(rel);
    if std::fs::metadata(&path).map_or(true, |m| m.len() > MAX_TEXT) {
        return Ok(());
    }
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    if ext == "py" {
        let text = crate::source::python::decode(&path, bytes).map_err(|e| e.to_string())?;
        let module = PythonModule::parse(key, text).map_err(|e| e.to_string())?;
        for name in module.assigned_names() {
            if let Ok(fact) = module.constant(&name) {
                out.push(Found {
                    place: Place::Python(key.to_owned(), name),
                    value: fact.value,
                });
            }
        }
        return Ok(());
    }
    let kind = kind.expect("checked above");
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let doc = keypath::document(kind, key, &text).map_err(|e| e.to_string())?;
    flatten(&doc, "", &mut |k, v| {
        out.push(Found {
            place: Place::Key(key.to_owned(), kind, k.to_owned()),
            value: v.clone(),
        });
    });
    Ok(())
}

/// Call `f` with every key path of `v` (objects only; lists are values) and its value.
pub fn flatten(v: &Value, prefix: &str, f: &mut dyn FnMut(&str, &Value)) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            if k.contains('.') {
                continue;
            }
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            f(&path, child);
            flatten(child, &path, f);
        }
    }
}

/// Read a checkpoint header-only, with the metadata plumbline finds beside it by default.
fn checkpoint(root: &Path, rel: &str) -> Checkpoint {
    let path = root.join(rel);
    let info =
        checkpoint::open_with(&path, &checkpoint::Reading::default()).and_then(|mut info| {
            let sidecars: Vec<String> = metadata::DEFAULT_SIDECARS
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            let keys = crate::config::CheckpointKeys::default();
            let search = keys.search(&sidecars);
            let snapshot = crate::snapshot::Snapshot::WorkTree;
            info.attach(&search, &|p: &Path| snapshot.read_if_exists(p))?;
            Ok(info)
        });
    match info {
        Ok(info) => {
            let mut values = Vec::new();
            let mut push = |file: &str, kind: Kind, tree: &Value| {
                flatten(tree, "", &mut |k, v| {
                    values.push(Found {
                        place: Place::Key(file.to_owned(), kind, k.to_owned()),
                        value: v.clone(),
                    });
                });
            };
            push(rel, Kind::Json, &info.tree);
            for layer in &info.metadata {
                push(&layer.display, Kind::Json, &layer.tree);
            }
            Checkpoint {
                rel: rel.to_owned(),
                info: Some(info),
                unreadable: None,
                values,
            }
        }
        Err(e) => Checkpoint {
            rel: rel.to_owned(),
            info: None,
            unreadable: Some(e.to_string()),
            values: Vec::new(),
        },
    }
}
