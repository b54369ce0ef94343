//! Header-only reads: the bytes read do not depend on tensor sizes. A reader that counts every byte
//! handed out proves it on a 2 MB and a 500 MB checkpoint (the large one sparse, built here).

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use crate::util::{Entry, data_pkl, production_pt, write_zip};

struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

const MIB: u64 = 1 << 20;

/// The production checkpoint's entries, with its first storage grown to `storage_bytes` (a hole).
fn torch_of_size(path: &Path, storage_bytes: u64) {
    let mut z = zip::ZipArchive::new(File::open(production_pt()).unwrap()).unwrap();
    let (pkl_name, pkl) = data_pkl(&production_pt());
    let prefix = pkl_name.trim_end_matches("data.pkl").to_owned();
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        owned.push((name, b));
    }
    let big = format!("{prefix}data/0");
    let mut entries: Vec<Entry> = Vec::new();
    for (name, bytes) in &owned {
        if *name == big {
            entries.push(Entry::Hole(&big, storage_bytes));
        } else if *name == pkl_name {
            entries.push(Entry::Bytes(&pkl_name, &pkl));
        } else {
            entries.push(Entry::Bytes(name, bytes));
        }
    }
    write_zip(path, &entries);
}

fn safetensors_of_size(path: &Path, data_bytes: u64) {
    let real =
        std::fs::read(crate::util::example().join("checkpoints/momentum_v3.safetensors")).unwrap();
    let n = u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
    let mut f = File::create(path).unwrap();
    f.write_all(&real[..8 + n]).unwrap();
    f.set_len((8 + n) as u64 + data_bytes).unwrap();
}

fn count_torch(path: &Path) -> u64 {
    let read = Rc::new(Cell::new(0));
    let r = Counting {
        inner: File::open(path).unwrap(),
        read: read.clone(),
    };
    let a = plumbline::checkpoint::torch::read(r).unwrap();
    assert_eq!(a.tensors.len(), 8);
    read.get()
}

fn count_safetensors(path: &Path) -> u64 {
    let read = Rc::new(Cell::new(0));
    let r = Counting {
        inner: File::open(path).unwrap(),
        read: read.clone(),
    };
    let s = plumbline::checkpoint::safetensors::read(r).unwrap();
    assert_eq!(s.tensors.len(), 8);
    read.get()
}

#[test]
fn torch_reads_under_1_mib_from_2_mb_and_500_mb() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.pt");
    let large = dir.path().join("large.pt");
    torch_of_size(&small, 2 * 1_000_000);
    torch_of_size(&large, 500 * 1_000_000);
    assert!(std::fs::metadata(&large).unwrap().len() > 500 * 1_000_000);
    let (a, b) = (count_torch(&small), count_torch(&large));
    assert!(a < MIB && b < MIB, "read {a} and {b} bytes");
    // Same entries, same pickle: the bytes read do not grow with the file.
    assert_eq!(a, b, "bytes read depend on the file size");
}

#[test]
fn safetensors_reads_under_1_mib_from_2_mb_and_500_mb() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.safetensors");
    let large = dir.path().join("large.safetensors");
    safetensors_of_size(&small, 2 * 1_000_000);
    safetensors_of_size(&large, 500 * 1_000_000);
    let (a, b) = (count_safetensors(&small), count_safetensors(&large));
    assert!(a < MIB && b < MIB, "read {a} and {b} bytes");
    assert_eq!(a, b);
}
