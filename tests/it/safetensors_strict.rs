//! safetensors files read at least as strictly as the reference reader (Hugging Face's `safetensors`
//! crate, run here on the same bytes), plus plumbline's own refusals of what the crate lets through
//! silently. docs/checkpoint-metadata.md has the table of which check is whose.

use std::io::Cursor;

use plumbline::checkpoint::safetensors;

fn file(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

fn ours(bytes: &[u8]) -> Result<safetensors::SafetensorsFile, String> {
    safetensors::read(Cursor::new(bytes.to_vec())).map_err(|e| e.to_string())
}

fn crate_accepts(bytes: &[u8]) -> bool {
    ::safetensors::SafeTensors::read_metadata(bytes).is_ok()
}

fn example() -> Vec<u8> {
    std::fs::read(crate::util::example().join("checkpoints/momentum_v3.safetensors")).unwrap()
}

/// The example's header text and data length.
fn example_parts() -> (String, usize) {
    let b = example();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    (
        String::from_utf8(b[8..8 + n].to_vec()).unwrap(),
        b.len() - 8 - n,
    )
}

#[test]
fn whatever_the_reference_reader_refuses_plumbline_refuses() {
    let clean = example();
    assert!(crate_accepts(&clean) && ours(&clean).is_ok());
    let (header, data) = example_parts();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();

    let mut minus_one = clean.clone();
    minus_one[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("header length -1", minus_one, "100 MB limit"));

    let mut trailing = clean.clone();
    trailing.extend([0u8; 100]);
    cases.push(("100 trailing bytes", trailing, "100 bytes follow them"));

    let dup_meta = header.replacen('{', r#"{"__metadata__":{"a":"b"},"#, 1);
    cases.push((
        "__metadata__ twice",
        file(&dup_meta, data),
        "`__metadata__` appears twice",
    ));

    // Two tensors whose byte ranges overlap (and so the data section is too long for them).
    let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    cases.push(("overlapping offsets", file(overlap, 12), "overlap"));

    let gap = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    cases.push(("a gap between tensors", file(gap, 12), "leave a gap"));

    let short = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    cases.push((
        "offsets that do not hold the shape",
        file(short, 8),
        "do not hold 3 elements",
    ));

    let mut beyond = file("{}", 0);
    beyond[..8].copy_from_slice(&3u64.to_le_bytes());
    cases.push(("header length past the file", beyond, "exceeds the file"));

    let mut latin1 = file(r#"{"__metadata__":{"k":"vX"}}"#, 0);
    let at = latin1.len() - 4;
    latin1[at] = 0xe9;
    cases.push(("header not UTF-8", latin1, "not UTF-8"));

    let odd_f4 = r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
    cases.push((
        "F4 elements that do not fill bytes",
        file(odd_f4, 2),
        "do not fill whole bytes",
    ));

    let not_object = r#"[1, 2]"#;
    cases.push((
        "header not an object",
        file(not_object, 0),
        "not a JSON object",
    ));

    for (what, bytes, needle) in &cases {
        assert!(!crate_accepts(bytes), "{what}: the crate accepts it");
        let err = ours(bytes).err().unwrap_or_default();
        assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    }
}

#[test]
fn plumbline_also_refuses_what_the_crate_lets_through() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a tensor name twice (the crate keeps the last and its dtype)",
            file(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}"#,
                4,
            ),
            "`w` appears twice",
        ),
        (
            "a metadata key twice",
            file(r#"{"__metadata__":{"input_dim":"14","input_dim":"15"}}"#, 0),
            "`input_dim` appears twice",
        ),
        (
            "a shape that overflows with its zero dimension left out",
            file(
                r#"{"e":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}}"#,
                0,
            ),
            "overflows",
        ),
        (
            "an unknown field in a tensor entry",
            file(
                r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"byte_order":"big"}}"#,
                4,
            ),
            "unknown field `byte_order`",
        ),
    ];
    for (what, bytes, needle) in &cases {
        assert!(
            crate_accepts(bytes),
            "{what}: the crate refuses it now; move it to the other test"
        );
        let err = ours(bytes).err().unwrap_or_default();
        assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    }
}

#[test]
fn every_dtype_of_the_format_is_a_readable_fact() {
    let table = [
        ("BOOL", "bool", 8),
        ("U8", "uint8", 8),
        ("I8", "int8", 8),
        ("F8_E5M2", "float8_e5m2", 8),
        ("F8_E4M3", "float8_e4m3fn", 8),
        ("F8_E8M0", "float8_e8m0fnu", 8),
        ("F8_E4M3FNUZ", "float8_e4m3fnuz", 8),
        ("F8_E5M2FNUZ", "float8_e5m2fnuz", 8),
        ("I16", "int16", 16),
        ("U16", "uint16", 16),
        ("F16", "float16", 16),
        ("BF16", "bfloat16", 16),
        ("I32", "int32", 32),
        ("U32", "uint32", 32),
        ("F32", "float32", 32),
        ("C64", "complex64", 64),
        ("F64", "float64", 64),
        ("I64", "int64", 64),
        ("U64", "uint64", 64),
        ("F4", "float4_e2m1fn", 4),
        ("F6_E2M3", "float6_e2m3fn", 6),
        ("F6_E3M2", "float6_e3m2fn", 6),
    ];
    for (st, torch, bits) in table {
        // 4 elements: whole bytes for every width.
        let bytes = 4 * bits / 8;
        let h = format!(r#"{{"t":{{"dtype":"{st}","shape":[2,2],"data_offsets":[0,{bytes}]}}}}"#);
        let f = file(&h, bytes);
        assert!(crate_accepts(&f), "{st}: the crate refuses it");
        let read = ours(&f).unwrap_or_else(|e| panic!("{st}: {e}"));
        assert_eq!(read.tensors[0].dtype, torch, "{st}");
        assert_eq!(read.tensors[0].shape, [2, 2], "{st}");
    }
}
