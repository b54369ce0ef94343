//! The zip container of a `torch.save` archive, read the way torch reads it, and refused wherever torch
//! could read it differently from plumbline.
//!
//! torch decides "zip or legacy" from the four bytes at offset 0 (`torch.serialization._is_zipfile`:
//! `PK\x03\x04` exactly), then hands the file to miniz (`caffe2/serialize/inline_container.cc`): the
//! archive name is the first central-directory entry's folder, and records are looked up with
//! `mz_zip_reader_locate_file(…, flags = 0)`, which compares names case-insensitively and returns the
//! first match. A general zip reader (the `zip` crate) differs on each point: it finds an archive
//! wherever its end record is (a legacy pickle with a zip appended), keeps the *last* of two entries with
//! the same name, and matches names case-sensitively. Each difference hid a pickle from plumbline while
//! `torch.load` ran it, so this reader follows torch and refuses what is ambiguous:
//!
//! - the file starts with a local header at offset 0 and the central directory ends exactly where the
//!   end records begin (nothing prepended, nothing between);
//! - no two entries share a name, compared as miniz compares them (ASCII case-insensitively);
//! - every entry's range (local header, name, data, data descriptor) lies before the central directory
//!   and overlaps no other entry's;
//! - the local header of each entry read (`data.pkl`) agrees with its central-directory record (name,
//!   method, and — without a data descriptor — CRC and sizes), and its CRC-32 matches its bytes (unless
//!   it is 0: torch.save with `compute_crc32` off writes 0, and torch's reader checks no CRC).
//!
//! All of it is decided from the end records, the central directory and the entries read anyway, so the
//! bytes read stay independent of tensor sizes (docs/checkpoint-metadata.md, "How plumbline reads a
//! checkpoint").

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use crate::error::CheckpointError;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_LEN: u64 = 22;
const LOCAL_LEN: u64 = 30;
/// The smallest data descriptor (CRC and two 32-bit sizes, no signature).
const MIN_DESCRIPTOR_LEN: u64 = 12;
/// A central directory of a million tensors is ~80 MB; beyond this the file is hostile, not a model.
const MAX_CENTRAL_DIRECTORY: u64 = 256 << 20;

/// The four bytes torch checks at offset 0.
pub const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// One central-directory record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    flags: u16,
    method: u16,
    crc32: u32,
    pub compressed_size: u64,
    pub size: u64,
    local_offset: u64,
    /// Where the next entry (or the central directory) begins: the end of this entry's range.
    range_end: u64,
}

impl Entry {
    /// The least the data descriptor after the data takes (bit 3 of the flags says there is one).
    fn descriptor_len(&self) -> u64 {
        if self.flags & 0x0008 != 0 {
            MIN_DESCRIPTOR_LEN
        } else {
            0
        }
    }
}

/// The central directory of a torch archive, validated.
#[derive(Debug)]
pub struct Directory {
    pub entries: Vec<Entry>,
    /// ASCII-lowercased name → index, the lookup miniz does with flags 0.
    by_folded_name: HashMap<String, usize>,
    /// The folder of the first entry: torch's `archive_name_`.
    pub archive_name: String,
}

fn bad(detail: impl Into<String>) -> CheckpointError {
    CheckpointError::malformed("torch archive", detail)
}

fn ambiguous(detail: impl Into<String>) -> CheckpointError {
    CheckpointError::Ambiguous(detail.into())
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(super) fn read_at<R: Read + Seek>(
    r: &mut R,
    at: u64,
    len: u64,
) -> Result<Vec<u8>, CheckpointError> {
    r.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| bad("length overflows"))?];
    r.read_exact(&mut buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            bad(format!(
                "{len} bytes at offset {at} run past the end of the file"
            ))
        } else {
            CheckpointError::Io(e)
        }
    })?;
    Ok(buf)
}

/// Whether the first four bytes are a zip local header: torch's own test for "zip, not legacy".
pub fn starts_as_zip<R: Read + Seek>(r: &mut R) -> Result<bool, CheckpointError> {
    r.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut magic[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got == 4 && &magic == ZIP_MAGIC)
}

/// Whether a zip reader would find an archive at the end of the file, as Python's `zipfile` looks
/// for one: the end record nearest the end (within its 64 KiB comment window), whose central
/// directory, `size` bytes right before it, starts with a central directory header (or is empty).
/// For a file that does not start as a zip, a sign that an archive was appended to something
/// else (a polyglot). A stray end-record signature inside tensor data does not count.
pub fn ends_as_zip<R: Read + Seek>(r: &mut R) -> Result<bool, CheckpointError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let Some(at) = last_end_signature(r, file_len)? else {
        return Ok(false);
    };
    let rec = read_at(r, at, EOCD_LEN)?;
    let (mut entries, mut cd_size) = (u64::from(le16(&rec, 10)), u64::from(le32(&rec, 12)));
    // zipfile's _EndRecData64: a zip64 locator right before the end record puts the zip64 end
    // record (56 bytes) before it, and the central directory before that, with the zip64 sizes.
    let mut cd_end = at;
    if at >= 20 + 56 {
        let locator = read_at(r, at - 20, 20)?;
        if le32(&locator, 0) == ZIP64_LOCATOR_SIG {
            let rec64 = read_at(r, at - 20 - 56, 56)?;
            if le32(&rec64, 0) != ZIP64_EOCD_SIG {
                return Ok(false);
            }
            entries = le64(&rec64, 32);
            cd_size = le64(&rec64, 40);
            cd_end = at - 20 - 56;
        }
    }
    if cd_size == 0 {
        return Ok(entries == 0);
    }
    if cd_size > cd_end {
        return Ok(false);
    }
    let head = read_at(r, cd_end - cd_size, 4)?;
    Ok(le32(&head, 0) == CENTRAL_SIG)
}

/// The position of the end-record signature nearest the end of the file, within the 22 bytes of the
/// record and the 65535 of its comment (as miniz searches). torch writes no comment, so the last KiB
/// is read first and the whole window only when that finds nothing: two small reads at most.
fn last_end_signature<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Option<u64>, CheckpointError> {
    let sig = EOCD_SIG.to_le_bytes();
    for window in [1024, EOCD_LEN + 0xffff] {
        let tail_len = file_len.min(window);
        if tail_len < EOCD_LEN {
            return Ok(None);
        }
        let tail_start = file_len - tail_len;
        let tail = read_at(r, tail_start, tail_len)?;
        if let Some(at) = (0..=tail.len() - EOCD_LEN as usize)
            .rev()
            .find(|&i| tail[i..i + 4] == sig)
        {
            return Ok(Some(tail_start + at as u64));
        }
        if tail_len == file_len {
            break;
        }
    }
    Ok(None)
}

/// Where the end of central directory record is, and what it says (zip64 where it applies).
struct End {
    entries: u64,
    cd_size: u64,
    cd_offset: u64,
    /// Where the central directory must end: the zip64 end record if there is one, else the end record.
    cd_must_end_at: u64,
}

/// The end records of the file: where the central directory is and how many entries it holds,
/// checked to end exactly where the end records begin.
fn find_end<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<End, CheckpointError> {
    let (mut end, eocd_pos) = end_record(r, file_len)?;
    // A zip64 locator sits right before the end record when one exists (torch writes one always).
    if eocd_pos >= 20 {
        let loc = read_at(r, eocd_pos - 20, 20)?;
        if le32(&loc, 0) == ZIP64_LOCATOR_SIG {
            apply_zip64(r, &mut end, &loc, eocd_pos)?;
        }
    }
    if end.cd_offset.checked_add(end.cd_size) != Some(end.cd_must_end_at) {
        return Err(ambiguous(format!(
            "the central directory ({} bytes at offset {}) does not end where the end records begin (offset {}): bytes were prepended, inserted or the offset is corrupt",
            end.cd_size, end.cd_offset, end.cd_must_end_at
        )));
    }
    if end.cd_size > MAX_CENTRAL_DIRECTORY {
        return Err(CheckpointError::Unsupported(format!(
            "a central directory of {} bytes (limit {MAX_CENTRAL_DIRECTORY})",
            end.cd_size
        )));
    }
    Ok(end)
}

/// The end of central directory record (its 32-bit fields) and its position: the last bytes of the
/// file, nothing after its comment, on one disk.
fn end_record<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<(End, u64), CheckpointError> {
    if file_len < EOCD_LEN {
        return Err(bad(format!(
            "{file_len} bytes: too short for a zip end record"
        )));
    }
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes; like miniz, take the
    // signature nearest the end.
    let eocd_pos = last_end_signature(r, file_len)?
        .ok_or_else(|| bad("no end of central directory record"))?;
    let eocd = read_at(r, eocd_pos, EOCD_LEN)?;
    let eocd = &eocd[..];
    let comment_len = u64::from(le16(eocd, 20));
    if eocd_pos + EOCD_LEN + comment_len > file_len {
        return Err(bad(format!(
            "the end record's {comment_len}-byte comment runs past the end of the file (truncated)"
        )));
    }
    if eocd_pos + EOCD_LEN + comment_len != file_len {
        return Err(ambiguous(format!(
            "{} bytes follow the end of central directory record (a zip with something appended)",
            file_len - eocd_pos - EOCD_LEN
        )));
    }
    let (disk, cd_disk) = (le16(eocd, 4), le16(eocd, 6));
    let (on_disk, total) = (le16(eocd, 8), le16(eocd, 10));
    if disk != 0 || cd_disk != 0 || on_disk != total {
        return Err(bad("a multi-disk (split) zip archive"));
    }
    let end = End {
        entries: u64::from(total),
        cd_size: u64::from(le32(eocd, 12)),
        cd_offset: u64::from(le32(eocd, 16)),
        cd_must_end_at: eocd_pos,
    };
    Ok((end, eocd_pos))
}

/// `end` with the zip64 end record's fields, which the locator `loc` (right before the end record
/// at `eocd_pos`) points at: checked to lie before it, on one disk, and to agree with the end record.
fn apply_zip64<R: Read + Seek>(
    r: &mut R,
    end: &mut End,
    loc: &[u8],
    eocd_pos: u64,
) -> Result<(), CheckpointError> {
    let (loc_disk, total_disks) = (le32(loc, 4), le32(loc, 16));
    let rec_pos = le64(loc, 8);
    if loc_disk != 0 || total_disks > 1 {
        return Err(bad("a multi-disk (split) zip64 archive"));
    }
    if rec_pos.checked_add(56).is_none_or(|e| e > eocd_pos - 20) {
        return Err(bad(format!(
            "the zip64 end record offset {rec_pos} does not lie before its locator"
        )));
    }
    let rec = read_at(r, rec_pos, 56)?;
    if le32(&rec, 0) != ZIP64_EOCD_SIG {
        return Err(bad(format!("no zip64 end record at offset {rec_pos}")));
    }
    let rec_size = le64(&rec, 4);
    if rec_pos
        .checked_add(12)
        .and_then(|p| p.checked_add(rec_size))
        != Some(eocd_pos - 20)
    {
        return Err(bad("the zip64 end record does not end at its locator"));
    }
    let (disk, cd_disk) = (le32(&rec, 16), le32(&rec, 20));
    let (on_disk, total) = (le64(&rec, 24), le64(&rec, 32));
    if disk != 0 || cd_disk != 0 || on_disk != total {
        return Err(bad("a multi-disk (split) zip64 archive"));
    }
    // The 32-bit fields either agree with the zip64 ones or say "see zip64" (all ones).
    let agrees = |short: u64, long: u64, max: u64| short == long || short == max;
    if !agrees(end.entries, total, 0xffff)
        || !agrees(end.cd_size, le64(&rec, 40), 0xffff_ffff)
        || !agrees(end.cd_offset, le64(&rec, 48), 0xffff_ffff)
    {
        return Err(bad("the zip64 end record disagrees with the end record"));
    }
    end.entries = total;
    end.cd_size = le64(&rec, 40);
    end.cd_offset = le64(&rec, 48);
    end.cd_must_end_at = rec_pos;
    Ok(())
}

/// Read and validate the central directory. The file must start with a zip local header (see
/// [`starts_as_zip`]); the caller decides what a non-zip file is.
pub fn read_directory<R: Read + Seek>(r: &mut R) -> Result<Directory, CheckpointError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let end = find_end(r, file_len)?;
    let cd = read_at(r, end.cd_offset, end.cd_size)?;
    // Each record is at least 46 bytes: a count the directory cannot hold is corrupt, not an allocation.
    if end.entries > cd.len() as u64 / 46 {
        return Err(bad(format!(
            "the end record announces {} entries, more than a {}-byte central directory holds",
            end.entries,
            cd.len()
        )));
    }
    let mut entries = Vec::with_capacity(end.entries as usize);
    let mut pos = 0usize;
    for i in 0..end.entries {
        if cd.len() - pos < 46 || le32(&cd, pos) != CENTRAL_SIG {
            return Err(bad(format!(
                "central directory record {i} at offset {} is not a central directory header",
                end.cd_offset + pos as u64
            )));
        }
        let h = &cd[pos..];
        let (name_len, extra_len, comment_len) = (
            usize::from(le16(h, 28)),
            usize::from(le16(h, 30)),
            usize::from(le16(h, 32)),
        );
        let total = 46 + name_len + extra_len + comment_len;
        if h.len() < total {
            return Err(bad(format!(
                "central directory record {i} runs past the central directory"
            )));
        }
        let name_bytes = &h[46..46 + name_len];
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| bad(format!("entry {i}'s name is not UTF-8")))?
            .to_owned();
        if name.contains('\0') {
            return Err(bad(format!("entry {name:?} has a NUL in its name")));
        }
        let flags = le16(h, 8);
        let mut e = Entry {
            name,
            flags,
            method: le16(h, 10),
            crc32: le32(h, 16),
            compressed_size: u64::from(le32(h, 20)),
            size: u64::from(le32(h, 24)),
            local_offset: u64::from(le32(h, 42)),
            range_end: 0,
        };
        if le16(h, 34) != 0 {
            return Err(bad(format!("entry {} is on another disk", e.name)));
        }
        zip64_extra(&mut e, &h[46 + name_len..46 + name_len + extra_len])?;
        if flags & 0x0001 != 0 {
            return Err(CheckpointError::Unsupported(format!(
                "entry {} is encrypted",
                e.name
            )));
        }
        entries.push(e);
        pos += total;
    }
    if pos != cd.len() {
        return Err(bad(format!(
            "{} bytes of the central directory belong to no entry (the end record's count is wrong)",
            cd.len() - pos
        )));
    }
    validate(entries, end.cd_offset)
}

/// Fields of 0xffffffff take their value from the zip64 extra field (id 1), in the order the format
/// gives: size, compressed size, local header offset.
fn zip64_extra(e: &mut Entry, mut extra: &[u8]) -> Result<(), CheckpointError> {
    let wants = [
        e.size == 0xffff_ffff,
        e.compressed_size == 0xffff_ffff,
        e.local_offset == 0xffff_ffff,
    ];
    if !wants.iter().any(|&w| w) {
        return Ok(());
    }
    while extra.len() >= 4 {
        let (id, len) = (le16(extra, 0), usize::from(le16(extra, 2)));
        let body = extra.get(4..4 + len).ok_or_else(|| {
            bad(format!(
                "entry {}: an extra field runs past its record",
                e.name
            ))
        })?;
        if id == 1 {
            let mut at = 0;
            let mut next = |name: &str| {
                let v = body.get(at..at + 8).map(|b| le64(b, 0));
                at += 8;
                v.ok_or_else(|| bad(format!("entry {name}: the zip64 extra field is too short")))
            };
            if wants[0] {
                e.size = next(&e.name)?;
            }
            if wants[1] {
                e.compressed_size = next(&e.name)?;
            }
            if wants[2] {
                e.local_offset = next(&e.name)?;
            }
            return Ok(());
        }
        extra = &extra[4 + len..];
    }
    Err(bad(format!(
        "entry {}: 32-bit fields say zip64 but there is no zip64 extra field",
        e.name
    )))
}

fn validate(mut entries: Vec<Entry>, cd_offset: u64) -> Result<Directory, CheckpointError> {
    let first = entries
        .first()
        .ok_or_else(|| bad("the archive holds no entries"))?;
    // torch: the archive name is the folder of the *first* central-directory entry.
    let archive_name = match first.name.split_once('/') {
        Some((folder, _)) => folder.to_owned(),
        None => {
            return Err(bad(format!(
                "the first entry {:?} is not in a folder (torch refuses such an archive)",
                first.name
            )));
        }
    };
    // torch refuses an archive with a record outside its folder (every load lists all records).
    let folder = format!("{archive_name}/");
    if let Some(e) = entries.iter().find(|e| !e.name.starts_with(&folder)) {
        return Err(bad(format!(
            "entry {:?} lies outside the archive's folder {folder} (torch refuses such an archive)",
            e.name
        )));
    }
    let mut by_folded_name = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if let Some(j) = by_folded_name.insert(e.name.to_ascii_lowercase(), i) {
            let other = &entries[j].name;
            return Err(ambiguous(if *other == e.name {
                format!(
                    "two entries are named {:?} (ambiguous: torch reads the first, other zip readers the last)",
                    e.name
                )
            } else {
                format!(
                    "entries {other:?} and {:?} differ only in case (ambiguous: torch's lookup ignores case)",
                    e.name
                )
            }));
        }
    }
    // Ranges: sorted by local header offset, each entry ends where the next begins at the latest; the
    // first begins at offset 0 and the last ends before the central directory.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| entries[i].local_offset);
    if entries[order[0]].local_offset != 0 {
        return Err(ambiguous(format!(
            "the first entry starts at offset {}, not 0",
            entries[order[0]].local_offset
        )));
    }
    for (k, &i) in order.iter().enumerate() {
        let limit = order
            .get(k + 1)
            .map_or(cd_offset, |&j| entries[j].local_offset);
        let e = &entries[i];
        let descriptor = e.descriptor_len();
        let need = LOCAL_LEN
            .checked_add(e.name.len() as u64)
            .and_then(|n| n.checked_add(e.compressed_size))
            .and_then(|n| n.checked_add(descriptor));
        if need
            .and_then(|n| e.local_offset.checked_add(n))
            .is_none_or(|end| end > limit)
        {
            return Err(ambiguous(format!(
                "entry {} ({} bytes at offset {}) overlaps the next entry or the central directory (at offset {limit})",
                e.name, e.compressed_size, e.local_offset
            )));
        }
        entries[i].range_end = limit;
    }
    Ok(Directory {
        entries,
        by_folded_name,
        archive_name,
    })
}

impl Directory {
    /// The entry torch's `getRecord(name)` would find: `<archive_name>/<record>`, ignoring ASCII case.
    pub fn record(&self, record: &str) -> Option<&Entry> {
        let full = format!("{}/{record}", self.archive_name).to_ascii_lowercase();
        self.by_folded_name.get(&full).map(|&i| &self.entries[i])
    }

    /// Read an entry's bytes (stored entries only), after checking its local header against the
    /// central directory and its CRC-32 against its bytes.
    pub fn read_entry<R: Read + Seek>(
        &self,
        r: &mut R,
        e: &Entry,
        max: u64,
    ) -> Result<Vec<u8>, CheckpointError> {
        if e.method != 0 {
            return Err(CheckpointError::Unsupported(format!(
                "entry {} is compressed (method {}); torch.save stores entries uncompressed",
                e.name, e.method
            )));
        }
        if e.size > max {
            return Err(CheckpointError::Unsupported(format!(
                "{} is {} bytes (limit {max})",
                e.name, e.size
            )));
        }
        if e.compressed_size != e.size {
            return Err(bad(format!(
                "stored entry {} has compressed size {} but size {}",
                e.name, e.compressed_size, e.size
            )));
        }
        let head = read_at(r, e.local_offset, LOCAL_LEN + e.name.len() as u64)?;
        let mismatch = |what: &str| {
            ambiguous(format!(
                "the local header of {} (offset {}) disagrees with the central directory on its {what}",
                e.name, e.local_offset
            ))
        };
        if le32(&head, 0) != LOCAL_SIG {
            return Err(bad(format!(
                "no local header at offset {} for {}",
                e.local_offset, e.name
            )));
        }
        if usize::from(le16(&head, 26)) != e.name.len() || head[30..] != *e.name.as_bytes() {
            return Err(mismatch("name"));
        }
        let flags = le16(&head, 6);
        if flags & 0x0008 != e.flags & 0x0008 || flags & 0x0001 != 0 {
            return Err(mismatch("flags"));
        }
        if le16(&head, 8) != e.method {
            return Err(mismatch("compression method"));
        }
        if flags & 0x0008 == 0 {
            let (crc, csize, size) = (le32(&head, 14), le32(&head, 18), le32(&head, 22));
            let fits = |short: u32, long: u64| u64::from(short) == long || short == 0xffff_ffff;
            if crc != e.crc32 {
                return Err(mismatch("CRC-32"));
            }
            if !fits(csize, e.compressed_size) || !fits(size, e.size) {
                return Err(mismatch("sizes"));
            }
        }
        let extra_len = u64::from(le16(&head, 28));
        // In range: `validate` bounded local_offset + header + name + size by the next entry.
        let data_start = e.local_offset + LOCAL_LEN + e.name.len() as u64 + extra_len;
        // The local flags agree with the central directory's on bit 3 (checked above).
        let descriptor = e.descriptor_len();
        if data_start
            .checked_add(e.size)
            .and_then(|n| n.checked_add(descriptor))
            .is_none_or(|end| end > e.range_end)
        {
            return Err(ambiguous(format!(
                "the data of {} (from offset {data_start}, {} bytes) runs into the next entry at offset {}",
                e.name, e.size, e.range_end
            )));
        }
        let data = read_at(r, data_start, e.size)?;
        // torch.save writes a CRC of 0 when `config.save.compute_crc32` is off, and its reader checks
        // none; any other CRC must match the bytes.
        let crc = crc32fast::hash(&data);
        if e.crc32 != 0 && crc != e.crc32 {
            return Err(bad(format!(
                "{}: CRC-32 {crc:08x} of its bytes differs from the central directory's {:08x}",
                e.name, e.crc32
            )));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn example() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/momentum/checkpoints/momentum_v3.pt"
        ))
        .unwrap()
    }

    fn err(bytes: Vec<u8>) -> String {
        read_directory(&mut Cursor::new(bytes))
            .map(|_| "read".to_owned())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn reads_torch_s_own_archive() {
        let bytes = example();
        let mut c = Cursor::new(bytes);
        assert!(starts_as_zip(&mut c).unwrap());
        let d = read_directory(&mut c).unwrap();
        assert_eq!(d.archive_name, "momentum_v3");
        assert_eq!(d.entries.len(), 14);
        let pkl = d.record("data.pkl").unwrap().clone();
        assert!(d.record("DATA.PKL").is_some(), "lookups ignore case");
        let data = d.read_entry(&mut c, &pkl, 1 << 20).unwrap();
        assert_eq!(data.first(), Some(&0x80));
    }

    #[test]
    fn prepended_and_appended_bytes_are_refused() {
        let mut prefixed = vec![0u8; 100];
        prefixed.extend(example());
        let e = err(prefixed);
        assert!(e.contains("no zip64 end record at offset 9443"), "{e}");
        let mut appended = example();
        appended.extend([0u8; 100]);
        assert!(err(appended).contains("100 bytes follow the end of central directory record"));
        let mut appended = example();
        appended.extend(b"PK\x05\x06");
        appended.extend([0u8; 18]);
        assert!(err(appended).contains("does not end where"));
    }

    #[test]
    fn a_corrupt_central_directory_offset_is_refused() {
        let mut b = example();
        // The zip64 end record's central-directory offset (48 bytes into the record) alone.
        let rec = b.len() - 22 - 20 - 56;
        b[rec + 48] ^= 0x10;
        assert!(err(b).contains("disagrees with the end record"));
        let mut b = example();
        let n = b.len();
        b[n - 22 - 20 - 56 + 48] ^= 0x01;
        b[n - 6] ^= 0x01; // and the 32-bit copy, so they still agree
        assert!(err(b).contains("does not end where the end records begin"));
    }
}
