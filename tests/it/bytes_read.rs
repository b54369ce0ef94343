//! Header-only reads: the bytes read do not depend on tensor sizes. A reader that counts every byte
//! handed out proves it on a 2 MB and a 500 MB checkpoint (the large one sparse, built here).

use std::fs::File;
use std::io::Write;

use plumbline::checkpoint::CountingReader;
use std::path::Path;

const MIB: u64 = 1 << 20;

/// The example's safetensors file with one more tensor, `pad`, of `data_bytes` bytes at the end of the
/// data section (sparse), its header padded with spaces to the same length at every size.
fn safetensors_of_size(path: &Path, data_bytes: u64) {
    let real =
        std::fs::read(crate::util::example().join("checkpoints/momentum_v3.safetensors")).unwrap();
    let n = u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&real[8..8 + n]).unwrap().trim_end();
    let data = (real.len() - 8 - n) as u64;
    let mut header = format!(
        r#"{},"pad":{{"dtype":"U8","shape":[{data_bytes}],"data_offsets":[{data},{}]}}}}"#,
        header.strip_suffix('}').unwrap(),
        data + data_bytes
    );
    let width = n + 128;
    assert!(header.len() <= width);
    header.extend(std::iter::repeat_n(' ', width - header.len()));
    let mut f = File::create(path).unwrap();
    f.write_all(&(width as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.write_all(&real[8 + n..]).unwrap();
    f.set_len((8 + width) as u64 + data + data_bytes).unwrap();
}

fn count_torch(path: &Path, numel: u64) -> u64 {
    let (r, read) = CountingReader::new(File::open(path).unwrap());
    let a =
        plumbline::checkpoint::torch::read(r, plumbline::checkpoint::pickle::Rules::ZIP).unwrap();
    assert_eq!(a.tensors.len(), 1);
    assert_eq!(a.tree["input_dim"], 14);
    assert_eq!(
        (a.tensors[0].name.as_str(), a.tensors[0].dtype.as_str()),
        ("state_dict.w", "float32")
    );
    assert_eq!(a.tensors[0].shape, vec![numel]);
    assert!(std::fs::metadata(path).unwrap().len() > numel * 4);
    read.get()
}

fn count_safetensors(path: &Path) -> u64 {
    let (r, read) = CountingReader::new(File::open(path).unwrap());
    let s = plumbline::checkpoint::safetensors::read(r).unwrap();
    assert_eq!(s.tensors.len(), 9);
    read.get()
}

#[test]
fn torch_reads_under_1_mib_from_2_mb_and_500_mb() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.pt");
    let large = dir.path().join("large.pt");
    crate::util::synthetic_torch(&small, 500_000); // 2 MB of float32
    crate::util::synthetic_torch(&large, 125_000_000); // 500 MB
    assert!(std::fs::metadata(&large).unwrap().len() > 500 * 1_000_000);
    let (a, b) = (
        count_torch(&small, 500_000),
        count_torch(&large, 125_000_000),
    );
    assert!(a < MIB && b < MIB, "read {a} and {b} bytes");
    // The pickles differ only in the numbers: the bytes read do not grow with the tensor.
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

/// The path plumbline really takes (`checkpoint::open`: file, counter, reader).
#[test]
fn open_reads_the_same_small_number_of_bytes_at_any_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for (name, numel) in [("a.pt", 500_000u32), ("b.pt", 125_000_000)] {
        let p = dir.path().join(name);
        crate::util::synthetic_torch(&p, numel);
        let info = plumbline::checkpoint::open(&p).unwrap();
        assert!(info.size > u64::from(numel) * 4);
        seen.push(info.bytes_read);
    }
    for (name, bytes) in [
        ("a.safetensors", 2_000_000u64),
        ("b.safetensors", 500_000_000),
    ] {
        let p = dir.path().join(name);
        safetensors_of_size(&p, bytes);
        seen.push(plumbline::checkpoint::open(&p).unwrap().bytes_read);
    }
    assert!(seen.iter().all(|&b| b < MIB), "{seen:?}");
    assert_eq!(seen[0], seen[1], "torch: bytes read grow with the file");
    assert_eq!(
        seen[2], seen[3],
        "safetensors: bytes read grow with the file"
    );
}
