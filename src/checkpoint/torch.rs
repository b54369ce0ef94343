//! PyTorch `torch.save` archives (`.pt`, `.pth`): a zip whose `<archive>/data.pkl` holds the object tree
//! and `<archive>/data/<key>` the raw storages. Only the central directory and `data.pkl` are read; the
//! storages are checked for presence and size against the central directory, never read.
//!
//! Why not burn's `pytorch-reader`: it hands back values after its own unpickling, while plumbline must
//! refuse a file on the pickle's *global references* (GLOBAL, STACK_GLOBAL, INST opcodes) before
//! anything interprets values, and must keep reading metadata when no tensor framework is compiled in.
//! See docs/checkpoint-metadata.md, "How plumbline reads a checkpoint".

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek};
use std::rc::Rc;

use super::archive::{self, Directory};
use super::pickle::{self, TensorRef, Value};
use super::{TensorInfo, Tree};
use crate::error::CheckpointError;

/// The metadata pickle of a real checkpoint is kilobytes; refuse absurd ones instead of allocating them.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Everything read from a torch archive.
pub struct TorchArchive {
    pub tree: Tree,
    /// Tensors in the order the pickle lists them (not trusted to mean anything: see `arch`).
    pub tensors: Vec<TensorInfo>,
}

pub fn read<R: Read + Seek>(mut reader: R) -> Result<TorchArchive, CheckpointError> {
    // torch.serialization._is_zipfile: the first four bytes decide, nothing else.
    if !archive::starts_as_zip(&mut reader)? {
        if archive::has_end_record(&mut reader)? {
            return Err(CheckpointError::Ambiguous(
                "the file does not start as a zip archive but ends as one: torch.load reads what is in front (a legacy pickle or tar) and a zip reader the archive behind it".into(),
            ));
        }
        return Err(CheckpointError::Unsupported(
            "not a zip archive at offset 0, so torch.load would read it as a legacy (pre-1.6, non-zip) torch.save file, which plumbline does not read".into(),
        ));
    }
    let dir = archive::read_directory(&mut reader)?;
    // torch.load hands an archive with `constants.pkl` to torch.jit.load, which compiles and runs the
    // TorchScript code in it: nothing plumbline reads from `data.pkl` describes what would run.
    if let Some(e) = dir.record("constants.pkl") {
        return Err(CheckpointError::Unsupported(format!(
            "{} makes this a TorchScript archive, which torch.load passes to torch.jit.load (code runs at load time); plumbline reads torch.save archives only",
            e.name
        )));
    }
    if dir.record("version").is_none() && dir.record(".data/version").is_none() {
        return Err(CheckpointError::malformed(
            "torch archive",
            format!(
                "no {0}/version or {0}/.data/version record (torch refuses such an archive)",
                dir.archive_name
            ),
        ));
    }
    let pkl = dir.record("data.pkl").ok_or_else(|| {
        CheckpointError::malformed(
            "torch archive",
            format!("no {}/data.pkl entry", dir.archive_name),
        )
    })?;
    let pkl_name = pkl.name.clone();
    let data = dir.read_entry(&mut reader, pkl, MAX_PICKLE_BYTES)?;
    let root = pickle::read(&data, &pkl_name)?;
    let mut tensors = Vec::new();
    let tree = to_tree(
        &root.root,
        &mut Vec::new(),
        &mut tensors,
        &mut Budget::new(),
    )?;
    // torch loads a storage key once, with the dtype of its first reference; a later reference with
    // another dtype would be described differently here than it loads there.
    let mut storages: HashMap<&str, &str> = HashMap::new();
    let mut names: HashSet<&str> = HashSet::new();
    for t in &tensors {
        check_storage(&dir, t)?;
        let (name, r) = t;
        if !names.insert(name) {
            return Err(CheckpointError::Ambiguous(format!(
                "two tensors are named `{name}` (dotted paths of different keys meet)"
            )));
        }
        if let Some(first) = storages.insert(&r.storage_key, &r.dtype)
            && first != r.dtype
        {
            return Err(CheckpointError::Ambiguous(format!(
                "storage {} is referenced as {first} and as {} (torch loads it once, as the first)",
                r.storage_key, r.dtype
            )));
        }
    }
    Ok(TorchArchive {
        tree,
        tensors: tensors
            .into_iter()
            .map(|(name, t)| TensorInfo {
                name,
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
            })
            .collect(),
    })
}

/// The storage a tensor points at must exist and have exactly the size its header promises: a truncated or hand-edited archive
/// is caught here without reading tensor bytes (the central directory has the sizes).
fn check_storage(
    dir: &Directory,
    (name, t): &(String, Rc<TensorRef>),
) -> Result<(), CheckpointError> {
    let record = format!("data/{}", t.storage_key);
    let entry = dir.record(&record).ok_or_else(|| {
        CheckpointError::malformed(
            "torch archive",
            format!(
                "tensor `{name}`: storage entry {}/{record} is missing",
                dir.archive_name
            ),
        )
    })?;
    let item = pickle::dtype_size(&t.dtype).unwrap_or(1);
    let need = t.storage_numel.saturating_mul(item);
    // torch.load refuses a record whose size differs from numel × element size, so plumbline does too.
    if entry.size != need {
        return Err(CheckpointError::malformed(
            "torch archive",
            format!(
                "tensor `{name}`: storage {} holds {} bytes, its header promises {need}",
                entry.name, entry.size
            ),
        ));
    }
    Ok(())
}

/// Limits on the JSON tree built from a pickle. Shared references let a small pickle describe a huge
/// tree (a list holding itself twice, twenty levels deep); these stop that before memory does.
struct Budget {
    nodes: u64,
    bytes: u64,
}

impl Budget {
    fn new() -> Self {
        Budget {
            nodes: 1_000_000,
            bytes: 256 << 20,
        }
    }

    fn charge(&mut self, nodes: u64, bytes: u64) -> Result<(), CheckpointError> {
        let limit = |what: &str| {
            Err(CheckpointError::Unsupported(format!(
                "the pickle's object tree expands to more than {what}"
            )))
        };
        if nodes > self.nodes {
            return limit("1,000,000 nodes");
        }
        if bytes > self.bytes {
            return limit("256 MiB of text");
        }
        self.nodes -= nodes;
        self.bytes -= bytes;
        Ok(())
    }
}

const MAX_DEPTH: usize = 128;

type Tensors = Vec<(String, Rc<TensorRef>)>;

/// Convert the symbolic pickle value into a JSON tree. Tensors become `{"$tensor": {dtype, shape}}` nodes
/// and are listed with their dotted path.
fn to_tree(
    v: &Value,
    path: &mut Vec<String>,
    tensors: &mut Tensors,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    budget.charge(1, 0)?;
    if path.len() > MAX_DEPTH {
        return Err(CheckpointError::Unsupported(format!(
            "the pickle's object tree is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(match v {
        Value::None => Tree::Null,
        Value::Bool(b) => Tree::Bool(*b),
        Value::Int(i) => Tree::from(*i),
        Value::BigInt(s) | Value::Str(s) => {
            budget.charge(0, s.len() as u64)?;
            Tree::String(s.to_string())
        }
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Tree::Number)
            .unwrap_or_else(|| Tree::String(f.to_string())),
        Value::Bytes(b) => Tree::String(format!("<{} bytes>", b.len())),
        Value::List(l) => seq(&l.borrow(), path, tensors, budget)?,
        Value::Tuple(t) => seq(t, path, tensors, budget)?,
        Value::Set(s) => seq(&s.borrow(), path, tensors, budget)?,
        Value::Dict(d) => {
            let mut map = serde_json::Map::new();
            // Python's identity of a key: True is 1 and False is 0 to a dict.
            let mut python_keys = HashSet::new();
            for (k, v) in d.borrow().iter() {
                let python_key = match k {
                    Value::Bool(b) => Some(i64::from(*b)),
                    Value::Int(i) => Some(*i),
                    _ => None,
                };
                if let Some(i) = python_key
                    && !python_keys.insert(i)
                {
                    let why = if matches!(k, Value::Bool(_)) {
                        " (True is 1 and False is 0 to Python)"
                    } else {
                        ""
                    };
                    return Err(CheckpointError::Ambiguous(format!(
                        "the key `{i}` is set twice in the dict at `{}`{why}",
                        path.join(".")
                    )));
                }
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(CheckpointError::Unsupported(format!(
                            "dict key that is not a string or int at `{}`",
                            path.join(".")
                        )));
                    }
                };
                budget.charge(0, key.len() as u64)?;
                path.push(key.clone());
                let child = to_tree(v, path, tensors, budget)?;
                path.pop();
                // Python keeps the last of a key set twice (and 1 and True are one key to it); a
                // tensor table built from both would not be what loads. torch.save never writes it.
                if map.insert(key.clone(), child).is_some() {
                    return Err(CheckpointError::Ambiguous(format!(
                        "the key `{key}` is set twice in the dict at `{}`",
                        path.join(".")
                    )));
                }
            }
            Tree::Object(map)
        }
        Value::Tensor(t) => {
            let name = path.join(".");
            // Each reference writes the shape again: charge it, or a memoized tensor with a huge
            // shape referenced many times would expand without bound.
            budget.charge(t.shape.len() as u64, name.len() as u64)?;
            tensors.push((name, t.clone()));
            serde_json::json!({"$tensor": {"dtype": t.dtype, "shape": t.shape}})
        }
        Value::Global(g) => Tree::String(format!("<{}.{}>", g.0, g.1)),
        Value::Storage(_) => Tree::String("<storage>".into()),
        Value::Opaque(name) => Tree::String(format!("<{name}(...)>")),
        Value::Mark => {
            return Err(CheckpointError::malformed(
                "pickle",
                "a MARK was left in the object tree",
            ));
        }
    })
}

fn seq(
    items: &[Value],
    path: &mut Vec<String>,
    tensors: &mut Vec<(String, std::rc::Rc<TensorRef>)>,
    budget: &mut Budget,
) -> Result<Tree, CheckpointError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        path.push(i.to_string());
        out.push(to_tree(v, path, tensors, budget)?);
        path.pop();
    }
    Ok(Tree::Array(out))
}
