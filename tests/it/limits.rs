//! The torch reader's limits and shapes, each at its boundary: what is just inside is read, what is
//! just outside is a clear error.

use plumbline::checkpoint;

use crate::util::{Entry, torch_zip, write_zip};

fn open_pickle(pickle: &[u8]) -> Result<checkpoint::CheckpointInfo, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pt");
    torch_zip(&p, pickle);
    checkpoint::open(&p).map_err(|e| e.to_string())
}

/// `[[...[]...]]`, `n` lists deep: MARK × n, LIST × n.
fn nested_lists(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b'(', n));
    p.extend(std::iter::repeat_n(b'l', n));
    p.push(b'.');
    p
}

#[test]
fn nesting_limit_is_128_levels_below_the_root() {
    // The innermost of n nested lists sits at depth n - 1.
    assert!(open_pickle(&nested_lists(129)).is_ok());
    let err = open_pickle(&nested_lists(130)).unwrap_err();
    assert!(err.contains("nested deeper than 128 levels"), "{err}");
}

/// `{"k": [None × (n - 2)]}`: exactly `n` nodes.
fn nodes(n: usize) -> Vec<u8> {
    let mut p = b"\x80\x02}".to_vec();
    p.extend(crate::util::pstr("k"));
    p.extend(b"](");
    p.extend(std::iter::repeat_n(b'N', n - 2));
    p.extend(b"es.");
    p
}

#[test]
fn node_limit_is_one_million() {
    assert!(open_pickle(&nodes(1_000_000)).is_ok());
    let err = open_pickle(&nodes(1_000_001)).unwrap_err();
    assert!(err.contains("more than 1,000,000 nodes"), "{err}");
}

#[test]
fn dict_keys_keep_python_text() {
    // {1: None, False: None, "s": 2}
    let mut p = b"\x80\x02}(K\x01N\x89N".to_vec();
    p.extend(crate::util::pstr("s"));
    p.extend(b"K\x02u.");
    let info = open_pickle(&p).unwrap();
    assert_eq!(
        info.tree,
        serde_json::json!({"1": null, "false": null, "s": 2})
    );
    // Keys that are not names keep Python's text: {1.0: None, None: 1, (1, 'a'): 2, 0.5: 3}.
    let mut p = b"\x80\x02}(G?\xf0\x00\x00\x00\x00\x00\x00NNK\x01K\x01".to_vec();
    p.extend(crate::util::pstr("a"));
    p.extend(b"\x86K\x02G?\xe0\x00\x00\x00\x00\x00\x00K\x03u.");
    let info = open_pickle(&p).unwrap();
    assert_eq!(
        info.tree,
        serde_json::json!({"1.0": null, "None": 1, "(1, 'a')": 2, "0.5": 3})
    );
    // 1 and "1" are two keys to Python: the string keeps the text a key path reaches, the int is
    // stored under its type and repr.
    let mut p = b"\x80\x02}(K\x01K\x02".to_vec();
    p.extend(crate::util::pstr("1"));
    p.extend(b"K\x03u.");
    let info = open_pickle(&p).unwrap();
    assert_eq!(info.tree, serde_json::json!({"1": 3, "<int 1>": 2}));
}

#[test]
fn archives_without_or_with_two_pickles() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("none.pt");
    write_zip(&p, &[Entry::Bytes("archive/version", b"3\n")]);
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("no archive/data.pkl entry"), "{err}");
    let p = dir.path().join("two.pt");
    write_zip(
        &p,
        &[
            Entry::Bytes("a/data.pkl", b"N."),
            Entry::Bytes("b/data.pkl", b"N."),
        ],
    );
    // torch takes the first entry's folder as the archive and refuses an entry outside it.
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("\"b/data.pkl\" lies outside the archive's folder a/"),
        "{err}"
    );
    // The same name twice, or twice ignoring case, is ambiguous: refused.
    // (`A/data.pkl` is outside the folder `a/`, which torch checks case-sensitively.)
    for second in ["a/data.pkl", "a/DATA.pkl", "A/data.pkl"] {
        let p = dir.path().join("dup.pt");
        write_zip(
            &p,
            &[
                Entry::Bytes("a/data.pkl", b"N."),
                Entry::Bytes(second, b"N."),
                Entry::Bytes("a/version", b"3\n"),
            ],
        );
        let err = checkpoint::open(&p).unwrap_err().to_string();
        assert!(
            err.contains("ambiguous") || err.contains("outside the archive's folder a/"),
            "{second}: {err}"
        );
    }
}

#[test]
fn metadata_pickle_limit_is_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let over = dir.path().join("over.pt");
    write_zip(
        &over,
        &[
            Entry::Hole("archive/data.pkl", (64 << 20) + 1),
            Entry::Bytes("archive/version", b"3\n"),
        ],
    );
    let err = checkpoint::open(&over).unwrap_err().to_string();
    assert!(err.contains("is 67108865 bytes (limit 67108864)"), "{err}");
    // At the limit it is read (and then fails as the zeros it is, not on its size).
    let at = dir.path().join("at.pt");
    write_zip(
        &at,
        &[
            Entry::Hole("archive/data.pkl", 64 << 20),
            Entry::Bytes("archive/version", b"3\n"),
        ],
    );
    let err = checkpoint::open(&at).unwrap_err().to_string();
    assert!(!err.contains("limit"), "{err}");
}

/// Issue 14, hostile sizes: each finishes with an answer (times in benches/hostile_inputs.py, never
/// asserted here). Before: a 1 MB LONG4 took minutes (quadratic decimal conversion).
#[test]
fn hostile_sizes_finish_with_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    // 300,000 tensors in one safetensors header, each 4 bytes.
    let n = 300_000;
    let mut header = String::from("{");
    for i in 0..n {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{},{}]}}"#,
            4 * i,
            4 * i + 4
        ));
    }
    header.push('}');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 4 * n));
    let p = dir.path().join("many.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    assert_eq!(checkpoint::open(&p).unwrap().tensors.len(), n);

    // A million memo entries: (EMPTY_LIST, MEMOIZE, POP) × 1M, then GET of the last, APPEND of None.
    let mut pickle = b"\x80\x04".to_vec();
    for _ in 0..1_000_000 {
        pickle.extend([b']', 0x94, b'0']);
    }
    pickle.extend(b"j\x3f\x42\x0f\x00Na.");
    let info = open_pickle(&pickle).unwrap();
    assert_eq!(info.tree, serde_json::json!([null]));

    // A 1 MB LONG4.
    let mut pickle = b"\x80\x02\x8b".to_vec();
    pickle.extend(1_000_000u32.to_le_bytes());
    pickle.extend(std::iter::repeat_n(0x11, 1_000_000));
    pickle.push(b'.');
    assert_eq!(
        open_pickle(&pickle).unwrap().tree,
        serde_json::json!("<int of 1000000 bytes>")
    );
}

/// Review of issue 14: archives torch would read another way than plumbline are refused.
#[test]
fn torchscript_archives_and_keys_set_twice_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // `constants.pkl` makes torch.load hand the file to torch.jit.load, which runs TorchScript code.
    let p = dir.path().join("scripted.pt");
    write_zip(
        &p,
        &[
            Entry::Bytes("archive/data.pkl", b"\x80\x02}."),
            Entry::Bytes("archive/constants.pkl", b"\x80\x02)."),
            Entry::Bytes("archive/version", b"3\n"),
        ],
    );
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("TorchScript archive"), "{err}");
    // {"input_dim": 14, "input_dim": 15}: Python keeps the last, a reader might keep the first.
    let mut pickle = b"\x80\x02}(".to_vec();
    pickle.extend(crate::util::pstr("input_dim"));
    pickle.extend(b"K\x0e");
    pickle.extend(crate::util::pstr("input_dim"));
    pickle.extend(b"K\x0fu.");
    let err = open_pickle(&pickle).unwrap_err();
    assert!(err.contains("the key `input_dim` is set twice"), "{err}");
    // 1 and True are one key to Python, and one name here.
    let err = open_pickle(b"\x80\x02}(K\x01N\x88Nu.").unwrap_err();
    assert!(err.contains("the key `1` is set twice"), "{err}");
}
