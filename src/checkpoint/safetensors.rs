//! `.safetensors`: an 8-byte little-endian header length, a JSON header, then raw tensor bytes. Only the
//! header is read. `__metadata__` maps strings to strings; values that are JSON documents are decoded
//! (see [`decode_metadata`]), so training code can store `feature_cols` as `json.dumps(cols)`.

use std::io::{Read, Seek, SeekFrom};

use super::{TensorInfo, Tree};
use crate::error::CheckpointError;

/// The safetensors format caps the header at 100 MB; larger is a corrupt or hostile length field.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

pub struct SafetensorsFile {
    pub tree: Tree,
    pub tensors: Vec<TensorInfo>,
}

pub fn read<R: Read + Seek>(mut reader: R) -> Result<SafetensorsFile, CheckpointError> {
    let file_len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    if file_len < 8 {
        return Err(CheckpointError::malformed(
            "safetensors header",
            format!("file is {file_len} bytes, shorter than the 8-byte length prefix"),
        ));
    }
    let mut len = [0u8; 8];
    reader.read_exact(&mut len)?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > file_len - 8 {
        return Err(CheckpointError::malformed(
            "safetensors header",
            format!(
                "header length {n} exceeds the file ({file_len} bytes) or the format's 100 MB limit"
            ),
        ));
    }
    let mut header = vec![0u8; n as usize];
    reader.read_exact(&mut header)?;
    let data_len = file_len - 8 - n;
    parse_header(&header, data_len)
}

/// A `__metadata__` string as a value. JSON arrays, objects and quoted strings are decoded; numbers,
/// booleans and null only when the text is exactly their JSON spelling (`"14"` → 14, `"true"` → true),
/// so a version written as `"1.10"` stays the string it is. Anything else stays a plain string.
pub fn decode_metadata(s: String) -> Tree {
    match serde_json::from_str::<Tree>(&s) {
        Ok(v @ (Tree::Array(_) | Tree::Object(_) | Tree::String(_))) => v,
        Ok(v) if serde_json::to_string(&v).is_ok_and(|text| text == s) => v,
        _ => Tree::String(s),
    }
}

/// Every dtype of the format: its torch name and its width in bits (sub-byte types pack).
fn dtype_info(st: &str) -> Option<(&'static str, u64)> {
    Some(match st {
        "F64" => ("float64", 64),
        "F32" => ("float32", 32),
        "F16" => ("float16", 16),
        "BF16" => ("bfloat16", 16),
        "I64" => ("int64", 64),
        "I32" => ("int32", 32),
        "I16" => ("int16", 16),
        "I8" => ("int8", 8),
        "U64" => ("uint64", 64),
        "U32" => ("uint32", 32),
        "U16" => ("uint16", 16),
        "U8" => ("uint8", 8),
        "BOOL" => ("bool", 8),
        "F8_E4M3" => ("float8_e4m3fn", 8),
        "F8_E5M2" => ("float8_e5m2", 8),
        "F8_E8M0" => ("float8_e8m0fnu", 8),
        "F8_E4M3FNUZ" => ("float8_e4m3fnuz", 8),
        "F8_E5M2FNUZ" => ("float8_e5m2fnuz", 8),
        "F6_E2M3" => ("float6_e2m3fn", 6),
        "F6_E3M2" => ("float6_e3m2fn", 6),
        "F4" => ("float4_e2m1fn", 4),
        "C64" => ("complex64", 64),
        _ => return None,
    })
}

/// A JSON value parsed as serde_json parses it, except that an object with a key twice is refused:
/// serde_json (and the safetensors crate's tensor map) would silently keep the last, so the file could
/// say two things and each reader believe a different one.
struct Strict(Tree);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Tree::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(Tree::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(Tree::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(Tree::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Tree::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Strict, E> {
                Ok(Strict(Tree::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Tree::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
                let mut out = Vec::new();
                while let Some(Strict(v)) = a.next_element()? {
                    out.push(v);
                }
                Ok(Strict(Tree::Array(out)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Strict, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(k) = m.next_key::<String>()? {
                    let Strict(v) = m.next_value()?;
                    if out.insert(k.clone(), v).is_some() {
                        return Err(serde::de::Error::custom(format!(
                            "the key `{k}` appears twice (ambiguous: readers keep one or the other)"
                        )));
                    }
                }
                Ok(Strict(Tree::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A malformed header, saying what is wrong.
fn bad(detail: String) -> CheckpointError {
    CheckpointError::malformed("safetensors header", detail)
}

/// The header, checked as the safetensors crate's `Metadata::validate` checks it (data offsets
/// contiguous from 0, each range exactly dtype × shape, the last ending at the end of the file) plus
/// plumbline's own refusals (a key twice, at either level; an element count or byte size that
/// overflows whatever the order of the dimensions). See docs/checkpoint-metadata.md.
fn parse_header(header: &[u8], data_len: u64) -> Result<SafetensorsFile, CheckpointError> {
    let text = std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8".into()))?;
    let json = match serde_json::from_str(text) {
        Ok(Strict(Tree::Object(m))) => m,
        Ok(_) => return Err(bad("header is not a JSON object".into())),
        Err(e) => return Err(bad(format!("header is not a JSON object: {e}"))),
    };
    let mut tree = serde_json::Map::new();
    let mut tensors = Vec::new();
    for (name, v) in json {
        if name == "__metadata__" {
            add_metadata(v, &mut tree)?;
            continue;
        }
        tensors.push(tensor_entry(name, &v, data_len)?);
    }
    check_contiguous(&mut tensors, data_len)?;
    Ok(SafetensorsFile {
        tree: Tree::Object(tree),
        tensors: tensors.into_iter().map(|(_, t)| t).collect(),
    })
}

/// `__metadata__`'s strings, decoded (see [`decode_metadata`]), added to `tree`.
fn add_metadata(v: Tree, tree: &mut serde_json::Map<String, Tree>) -> Result<(), CheckpointError> {
    let Tree::Object(meta) = v else {
        return Err(bad("__metadata__ is not an object".into()));
    };
    for (k, v) in meta {
        let Tree::String(s) = v else {
            return Err(bad(format!("__metadata__ value `{k}` is not a string")));
        };
        let decoded = decode_metadata(s);
        tree.insert(k, decoded);
    }
    Ok(())
}

/// The tensor `name` of the header (`v`), with its data offsets, checked to hold exactly its
/// elements inside the `data_len`-byte data section.
fn tensor_entry(
    name: String,
    v: &Tree,
    data_len: u64,
) -> Result<((u64, u64), TensorInfo), CheckpointError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad(format!("tensor `{name}` is not an object")))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
    {
        return Err(bad(format!("tensor `{name}` has an unknown field `{k}`")));
    }
    let st_dtype = obj
        .get("dtype")
        .and_then(Tree::as_str)
        .ok_or_else(|| bad(format!("tensor `{name}` has no dtype")))?;
    let (dtype, bits) = dtype_info(st_dtype)
        .ok_or_else(|| bad(format!("tensor `{name}` has unknown dtype {st_dtype}")))?;
    let shape: Vec<u64> = obj
        .get("shape")
        .and_then(Tree::as_array)
        .and_then(|a| a.iter().map(Tree::as_u64).collect())
        .ok_or_else(|| bad(format!("tensor `{name}` has no shape of non-negative ints")))?;
    let offsets: Vec<u64> = obj
        .get("data_offsets")
        .and_then(Tree::as_array)
        .and_then(|a| a.iter().map(Tree::as_u64).collect())
        .filter(|o: &Vec<u64>| o.len() == 2)
        .ok_or_else(|| bad(format!("tensor `{name}` has no data_offsets [begin, end]")))?;
    let (numel, bytes) = tensor_size(&name, &shape, bits)?;
    let (b, e) = (offsets[0], offsets[1]);
    if e > data_len {
        return Err(bad(format!(
            "tensor `{name}`: data_offsets [{b}, {e}] lie outside the {data_len}-byte data section"
        )));
    }
    if b > e || e - b != bytes {
        return Err(bad(format!(
            "tensor `{name}`: data_offsets [{b}, {e}] do not hold {numel} elements of {st_dtype} ({bytes} bytes)"
        )));
    }
    Ok((
        (b, e),
        TensorInfo {
            name,
            dtype: dtype.to_owned(),
            shape,
        },
    ))
}

/// The element count and byte size of tensor `name`, of `shape` and `bits` per element.
fn tensor_size(name: &str, shape: &[u64], bits: u64) -> Result<(u64, u64), CheckpointError> {
    // Overflow is judged on the non-zero dimensions: `[0, 2^63]` holds no element, but a reader
    // that multiplies in another order, or takes a stride, overflows on it.
    let bits_total = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(bits, |a, &d| a.checked_mul(d))
        .filter(|&b| b <= i64::MAX as u64)
        .ok_or_else(|| bad(format!("tensor `{name}`: shape {shape:?} overflows")))?;
    let numel = if shape.contains(&0) {
        0
    } else {
        bits_total / bits
    };
    if !(numel * bits).is_multiple_of(8) {
        return Err(bad(format!(
            "tensor `{name}`: {numel} elements of {bits} bits do not fill whole bytes"
        )));
    }
    Ok((numel, numel * bits / 8))
}

/// The crate's rule: sorted by offsets (`tensors` is sorted here), each tensor begins where the
/// previous ended, the first at 0, the last at the end of the file; no gap, no overlap, no trailing
/// bytes.
fn check_contiguous(
    tensors: &mut [((u64, u64), TensorInfo)],
    data_len: u64,
) -> Result<(), CheckpointError> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    let mut at = 0u64;
    for ((b, e), t) in tensors.iter() {
        if *b != at {
            return Err(bad(format!(
                "tensor `{}`: data_offsets [{b}, {e}] {} the previous tensor's end {at}",
                t.name,
                if *b < at {
                    "overlap"
                } else {
                    "leave a gap after"
                }
            )));
        }
        at = *e;
    }
    if at != data_len {
        return Err(bad(format!(
            "the tensors end at byte {at} of a {data_len}-byte data section ({} bytes follow them)",
            data_len.saturating_sub(at)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_safetensors_dtype_has_its_torch_name_and_size() {
        let table = [
            ("F64", "float64", 8),
            ("F32", "float32", 4),
            ("F16", "float16", 2),
            ("BF16", "bfloat16", 2),
            ("I64", "int64", 8),
            ("I32", "int32", 4),
            ("I16", "int16", 2),
            ("I8", "int8", 1),
            ("U64", "uint64", 8),
            ("U32", "uint32", 4),
            ("U16", "uint16", 2),
            ("U8", "uint8", 1),
            ("BOOL", "bool", 1),
            ("F8_E4M3", "float8_e4m3fn", 1),
            ("F8_E5M2", "float8_e5m2", 1),
        ];
        for (st, torch, size) in table {
            assert_eq!(dtype_info(st), Some((torch, 8 * size)), "{st}");
            // And through a real header: 3 elements of it.
            let header = format!(
                r#"{{"t":{{"dtype":"{st}","shape":[3],"data_offsets":[0,{}]}}}}"#,
                3 * size
            );
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend(std::iter::repeat_n(0u8, 3 * size as usize));
            let f = read(std::io::Cursor::new(bytes)).unwrap();
            assert_eq!(f.tensors[0].dtype, torch);
        }
        assert_eq!(dtype_info("F128"), None);
    }

    fn with_len(n: u64, rest: &[u8]) -> Vec<u8> {
        let mut b = n.to_le_bytes().to_vec();
        b.extend_from_slice(rest);
        b
    }

    #[test]
    fn empty_tensors_have_empty_ranges() {
        let header = br#"{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 4]);
        let f = read(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(
            f.tensors
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["e", "w"]
        );
    }

    #[test]
    fn header_length_bounds() {
        let e = |b: Vec<u8>| {
            read(std::io::Cursor::new(b))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e(vec![0; 7]).contains("shorter than the 8-byte length prefix"));
        // Eight bytes announcing an empty header: read, then refused as JSON, not as too short.
        assert!(e(with_len(0, b"")).contains("not a JSON object"));
        // A header that fills the file exactly is fine; one byte more than the file is not.
        assert!(read(std::io::Cursor::new(with_len(2, b"{}"))).is_ok());
        assert!(e(with_len(3, b"{}")).contains("header length 3 exceeds the file (10 bytes)"));
    }

    #[test]
    fn header_length_is_capped_at_100_mb() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.safetensors");
        // Sparse: 100 MB of zeros after an announced header of MAX + 1, then exactly MAX.
        for (n, over) in [(MAX_HEADER_BYTES + 1, true), (MAX_HEADER_BYTES, false)] {
            let mut f = std::fs::File::create(&p).unwrap();
            std::io::Write::write_all(&mut f, &n.to_le_bytes()).unwrap();
            f.set_len(8 + MAX_HEADER_BYTES + 16).unwrap();
            let err = read(std::fs::File::open(&p).unwrap())
                .err()
                .unwrap()
                .to_string();
            assert_eq!(err.contains("100 MB limit"), over, "{n}: {err}");
        }
    }

    #[test]
    fn metadata_decoding_keeps_text_that_is_not_exact_json() {
        let d = |s: &str| decode_metadata(s.to_owned());
        assert_eq!(
            d("[\"ret_1\", \"vol_20\"]"),
            serde_json::json!(["ret_1", "vol_20"])
        );
        assert_eq!(
            d("{\"kind\": \"robust\"}"),
            serde_json::json!({"kind": "robust"})
        );
        assert_eq!(d("14"), serde_json::json!(14));
        assert_eq!(d("0.006"), serde_json::json!(0.006));
        assert_eq!(d("true"), serde_json::json!(true));
        assert_eq!(d("\"zero-fill\""), serde_json::json!("zero-fill"));
        assert_eq!(d("zero-fill"), serde_json::json!("zero-fill"));
        assert_eq!(d("1.10"), serde_json::json!("1.10"));
        assert_eq!(d("007"), serde_json::json!("007"));
    }
}
