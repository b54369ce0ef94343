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
use super::legacy;
use super::pickle::{self, Ids, Pickle, Rules, TensorRef};
use super::tree::Tensors;
use super::{TensorInfo, Tree, tree};
use crate::error::CheckpointError;

/// The metadata pickle of a real checkpoint is kilobytes; refuse absurd ones instead of allocating them.
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Everything read from a torch archive.
pub struct TorchArchive {
    pub tree: Tree,
    /// Tensors in the order the pickle lists them (not trusted to mean anything: see `arch`).
    pub tensors: Vec<TensorInfo>,
    /// Declared safe globals the pickles referenced (`module.Name`, sorted).
    pub declared: Vec<String>,
}

pub fn read<R: Read + Seek>(mut reader: R, rules: Rules) -> Result<TorchArchive, CheckpointError> {
    // torch.serialization._is_zipfile: the first four bytes decide, nothing else.
    if !archive::starts_as_zip(&mut reader)? {
        if legacy::starts_as_tar(&mut reader)? {
            return Err(CheckpointError::Unsupported(
                "torch's legacy .tar layout (torch < 0.4), which torch.load refuses with weights_only=True: re-save it with a current torch".into(),
            ));
        }
        let read = legacy::read(&mut reader, rules);
        if let Err(e @ CheckpointError::UnsafeGlobal { .. }) = read {
            return Err(e);
        }
        // Legacy to torch, and an archive to a zip reader (burn-store's among them): whatever
        // the legacy stream says, the file is ambiguous. The look costs the last 64 KiB at most.
        if archive::ends_as_zip(&mut reader)? {
            return Err(CheckpointError::Ambiguous(
                "the file does not start as a zip archive but ends as one: torch.load reads what is in front (a legacy pickle or tar) and a zip reader the archive behind it".into(),
            ));
        }
        return read;
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
    let root = pickle::read_with(
        &data,
        &pkl_name,
        Rules {
            ids: Ids::Zip,
            ..rules
        },
    )?;
    let (tree, tensors) = tree::build(&root.root)?;
    storages(&root, &tensors)?;
    for t in &tensors {
        check_storage(&dir, t)?;
    }
    Ok(archive_of(tree, tensors, root.declared.clone()))
}

/// The tree, tensor table and declared globals referenced, as a [`TorchArchive`].
pub fn archive_of(tree: Tree, tensors: Tensors, declared: Vec<String>) -> TorchArchive {
    TorchArchive {
        tree,
        tensors: tensors
            .into_iter()
            .map(|(name, t)| TensorInfo {
                name,
                dtype: t.dtype.clone(),
                shape: t.shape.clone(),
            })
            .collect(),
        declared,
    }
}

/// Each storage key the pickle names, with the dtype and element count torch loads it as (the
/// first reference's). A later reference that disagrees, or two tensors with one name, would be
/// described differently here than they load there.
pub fn storages<'p>(
    pickle: &'p Pickle,
    tensors: &Tensors,
) -> Result<HashMap<&'p str, (&'p str, u64)>, CheckpointError> {
    let mut names: HashSet<&str> = HashSet::new();
    for (name, _) in tensors {
        if !names.insert(name) {
            return Err(CheckpointError::Ambiguous(format!(
                "two tensors are named `{name}` (dotted paths of different keys meet)"
            )));
        }
    }
    let mut out: HashMap<&str, (&str, u64)> = HashMap::new();
    for s in &pickle.storages {
        match out.get(s.key.as_str()) {
            None => {
                out.insert(&s.key, (&s.dtype, s.numel));
            }
            Some(&(dtype, _)) if dtype != s.dtype => {
                return Err(CheckpointError::Ambiguous(format!(
                    "storage {} is referenced as {dtype} and as {} (torch loads it once, as the first)",
                    s.key, s.dtype
                )));
            }
            Some(&(_, numel)) if numel != s.numel => {
                return Err(CheckpointError::Ambiguous(format!(
                    "storage {} is referenced with {numel} and with {} elements (torch loads it once, as the first)",
                    s.key, s.numel
                )));
            }
            Some(_) => {}
        }
    }
    Ok(out)
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
    let item = pickle::dtype_size(&t.storage_dtype).unwrap_or(1);
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
