//! Legacy (pre-1.6, non-zip) torch.save files, plain pickles, globs over files plumbline cannot
//! read, and `[checkpoints] safe-globals`. The torch-written files are in tests/fixtures/benign
//! (tests/it/benign.rs); these are the hand-built edge cases torch does not write.

use std::io::Write;
use std::path::Path;

use crate::util::{
    example_copy, fixture, float_tensor, plumbline, replace_in, stderr, stdout, xstr,
};
use plumbline::checkpoint;

/// `torch.serialization.MAGIC_NUMBER` as a LONG1 pickle.
fn magic() -> Vec<u8> {
    let mut p = b"\x80\x02\x8a\x0a".to_vec();
    p.extend(&0x1950a86a20f9469cfc6cu128.to_le_bytes()[..10]);
    p.push(b'.');
    p
}

/// A legacy stream holding `{"w": <float32 tensor of numel>}`: the five pickles and the count
/// header, the storage bytes left to the caller (written as a hole by `write_legacy`).
fn legacy_head(numel: u32, count: u64, keys: &[&str]) -> Vec<u8> {
    let mut out = magic();
    out.extend(b"\x80\x02M\xe9\x03."); // protocol 1001
    out.extend(b"\x80\x02}."); // sys_info
    let mut p = b"\x80\x02}".to_vec();
    p.extend(xstr("w"));
    p.extend(float_tensor(numel, true));
    p.extend(b"s.");
    out.extend(p);
    let mut k = b"\x80\x02](".to_vec();
    for key in keys {
        k.extend(xstr(key));
    }
    k.extend(b"e.");
    out.extend(k);
    out.extend(count.to_le_bytes());
    out
}

fn write_legacy(path: &Path, head: &[u8], data_len: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(head).unwrap();
    f.set_len(head.len() as u64 + data_len).unwrap();
}

#[test]
fn legacy_files_give_facts_from_a_read_that_does_not_grow() {
    let dir = tempfile::tempdir().unwrap();
    let mut read = Vec::new();
    for numel in [1_000u32, 1 << 24, 1 << 28] {
        let p = dir.path().join(format!("legacy-{numel}.pt"));
        write_legacy(
            &p,
            &legacy_head(numel, numel.into(), &["0"]),
            u64::from(numel) * 4,
        );
        let info = checkpoint::open(&p).unwrap();
        assert_eq!(info.tensors.len(), 1);
        assert_eq!(info.tensors[0].name, "w");
        assert_eq!(info.tensors[0].shape, vec![u64::from(numel)]);
        assert!(info.bytes_read <= info.size);
        read.push(info.bytes_read);
    }
    // 64 MiB and 1 GiB of storage cost the same: the first 4 KiB (pickles and count) and the last
    // 64 KiB (where a zip reader would look for an archive).
    assert_eq!(read[1], read[2], "{read:?}");
    assert!(read[2] <= (4 << 10) + 22 + 0xffff, "{read:?}");
}

#[test]
fn broken_legacy_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("l.pt");
    let cases: [(Vec<u8>, u64, &str); 5] = [
        (
            legacy_head(8, 9, &["0"]),
            32,
            "the data section holds 9 elements",
        ),
        (
            legacy_head(8, 8, &["0"]),
            31,
            "run past the end of the file",
        ),
        (
            legacy_head(8, 8, &["0"]),
            40,
            "8 bytes follow the last storage",
        ),
        (
            legacy_head(8, 8, &["0", "1"]),
            32,
            "lists storage \"1\", which no persistent id names",
        ),
        (legacy_head(8, 8, &[]), 32, "not listed in legacy pickle 5"),
    ];
    for (head, data, want) in cases {
        write_legacy(&p, &head, data);
        let err = checkpoint::open(&p).unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
    // Trailing bytes are ambiguous, not malformed: another reader might read them.
    write_legacy(&p, &legacy_head(8, 8, &["0"]), 40);
    let err = checkpoint::open(&p).unwrap_err();
    assert!(
        matches!(
            err,
            plumbline::error::Error::Checkpoint {
                source: plumbline::error::CheckpointError::Ambiguous(_),
                ..
            }
        ),
        "{err}"
    );
    // A wrong protocol version, as torch says it.
    let mut head = magic();
    head.extend(b"\x80\x02M\xea\x03.\x80\x02}.\x80\x02}.\x80\x02].");
    std::fs::write(&p, &head).unwrap();
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("is not 1001"), "{err}");
}

/// A benign legacy stream with a zip archive appended: torch reads the one, a zip reader the other.
#[test]
fn a_legacy_stream_with_an_archive_behind_it_is_ambiguous() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("poly.pt");
    let mut bytes = std::fs::read(fixture("benign/legacy-state-dict.pt")).unwrap();
    bytes.extend(std::fs::read(crate::util::production_pt()).unwrap());
    std::fs::write(&p, &bytes).unwrap();
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("does not start as a zip archive but ends as one"),
        "{err}"
    );
}

#[test]
fn plain_pickles_are_read_as_plain_pickles_and_named_when_they_are_not_torch_files() {
    let dir = tempfile::tempdir().unwrap();
    // {"lr": 0.001, "features": ["a"]}, protocol 2.
    let mut p = b"\x80\x02}(".to_vec();
    p.extend(xstr("lr"));
    p.extend(b"G?PbM\xd2\xf1\xa9\xfc");
    p.extend(xstr("features"));
    p.extend(b"]");
    p.extend(xstr("a"));
    p.extend(b"au.");
    let pkl = dir.path().join("params.pkl");
    std::fs::write(&pkl, &p).unwrap();
    let info = checkpoint::open(&pkl).unwrap();
    assert_eq!(info.format.as_str(), "pickle");
    assert_eq!(
        info.tree,
        serde_json::json!({"lr": 0.001, "features": ["a"]})
    );
    // The same bytes named .pt: torch.load would stop at the magic number; said so.
    let pt = dir.path().join("params.pt");
    std::fs::write(&pt, &p).unwrap();
    let err = checkpoint::open(&pt).unwrap_err().to_string();
    assert!(
        err.contains("a plain pickle, not a torch.save file"),
        "{err}"
    );
    assert!(!err.contains("legacy (pre-1.6"), "{err}");
    // The allowlist holds for plain pickles too.
    std::fs::write(&pkl, b"\x80\x02cposix\nsystem\nX\x01\x00\x00\x00x\x85R.").unwrap();
    let err = checkpoint::open(&pkl).unwrap_err().to_string();
    assert!(
        err.contains("refused") && err.contains("posix.system"),
        "{err}"
    );
    // A persistent id has nothing to resolve it in a plain pickle.
    std::fs::write(&pkl, b"\x80\x02X\x01\x00\x00\x00x\x85Q.").unwrap();
    let err = checkpoint::open(&pkl).unwrap_err().to_string();
    assert!(
        err.contains("unsupported") && err.contains("persistent id"),
        "{err}"
    );
    // torch's legacy tar layout: torch refuses it with weights_only=True, so does plumbline.
    let mut tar = vec![0u8; 1024];
    tar[..7].copy_from_slice(b"storage");
    tar[148..156].copy_from_slice(b"        ");
    let sum: u32 = tar[..512].iter().map(|&b| u32::from(b)).sum();
    tar[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    std::fs::write(&pt, &tar).unwrap();
    let err = checkpoint::open(&pt).unwrap_err().to_string();
    assert!(err.contains("legacy .tar layout"), "{err}");
}

/// A glob that matches a file plumbline cannot read says so; a refused row shows "refused", not a
/// byte count.
#[test]
fn globs_report_what_they_cannot_read() {
    let (_g, ex) = example_copy();
    replace_in(
        &ex.join("plumbline.toml"),
        "globs = [\"checkpoints/*.pt\", \"checkpoints/*.safetensors\"]",
        "globs = [\"checkpoints/*\"]",
    );
    std::fs::write(ex.join("checkpoints/notes.txt"), "trained on 2026-11-30\n").unwrap();
    std::fs::copy(
        fixture("malicious/legacy-global-reduce-os-system.pt"),
        ex.join("checkpoints/old.pt"),
    )
    .unwrap();
    std::fs::copy(
        fixture("benign/run-params.pkl"),
        ex.join("checkpoints/run-params.pkl"),
    )
    .unwrap();
    let out = plumbline(&ex, &["inventory"]);
    let text = stdout(&out);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("checkpoints/{name}")))
            .unwrap_or_else(|| panic!("no row for {name}: {text}"))
            .to_owned()
    };
    // A plain pickle is read (and would be refused for what it references); the required
    // checkpoint facts are not asked of it.
    assert!(row("run-params.pkl").contains("pickle"), "{text}");
    assert!(!text.contains("run-params.pkl has no"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("error[checkpoint-unreadable]")
            && text.contains("unknown checkpoint extension"),
        "{text}"
    );
    assert!(row("notes.txt").contains("refused"), "{text}");
    assert!(row("old.pt").contains("refused"), "{text}");
    assert!(!row("old.pt").contains(" 0 B"), "{text}");
    let out = plumbline(&ex, &["inventory", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let old = doc["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "checkpoints/old.pt")
        .unwrap();
    assert!(old.get("bytes-read").is_none(), "{old}");
}

#[test]
fn declared_safe_globals_are_checked_shown_and_recorded() {
    let (_g, ex) = example_copy();
    let config = ex.join("plumbline.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    // A known code-execution route cannot be declared.
    for bad in [
        "os.system",
        "builtins.eval",
        "subprocess.Popen",
        "runpy._run_code",
    ] {
        std::fs::write(
            &config,
            original.replace(
                "production = \"checkpoints/momentum_v3.pt\"",
                &format!("production = \"checkpoints/momentum_v3.pt\"\nsafe-globals = [\"{bad}\"]"),
            ),
        )
        .unwrap();
        let out = plumbline(&ex, &["inventory"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("checkpoints.safe-globals") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    // A team's class: allowed, listed with the checkpoints that use it.
    std::fs::copy(
        fixture("benign/lightning-hparams-declared.ckpt"),
        ex.join("checkpoints/run.pt"),
    )
    .unwrap();
    std::fs::write(&config, &original).unwrap();
    let out = plumbline(&ex, &["inventory"]);
    assert!(
        stdout(&out).contains("fixture_globals.HParams"),
        "{}",
        stdout(&out)
    );
    std::fs::write(
        &config,
        original.replace(
            "production = \"checkpoints/momentum_v3.pt\"",
            "production = \"checkpoints/momentum_v3.pt\"\nsafe-globals = [\"fixture_globals.HParams\"]",
        ),
    )
    .unwrap();
    let out = plumbline(&ex, &["inventory"]);
    let text = stdout(&out);
    assert!(
        text.contains("declared safe globals (checkpoints.safe-globals):")
            && text.contains("fixture_globals.HParams  referenced by checkpoints/run.pt"),
        "{text}"
    );
    assert!(!text.contains("checkpoint-unsafe-pickle"), "{text}");
}

/// The files of the independent review (tests/fixtures/regressions): each was accepted while torch
/// loaded something else or ran code.
#[test]
fn the_review_s_files_are_refused_for_what_they_are() {
    for (file, why) in [
        ("tar-polyglot.pt", "legacy .tar layout"),
        ("build-set.pt", "BUILD on a tensor"),
        ("view-key.pt", "a storage view"),
    ] {
        let err = checkpoint::open(&fixture("regressions").join(file))
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{file}: {err}");
    }
}

/// Hostile nesting ends in an error naming the file, never a stack overflow.
#[test]
fn deep_keys_rebuilds_and_objects_do_not_recurse_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pt");
    // {((((1,),),)...): 0}, a million tuples deep.
    let mut pickle = b"\x80\x02}K\x01".to_vec();
    pickle.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    pickle.extend(b"K\x00s.");
    crate::util::torch_zip(&p, &pickle);
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("nested deeper than 16"), "{err}");
    // _rebuild_from_type_v2 whose func is _rebuild_from_type_v2 again (each level 12 bytes).
    let pickle =
        b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\nq\x00(h\x00ctorch\nTensor\n)Ntq\x01R.";
    crate::util::torch_zip(&p, pickle);
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("_rebuild_from_type_v2 of something other than a tensor rebuild"),
        "{err}"
    );
    // A declared HP(HP(HP(...))), 300,000 deep (OBJ: MARK, class, the argument built inside):
    // refused for the tree's depth, and dropped without recursion.
    let depth = 300_000;
    let mut pickle = b"\x80\x02cmylib\nHP\nq\x00".to_vec();
    for _ in 0..depth {
        pickle.extend(b"(h\x00");
    }
    pickle.push(b'N');
    pickle.extend(std::iter::repeat_n(b'o', depth));
    pickle.push(b'.');
    crate::util::torch_zip(&p, &pickle);
    let reading = checkpoint::Reading {
        safe_globals: vec!["mylib.HP".into()],
    };
    // Read (or refused for the tree's depth limit): either way no overflow on drop.
    let got = checkpoint::open_with(&p, &reading);
    assert!(
        got.as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("nested deeper than 128")),
        "{:?}",
        got.map(|i| i.tensors.len())
    );
}

/// Keys Python treats as one are one here; keys whose equality plumbline cannot decide are
/// refused; element counts torch cannot hold are refused.
#[test]
fn python_key_identity_and_torch_limits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pt");
    // {10**16: 1, 1e16: 2}: one key to Python.
    crate::util::torch_zip(
        &p,
        b"\x80\x02}(\x8a\x07\x00\x00\xc1o\xf2\x86#K\x01GCA\xc3y7\xe0\x80\x00K\x02u.",
    );
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("set twice"), "{err}");
    // {1: 1, complex(1, 0): 2}: equal in Python, not decidable here.
    crate::util::torch_zip(
        &p,
        b"\x80\x02}(K\x01K\x01c__builtin__\ncomplex\nK\x01K\x00\x86RK\x02u.",
    );
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("cannot compare as Python does"), "{err}");
    // A tensor of shape (3, 2^62) with zero strides: more elements than torch's int64 count.
    let mut pickle = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x03\x8a\x08".to_vec();
    pickle.extend((1u64 << 62).to_le_bytes());
    pickle.extend(b"\x86K\x00K\x00\x86\x89ccollections\nOrderedDict\n)RtRs.");
    let data = [0u8; 4];
    crate::util::write_zip(
        &p,
        &[
            crate::util::Entry::Bytes("archive/data.pkl", &pickle),
            crate::util::Entry::Bytes("archive/data/0", &data),
            crate::util::Entry::Bytes("archive/version", b"3\n"),
        ],
    );
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(err.contains("tensor size overflows"), "{err}");
    // A storage class that is not torch's (a declared global called FloatStorage).
    let pickle = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagecmylib\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x01\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtRs.";
    crate::util::torch_zip(&p, pickle);
    let reading = checkpoint::Reading {
        safe_globals: vec!["mylib.FloatStorage".into()],
    };
    let err = checkpoint::open_with(&p, &reading).unwrap_err().to_string();
    assert!(
        err.contains("unknown storage class mylib.FloatStorage"),
        "{err}"
    );
    // A persistent id in a legacy file's sys_info pickle: nothing resolves it there.
    let mut head = magic();
    head.extend(b"\x80\x02M\xe9\x03.");
    head.extend(b"\x80\x02X\x01\x00\x00\x00x\x85Q.");
    head.extend(b"\x80\x02}.\x80\x02].");
    std::fs::write(&p, &head).unwrap();
    let err = checkpoint::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("persistent id") && err.contains("sys_info"),
        "{err}"
    );
}

/// A legacy production checkpoint gives the contract's facts and runs the model gates: burn-store
/// loads legacy files too, and its outputs match PyTorch's reference rows.
#[cfg(feature = "native")]
#[test]
fn a_legacy_production_checkpoint_runs_the_model_gates() {
    let (_g, ex) = example_copy();
    std::fs::copy(
        fixture("benign/legacy-momentum_v3.pt"),
        ex.join("checkpoints/momentum_v3.pt"),
    )
    .unwrap();
    for args in [&["gate", "forward-contract"][..], &["inventory"]] {
        let out = plumbline(&ex, args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
        if args[0] == "gate" {
            assert!(text.contains("reference 64 rows"), "{text}");
        }
    }
}
