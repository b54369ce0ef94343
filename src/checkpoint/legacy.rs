//! Legacy torch.save files (torch < 1.6, or `_use_new_zipfile_serialization=False`): five pickles in
//! a row, then the raw storages. torch's `_legacy_load` reads
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c`, 2. the protocol version 1001, 3. `sys_info` (a dict),
//! 4. the object pickle, whose persistent ids are `('storage', class, key, location, numel, view)`,
//! 5. the list of storage keys, and then, for each key in that order, an 8-byte little-endian element
//!    count followed by the storage's bytes.
//!
//! Every pickle goes through the same allowlist as a zip archive's `data.pkl` (torch reads all five
//! with its weights-only unpickler). The storages are not read: each count is checked against the
//! pickle's and the data skipped, so the bytes read do not grow with the tensors.
//!
//! Also here: telling a plain pickle from a legacy file (the first pickle is not the magic number),
//! and reading plain pickle files (`.pkl`, `.pickle`).

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use super::archive;
use super::pickle::{self, Ids, Pickle, Prefix, Rules, Value};
use super::torch::{self, TorchArchive};
use crate::error::CheckpointError;

/// `torch.serialization.MAGIC_NUMBER`, as the decimal text the pickle reader gives big integers.
const MAGIC_NUMBER: &str = "119547037146038801333356";
const PROTOCOL_VERSION: i64 = 1001;

/// The pickles of a legacy file are kilobytes; refuse absurd ones (as for a zip's `data.pkl`).
const MAX_PICKLES_BYTES: u64 = 64 << 20;
/// The first read (the pickles of a state dict of a few dozen tensors); each further one reads four
/// times as much, while a pickle runs past the buffer.
const FIRST_READ: u64 = 4 << 10;

const NAMES: [&str; 5] = [
    "magic number",
    "protocol version",
    "sys_info",
    "objects",
    "storage keys",
];

/// `legacy pickle 4 (objects)`, as errors name the pickles.
fn name(i: usize) -> String {
    format!("legacy pickle {} ({})", i + 1, NAMES[i])
}

fn malformed(detail: impl Into<String>) -> CheckpointError {
    CheckpointError::malformed("legacy torch.save file", detail)
}

/// Read a file that does not start as a zip archive the way `torch.load` would: as a legacy
/// torch.save stream, naming a plain pickle as one.
pub fn read<R: Read + Seek>(mut reader: R, rules: Rules) -> Result<TorchArchive, CheckpointError> {
    let size = reader.seek(SeekFrom::End(0))?;
    let mut buf = Vec::new();
    let (pickles, data_start) = read_pickles(&mut reader, &mut buf, size, rules)?;
    if !is_magic(&pickles[0]) {
        return Err(CheckpointError::Unsupported(
            "a plain pickle, not a torch.save file: torch.load reads the first pickle of a non-zip file as the legacy magic number and stops at \"Invalid magic number\". Name it .pkl or .pickle to read it as a plain pickle".into(),
        ));
    }
    let declared: std::collections::BTreeSet<String> = pickles
        .iter()
        .flat_map(|p| p.declared.iter().cloned())
        .collect();
    let [_magic, protocol, _sys_info, objects, keys] = <[Pickle; 5]>::try_from(pickles)
        .unwrap_or_else(|_| unreachable!("five pickles follow the magic number"));
    if !matches!(protocol.root, Value::Int(PROTOCOL_VERSION)) {
        return Err(malformed(format!(
            "{} is not {PROTOCOL_VERSION} (torch stops at \"Invalid protocol version\")",
            name(1)
        )));
    }
    let keys = storage_keys(&keys)?;
    let (tree, tensors) = super::tree::build(&objects.root)?;
    let storages = torch::storages(&objects, &tensors)?;
    let data = Data {
        buf: &buf,
        size,
        start: data_start as u64,
    };
    check_data_section(&mut reader, &data, &keys, &storages)?;
    Ok(torch::archive_of(
        tree,
        tensors,
        declared.into_iter().collect(),
    ))
}

/// The pickles at the start of the file (five, or one when it is not the magic number: a plain
/// pickle, said by the caller) and the offset just after them. `buf` holds the bytes read so far.
fn read_pickles<R: Read + Seek>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    size: u64,
    rules: Rules,
) -> Result<(Vec<Pickle>, usize), CheckpointError> {
    // One decimal-conversion budget for the five pickles and every re-read of them.
    let decimal = Cell::new(pickle::MAX_DECIMAL_WORK);
    fill(reader, buf, FIRST_READ.min(size))?;
    let mut pickles: Vec<Pickle> = Vec::with_capacity(5);
    let mut at = 0usize;
    let plain = |pickles: &[Pickle]| pickles.len() == 1 && !is_magic(&pickles[0]);
    while pickles.len() < 5 && !plain(&pickles) {
        let i = pickles.len();
        // Only the object pickle may name storages: torch resolves persistent ids there alone.
        let ids = if i == 3 { Ids::Legacy } else { Ids::None };
        let entry = format!("legacy pickle {} ({}, from byte {at})", i + 1, NAMES[i]);
        let step = Rules {
            ids,
            decimal: Some(&decimal),
            ..rules
        };
        match pickle::read_prefix(&buf[at..], &entry, step) {
            Ok((p, len)) => {
                pickles.push(p);
                at += len;
            }
            Err(Prefix::Bad(e)) => return Err(e),
            // The pickle runs past what was read: read four times as much and parse it again
            // (the pickles before it stay parsed).
            Err(Prefix::Starved(e)) => read_more(reader, buf, size, e)?,
        }
    }
    Ok((pickles, at))
}

/// Four times as much of the file into `buf`, after a pickle ran past it (`starved`, the error
/// returned when the file has no more).
fn read_more<R: Read + Seek>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    size: u64,
    starved: CheckpointError,
) -> Result<(), CheckpointError> {
    let have = buf.len() as u64;
    if have >= size {
        return Err(starved);
    }
    if have >= MAX_PICKLES_BYTES {
        return Err(CheckpointError::Unsupported(format!(
            "the pickles of this legacy torch.save file run past {} MiB",
            MAX_PICKLES_BYTES >> 20
        )));
    }
    fill(reader, buf, (have * 4).min(size).min(MAX_PICKLES_BYTES))
}

/// Where the data section is: the file's first bytes (read already), its size, and the offset
/// after the pickles.
struct Data<'a> {
    buf: &'a [u8],
    size: u64,
    start: u64,
}

/// Check the data section against the object pickle's storages: per listed key, in order, an
/// element count equal to the pickle's, then the storage's bytes (skipped); every storage listed
/// once, and nothing after the last.
fn check_data_section<R: Read + Seek>(
    reader: &mut R,
    data: &Data,
    keys: &[String],
    storages: &HashMap<&str, (&str, u64)>,
) -> Result<(), CheckpointError> {
    let size = data.size;
    let mut at = data.start;
    let mut listed = HashMap::new();
    for key in keys {
        let Some(&(dtype, numel)) = storages.get(key.as_str()) else {
            return Err(malformed(format!(
                "{} lists storage {key:?}, which no persistent id names (torch stops at an AssertionError)",
                name(4)
            )));
        };
        if listed.insert(key.as_str(), ()).is_some() {
            return Err(malformed(format!(
                "{} lists storage {key:?} twice",
                name(4)
            )));
        }
        let count = element_count(reader, data, at, key)?;
        if u64::try_from(count) != Ok(numel) {
            return Err(malformed(format!(
                "storage {key:?}: the data section holds {count} elements at byte {at}, the pickle says {numel} (torch stops at \"storage has wrong byte size\")"
            )));
        }
        let item = pickle::dtype_size(dtype).unwrap_or(1);
        at = numel
            .checked_mul(item)
            .and_then(|n| n.checked_add(at + 8))
            .filter(|&end| end <= size)
            .ok_or_else(|| {
                malformed(format!(
                    "storage {key:?}: {numel} elements of {dtype} at byte {} run past the end of the file ({size} bytes)",
                    at + 8
                ))
            })?;
    }
    if let Some(key) = storages.keys().find(|k| !listed.contains_key(*k)) {
        return Err(malformed(format!(
            "storage {key:?} is named by a tensor but not listed in {} (torch would leave it uninitialised)",
            name(4)
        )));
    }
    if at != size {
        return Err(CheckpointError::Ambiguous(format!(
            "{} bytes follow the last storage at byte {at}: torch.load never reads them, another reader might",
            size - at
        )));
    }
    Ok(())
}

/// The 8-byte little-endian element count of storage `key` at byte `at` of the data section.
fn element_count<R: Read + Seek>(
    reader: &mut R,
    data: &Data,
    at: u64,
    key: &str,
) -> Result<i64, CheckpointError> {
    let size = data.size;
    let header = if at + 8 <= data.buf.len() as u64 {
        data.buf[at as usize..at as usize + 8].to_vec()
    } else if at + 8 <= size {
        archive::read_at(reader, at, 8)?
    } else {
        return Err(malformed(format!(
            "storage {key:?}: the file ends at byte {size}, before its element count at byte {at}"
        )));
    };
    Ok(i64::from_le_bytes(header.try_into().expect("8 bytes")))
}

/// Read the file's first `want` bytes into `buf` (which holds a prefix of them already).
fn fill<R: Read + Seek>(r: &mut R, buf: &mut Vec<u8>, want: u64) -> Result<(), CheckpointError> {
    let have = buf.len() as u64;
    if want <= have {
        return Ok(());
    }
    buf.extend(archive::read_at(r, have, want - have)?);
    Ok(())
}

fn is_magic(p: &Pickle) -> bool {
    matches!(&p.root, Value::BigInt(m) if &**m == MAGIC_NUMBER)
}

fn storage_keys(p: &Pickle) -> Result<Vec<String>, CheckpointError> {
    let Value::List(l) = &p.root else {
        return Err(malformed(format!("{} is not a list", name(4))));
    };
    l.borrow()
        .iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s.to_string()),
            _ => Err(malformed(format!(
                "{} holds a key that is not a string",
                name(4)
            ))),
        })
        .collect()
}

/// Whether the file starts with a tar header (torch's oldest layout) as Python's `tarfile` decides
/// it (`TarInfo.frombuf`): a 512-byte block, not all zero, whose checksum field (`nti`: base-256,
/// or octal text as `int(text.strip() or "0", 8)` reads it) equals the unsigned or signed sum of the
/// block with that field as spaces. torch tries tar first for any non-zip file, and refuses it under
/// `weights_only=True`; `weights_only=False` would run the tar's `pickle` member.
pub fn starts_as_tar<R: Read + Seek>(r: &mut R) -> Result<bool, CheckpointError> {
    let size = r.seek(SeekFrom::End(0))?;
    if size < 512 {
        return Ok(false);
    }
    let block = archive::read_at(r, 0, 512)?;
    if block.iter().all(|&b| b == 0) {
        return Ok(false);
    }
    let Some(chksum) = nti(&block[148..156]) else {
        return Ok(false);
    };
    let spaces = 8 * i128::from(b' ');
    let rest = || block[..148].iter().chain(&block[156..]);
    let unsigned: i128 = rest().map(|&b| i128::from(b)).sum::<i128>() + spaces;
    let signed: i128 = rest().map(|&b| i128::from(b as i8)).sum::<i128>() + spaces;
    Ok(chksum == unsigned || chksum == signed)
}

/// tarfile's `nti`: a numeric header field, or None where Python raises InvalidHeaderError.
fn nti(field: &[u8]) -> Option<i128> {
    if field[0] == 0o200 || field[0] == 0o377 {
        let mut n: i128 = 0;
        for &b in &field[1..] {
            n = (n << 8) + i128::from(b);
        }
        if field[0] == 0o377 {
            n -= 1i128 << (8 * (field.len() - 1));
        }
        return Some(n);
    }
    // nts: up to the first NUL, decoded as ASCII (strict).
    let text = field.split(|&b| b == 0).next().unwrap_or_default();
    if !text.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    // str.strip() of ASCII text: whitespace and the four information separators.
    let text = text.trim_matches(|c: char| {
        c.is_ascii_whitespace() || ('\x1c'..='\x1f').contains(&c) || c == '\x0b'
    });
    if text.is_empty() {
        return Some(0);
    }
    python_octal(text)
}

/// `int(text, 8)` for stripped ASCII text: a sign, an optional `0o`, octal digits with single
/// underscores between them (and after the prefix).
fn python_octal(text: &str) -> Option<i128> {
    let (negative, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let body = body
        .strip_prefix("0o")
        .or_else(|| body.strip_prefix("0O"))
        .map(|b| b.strip_prefix('_').unwrap_or(b))
        .unwrap_or(body);
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let mut n: i128 = 0;
    for c in body.chars().filter(|&c| c != '_') {
        let d = c.to_digit(8)?;
        n = n.checked_mul(8)?.checked_add(i128::from(d))?;
    }
    Some(if negative { -n } else { n })
}

/// A plain pickle file (`.pkl`, `.pickle`): one stream, the whole file, no persistent ids, the same
/// allowlist (and declared globals) as a checkpoint.
pub fn read_plain<R: Read + Seek>(
    mut reader: R,
    rules: Rules,
) -> Result<TorchArchive, CheckpointError> {
    let size = reader.seek(SeekFrom::End(0))?;
    if size > MAX_PICKLES_BYTES {
        return Err(CheckpointError::Unsupported(format!(
            "a plain pickle of {size} bytes; plumbline reads pickles up to {} MiB",
            MAX_PICKLES_BYTES >> 20
        )));
    }
    let data = archive::read_at(&mut reader, 0, size)?;
    let rules = Rules {
        ids: Ids::None,
        ..rules
    };
    let p = pickle::read_with(&data, "the pickle", rules)?;
    let (tree, tensors) = super::tree::build(&p.root)?;
    Ok(torch::archive_of(tree, tensors, p.declared.clone()))
}

#[cfg(test)]
mod tests {
    use super::{nti, python_octal};

    #[test]
    fn octal_text_reads_as_python_int_reads_it() {
        // Expected values from CPython 3.11's int(text, 8); None where it raises ValueError.
        for (text, want) in [
            ("0o17", Some(15)),
            ("+0o17", Some(15)),
            ("-17", Some(-15)),
            ("1_7", Some(15)),
            ("0o", None),
            ("_17", None),
            ("17_", None),
            ("1__7", None),
            ("0o_17", Some(15)),
            ("0O7", Some(7)),
            ("0_17", Some(15)),
            ("8", None),
            ("0x1", None),
            ("00", Some(0)),
            ("-0o_7", Some(-7)),
            ("o7", None),
        ] {
            assert_eq!(python_octal(text), want, "{text}");
        }
        assert_eq!(nti(b"0012064\0"), Some(0o12064));
        assert_eq!(nti(b"0o12064 "), Some(0o12064));
        assert_eq!(nti(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(nti(b"\x80\0\0\0\0\0\x01\x00"), Some(256));
        assert_eq!(nti(b"12 64\0\0\0"), None);
    }
}
