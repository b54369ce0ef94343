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

fn dtype_name(st: &str) -> Option<&'static str> {
    Some(match st {
        "F64" => "float64",
        "F32" => "float32",
        "F16" => "float16",
        "BF16" => "bfloat16",
        "I64" => "int64",
        "I32" => "int32",
        "I16" => "int16",
        "I8" => "int8",
        "U64" => "uint64",
        "U32" => "uint32",
        "U16" => "uint16",
        "U8" => "uint8",
        "BOOL" => "bool",
        "F8_E4M3" => "float8_e4m3fn",
        "F8_E5M2" => "float8_e5m2",
        _ => return None,
    })
}

fn parse_header(header: &[u8], data_len: u64) -> Result<SafetensorsFile, CheckpointError> {
    let bad = |d: String| CheckpointError::malformed("safetensors header", d);
    let text = std::str::from_utf8(header).map_err(|_| bad("header is not UTF-8".into()))?;
    let json: serde_json::Map<String, Tree> =
        serde_json::from_str(text).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
    let mut tree = serde_json::Map::new();
    let mut tensors = Vec::new();
    for (name, v) in json {
        if name == "__metadata__" {
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
            continue;
        }
        let obj = v
            .as_object()
            .ok_or_else(|| bad(format!("tensor `{name}` is not an object")))?;
        let st_dtype = obj
            .get("dtype")
            .and_then(Tree::as_str)
            .ok_or_else(|| bad(format!("tensor `{name}` has no dtype")))?;
        let dtype = dtype_name(st_dtype)
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
        let numel = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("tensor `{name}`: shape overflows")))?;
        let item = super::pickle::dtype_size(st_dtype).unwrap_or(1);
        let (b, e) = (offsets[0], offsets[1]);
        if b > e || e > data_len || numel.checked_mul(item) != Some(e - b) {
            return Err(bad(format!(
                "tensor `{name}`: data_offsets [{b}, {e}] do not hold {numel} × {item} bytes inside the {data_len}-byte data section"
            )));
        }
        tensors.push((
            b,
            TensorInfo {
                name,
                dtype: dtype.to_owned(),
                shape,
            },
        ));
    }
    // Report tensors in file order (the header's key order is not meaningful).
    tensors.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    Ok(SafetensorsFile {
        tree: Tree::Object(tree),
        tensors: tensors.into_iter().map(|(_, t)| t).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
