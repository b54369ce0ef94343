use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example() -> PathBuf {
    repo().join("examples/momentum")
}

pub fn production_pt() -> PathBuf {
    example().join("checkpoints/momentum_v3.pt")
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// Run the built binary in `cwd`.
pub fn plumbline(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plumbline"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run plumbline")
}

/// `plumbline derive` in `cwd` as JSON; it must succeed.
pub fn derive_json(cwd: &Path) -> serde_json::Value {
    let out = plumbline(cwd, &["derive"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copy the example pipeline (without its data) into a fresh temp dir; returns (guard, path).
pub fn example_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("momentum");
    // `artifacts/` is what earlier runs wrote there (git ignores it): a test starts without it.
    copy_tree(
        &example(),
        &dst,
        &["__pycache__", "prices.csv", "artifacts"],
    );
    (dir, dst)
}

/// Copy `src` to `dst`, leaving out every file or directory named in `skip`, at any depth.
pub fn copy_tree(src: &Path, dst: &Path, skip: &[&str]) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        if from.is_dir() {
            copy_tree(&from, &to, skip)
        } else {
            std::fs::copy(&from, &to).map(|_| ()).unwrap()
        }
    }
}

/// One entry of a stored (uncompressed) zip: either bytes, or a hole of `len` zero bytes left sparse.
pub enum Entry<'a> {
    Bytes(&'a str, &'a [u8]),
    Hole(&'a str, u64),
}

/// Write a stored zip the way torch.save lays one out. Holes are skipped with a seek (sparse on file
/// systems that support it); their CRC is written as the CRC of zeros only for small holes, since no
/// reader under test reads them.
pub fn write_zip(path: &Path, entries: &[Entry]) {
    write_zip_to(&mut File::create(path).unwrap(), entries);
}

/// A stored zip in memory.
pub fn zip_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    write_zip_to(&mut c, entries);
    c.into_inner()
}

fn write_zip_to<W: Write + Seek>(f: &mut W, entries: &[Entry]) {
    let mut central = Vec::new();
    let mut count = 0u16;
    for e in entries {
        let (name, len, crc) = match e {
            Entry::Bytes(n, b) => (*n, b.len() as u64, crc32fast::hash(b)),
            Entry::Hole(n, len) => (*n, *len, 0),
        };
        assert!(len < u32::MAX as u64, "test zips stay below zip64");
        let offset = f.stream_position().unwrap() as u32;
        let mut h = Vec::new();
        h.extend_from_slice(&0x04034b50u32.to_le_bytes());
        h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method=stored, time, date
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&(len as u32).to_le_bytes());
        h.extend_from_slice(&(len as u32).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        f.write_all(&h).unwrap();
        match e {
            Entry::Bytes(_, b) => f.write_all(b).unwrap(),
            Entry::Hole(_, len) => {
                f.seek(SeekFrom::Current(*len as i64)).unwrap();
            }
        }
        let mut c = Vec::new();
        c.extend_from_slice(&0x02014b50u32.to_le_bytes());
        c.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(len as u32).to_le_bytes());
        c.extend_from_slice(&(len as u32).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 12]); // extra, comment, disk, internal attrs, external attrs
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&c);
        count += 1;
    }
    let cd_offset = f.stream_position().unwrap() as u32;
    f.write_all(&central).unwrap();
    let mut eocd = Vec::new();
    eocd.extend_from_slice(&0x06054b50u32.to_le_bytes());
    eocd.extend_from_slice(&[0, 0, 0, 0]);
    eocd.extend_from_slice(&count.to_le_bytes());
    eocd.extend_from_slice(&count.to_le_bytes());
    eocd.extend_from_slice(&(central.len() as u32).to_le_bytes());
    eocd.extend_from_slice(&cd_offset.to_le_bytes());
    eocd.extend_from_slice(&0u16.to_le_bytes());
    f.write_all(&eocd).unwrap();
}

/// The `data.pkl` bytes of a real torch checkpoint (read with the zip crate, as the reader does).
pub fn data_pkl(pt: &Path) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(File::open(pt).unwrap()).unwrap();
    let name = z
        .file_names()
        .map(|n| n.unwrap().into_owned())
        .find(|n| n.ends_with("/data.pkl"))
        .unwrap();
    let mut buf = Vec::new();
    z.by_name(&name).unwrap().read_to_end(&mut buf).unwrap();
    (name, buf)
}

/// A pickle string push (SHORT_BINUNICODE / BINUNICODE).
pub fn pstr(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    if s.len() < 256 {
        v.push(0x8c);
        v.push(s.len() as u8);
    } else {
        v.push(b'X');
        v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    v.extend_from_slice(s.as_bytes());
    v
}

/// A BINUNICODE string push, the protocol-2 string opcode torch.save writes.
pub fn xstr(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

/// Wrap a pickle as `archive/data.pkl` of a torch-style zip.
pub fn torch_zip(path: &Path, pickle: &[u8]) {
    write_zip(
        path,
        &[
            Entry::Bytes("archive/data.pkl", pickle),
            Entry::Bytes("archive/version", b"3\n"),
        ],
    );
}

/// A torch.save-layout checkpoint holding one float32 tensor of `numel` elements (`state_dict.w`, shape
/// `[numel]`) and a little metadata, its storage written as a hole: a 500 MB checkpoint costs a few KB of
/// disk. The pickle is what torch.save writes for `{"state_dict": {"w": t}, "input_dim": 14}` (protocol 2,
/// persistent id `('storage', torch.FloatStorage, '0', 'cpu', numel)`); torch.load reads these files.
pub fn synthetic_torch(path: &Path, numel: u32) {
    let mut p = b"\x80\x02}(".to_vec();
    p.extend(xstr("state_dict"));
    p.extend(b"}(");
    p.extend(xstr("w"));
    p.extend(float_tensor(numel, false));
    p.extend(b"u");
    p.extend(xstr("input_dim"));
    p.extend(b"K\x0eu.");
    write_zip(
        path,
        &[
            Entry::Bytes("archive/data.pkl", &p),
            Entry::Hole("archive/data/0", u64::from(numel) * 4),
            Entry::Bytes("archive/version", b"3\n"),
        ],
    );
}

/// The pickle of a float32 tensor of `numel` elements on storage `'0'`, as torch.save writes it:
/// `_rebuild_tensor_v2(<persistent id>, 0, (numel,), (1,), False, OrderedDict())`. A legacy file's
/// persistent id has a sixth item, the view (None).
pub fn float_tensor(numel: u32, legacy: bool) -> Vec<u8> {
    let mut p = b"ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
    p.extend(xstr("storage"));
    p.extend(b"ctorch\nFloatStorage\n");
    p.extend(xstr("0"));
    p.extend(xstr("cpu"));
    p.push(b'J');
    p.extend_from_slice(&numel.to_le_bytes());
    if legacy {
        p.push(b'N');
    }
    p.extend(b"tQK\x00J");
    p.extend_from_slice(&numel.to_le_bytes());
    p.extend(b"\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR");
    p
}

/// Write the example's safetensors twin to `dst` with its header (tensor entries and `__metadata__`)
/// and its data bytes changed by `edit`.
pub fn safetensors_rewrite(
    dst: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>, &mut Vec<u8>),
) {
    let real = std::fs::read(example().join("checkpoints/momentum_v3.safetensors")).unwrap();
    let n = u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&real[8..8 + n]).unwrap();
    let mut data = real[8 + n..].to_vec();
    edit(&mut header, &mut data);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&data);
    std::fs::write(dst, out).unwrap();
}

/// Write the example's safetensors twin to `dst` with its `__metadata__` changed by `edit` (values
/// given decoded; written back JSON-encoded, as training code writes them). Tensors are unchanged.
pub fn safetensors_variant(
    dst: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    safetensors_rewrite(dst, |header, _| {
        let meta = header
            .get_mut("__metadata__")
            .unwrap()
            .as_object_mut()
            .unwrap();
        let mut decoded: serde_json::Map<String, serde_json::Value> = meta
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::from_str(v.as_str().unwrap()).unwrap(),
                )
            })
            .collect();
        edit(&mut decoded);
        *meta = decoded
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v.to_string())))
            .collect();
    });
}

/// Whether `python3` can run. Tests that compare against Python skip without it on a developer
/// machine; with `CI` set its absence fails them, so CI never passes by skipping.
pub fn python3_or_skip(what: &str) -> bool {
    let present = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        present || std::env::var("CI").is_err(),
        "python3 is required in CI for {what}"
    );
    present
}

/// Replace the first `from` in a file (which must contain it).
pub fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// Point the copied example's `[model] engine` at the pipeline's own inference code (the command engine,
/// docs/commands.md) through `tests/fixtures/commands/scaled_engine.py`.
pub fn use_command_engine(ex: &Path) {
    let script = repo().join("tests/fixtures/commands/scaled_engine.py");
    let engine = format!(
        "engine = {{ argv = [\"python3\", {:?}, \"backtest/infer.py\", \"checkpoints/momentum_v3.safetensors\", \"{{inputs}}\", \"{{out}}\"] }}",
        script.to_string_lossy()
    );
    let anchor = "heads = { python = \"pipeline/model.py\", name = \"HEADS\" }\n";
    replace_in(
        &ex.join("plumbline.toml"),
        anchor,
        &format!("{anchor}{engine}\n"),
    );
}

/// Keep the first `rows` data rows of the copied example's slice.
pub fn cut_slice(ex: &Path, rows: usize) {
    let slice = ex.join("data/slice.csv");
    let text = std::fs::read_to_string(&slice).unwrap();
    let cut: Vec<&str> = text.lines().take(rows + 1).collect();
    std::fs::write(&slice, cut.join("\n") + "\n").unwrap();
}

/// A JSON list of numbers (the PyTorch references' rows, outputs and attributions).
#[cfg(feature = "native")]
pub fn numbers(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}
