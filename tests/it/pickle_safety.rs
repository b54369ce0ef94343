//! A checkpoint whose pickle references code is refused as a whole, and nothing runs. Each payload would
//! create a sentinel file if loaded with Python's pickle; the test asserts the refusal names the global
//! *and* that the sentinel does not exist. `payloads_are_live` proves the payloads are real: Python's
//! own `pickle.load` on the same bytes does create the sentinel.

use std::path::Path;

use plumbline::error::{CheckpointError, Error};

use crate::util::{pstr, torch_zip};

/// (what, expected module, expected name, pickle bytes writing `sentinel`). The opcode that carries the
/// refused reference is the first word of `what`.
fn payloads(sentinel: &Path) -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    let s = sentinel.display().to_string();
    let cmd = format!("touch {s}");
    let mut out = Vec::new();

    // GLOBAL posix.system + REDUCE (what pickling os.system on Linux writes).
    let mut p = b"\x80\x02cposix\nsystem\n".to_vec();
    p.extend(pstr(&cmd));
    p.extend(b"\x85R.");
    out.push(("GLOBAL posix.system", "posix", "system", p));

    // GLOBAL nt.system (os.system pickled on Windows).
    let mut p = b"\x80\x02cnt\nsystem\n".to_vec();
    p.extend(pstr(&cmd));
    p.extend(b"\x85R.");
    out.push(("GLOBAL nt.system", "nt", "system", p));

    // STACK_GLOBAL builtins.eval (protocol 4).
    let mut p = b"\x80\x04".to_vec();
    p.extend(pstr("builtins"));
    p.extend(pstr("eval"));
    p.push(0x93);
    p.extend(pstr(&format!("__import__('os').system('{cmd}')")));
    p.extend(b"\x85R.");
    out.push(("STACK_GLOBAL builtins.eval", "builtins", "eval", p));

    // subprocess.Popen(["touch", s]) via STACK_GLOBAL + REDUCE, after a harmless-looking dict.
    let mut p = b"\x80\x04}(".to_vec();
    p.extend(pstr("feature_cols"));
    p.extend(b"]");
    p.extend(pstr("subprocess"));
    p.extend(pstr("Popen"));
    p.push(0x93);
    p.extend(b"](");
    p.extend(pstr("touch"));
    p.extend(pstr(&s));
    p.extend(b"e\x85Rau.");
    out.push((
        "STACK_GLOBAL subprocess.Popen inside metadata",
        "subprocess",
        "Popen",
        p,
    ));

    // INST: MARK args INST module name (protocol 0).
    let mut p = b"(".to_vec();
    p.extend(format!("V{cmd}\n").as_bytes());
    p.extend(b"ios\nsystem\n.");
    out.push(("INST os.system", "os", "system", p));

    // OBJ: MARK class args OBJ.
    let mut p = b"\x80\x02(cos\nsystem\n".to_vec();
    p.extend(pstr(&cmd));
    p.extend(b"o.");
    out.push(("GLOBAL os.system for OBJ", "os", "system", p));

    // NEWOBJ: class args-tuple NEWOBJ, then REDUCE on the result's class.
    let mut p = b"\x80\x02csubprocess\nPopen\n".to_vec();
    p.extend(b"]");
    p.extend(pstr("touch"));
    p.extend(b"a");
    p.extend(pstr(&s));
    p.extend(b"a\x85\x81.");
    out.push((
        "GLOBAL subprocess.Popen for NEWOBJ",
        "subprocess",
        "Popen",
        p,
    ));

    // REDUCE on a global hidden behind the memo: the global is stored, fetched with BINGET, called.
    let mut p = b"\x80\x02cposix\nsystem\nq\x010h\x01".to_vec();
    p.extend(pstr(&cmd));
    p.extend(b"\x85R.");
    out.push((
        "GLOBAL posix.system for REDUCE via memo",
        "posix",
        "system",
        p,
    ));

    // EXT1/EXT2/EXT4: the copyreg extension registry names globals by number; nothing to check.
    for (op, arg) in [
        (0x82u8, vec![1u8]),
        (0x83, vec![1, 0]),
        (0x84, vec![1, 0, 0, 0]),
    ] {
        let mut p = vec![0x80, 0x02, op];
        p.extend(arg);
        p.extend(pstr(&cmd));
        p.extend(b"\x85R.");
        out.push(("EXT registry", "copyreg", "extension registry", p));
    }
    out
}

#[test]
fn every_payload_is_refused_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sentinel = dir.path().join("pwned");
    for (i, (what, module, name, pickle)) in payloads(&sentinel).into_iter().enumerate() {
        let pt = dir.path().join(format!("payload_{i}.pt"));
        torch_zip(&pt, &pickle);
        let err = plumbline::checkpoint::open(&pt).expect_err(what);
        match &err {
            Error::Checkpoint {
                source:
                    CheckpointError::UnsafeGlobal {
                        module: m, name: n, ..
                    },
                path,
            } => {
                assert_eq!((m.as_str(), n.as_str()), (module, name), "{what}");
                assert_eq!(path, &pt);
            }
            other => panic!("{what}: expected a refusal, got {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("`{module}.{name}`")) && msg.contains("refused"),
            "{what}: {msg}"
        );
        assert!(
            !sentinel.exists(),
            "{what}: the sentinel exists, something ran"
        );
    }
}

#[test]
fn refusal_through_the_cli_exits_2_naming_file_and_global() {
    let (_guard, ex) = crate::util::example_copy();
    let sentinel = ex.join("pwned");
    let (_, _, _, pickle) = payloads(&sentinel).remove(0);
    torch_zip(&ex.join("checkpoints/momentum_v3.pt"), &pickle);
    let o = crate::util::plumbline(&ex, &["check"]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::util::stderr(&o));
    let err = crate::util::stderr(&o);
    assert!(
        err.contains("checkpoints/momentum_v3.pt") && err.contains("`posix.system`"),
        "{err}"
    );
    assert!(!sentinel.exists());
    // The inventory lists it as an unsafe file (exit 1), still without running it.
    let o = crate::util::plumbline(&ex, &["inventory"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        crate::util::stdout(&o).contains("error[checkpoint-unsafe-pickle]"),
        "{}",
        crate::util::stdout(&o)
    );
    assert!(!sentinel.exists());
}

/// The payloads are live: Python's pickle runs them. (Skips the Windows-only `nt` module and NEWOBJ,
/// whose `__new__` allocates without running the command.) Needs python3, which CI has; with CI=true
/// its absence fails the test.
#[test]
fn payloads_are_live() {
    if !crate::util::python3_or_skip("proving the payloads are live") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, (what, _, _, _)) in payloads(Path::new("/unused")).into_iter().enumerate() {
        if what.contains("nt.system") || what.contains("NEWOBJ") || what.starts_with("EXT") {
            continue;
        }
        let sentinel = dir.path().join(format!("ran_{i}"));
        let pickle = payloads(&sentinel).remove(i).3;
        let file = dir.path().join(format!("p{i}.pkl"));
        std::fs::write(&file, &pickle).unwrap();
        let _ = std::process::Command::new("python3")
            .args([
                "-c",
                "import pickle,sys,time; pickle.load(open(sys.argv[1],'rb')); time.sleep(0.2)",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            sentinel.exists(),
            "{what}: Python did not run the payload, so the refusal test proves nothing"
        );
    }
}

/// Allowlisted callables reached through OBJ, NEWOBJ and REDUCE are described, never called; ones that
/// rebuild tensors plumbline cannot describe are refused rather than dropped from the tensor table.
#[test]
fn allowlisted_callables_are_not_called() {
    use plumbline::checkpoint::pickle::{Value, read};
    // NEWOBJ on torch.Size with a tuple: an opaque value.
    let v = read(b"\x80\x02ctorch\nSize\nK\x03\x85\x81.", "t").unwrap();
    assert!(
        matches!(&v.root, Value::Opaque(n) if n.as_str() == "torch.Size"),
        "{:?}",
        v.root
    );
    // OBJ on collections.OrderedDict with no arguments: an empty dict.
    let v = read(b"\x80\x02(ccollections\nOrderedDict\no.", "t").unwrap();
    assert!(matches!(&v.root, Value::Dict(d) if d.borrow().is_empty()));
    // A quantized/subclass rebuilder is allowlisted by torch but not described here: refused.
    let err = read(b"\x80\x02ctorch._utils\n_rebuild_sparse_tensor\n)R.", "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unsupported")
            && err.contains("a sparse tensor (torch._utils._rebuild_sparse_tensor)"),
        "{err}"
    );
    // A dotted name split differently from the allowlist entry is not on it.
    let err = read(b"\x80\x02ctorch\n_utils._rebuild_tensor_v2\n.", "t")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`torch._utils._rebuild_tensor_v2`") && err.contains("refused"),
        "{err}"
    );
}

/// A list appended to itself, and a tuple inside a list inside that tuple: reference cycles. Reading
/// them must not leak (the fuzzer's leak sanitizer found the first); dropping clears every container.
#[test]
fn cyclic_values_are_released() {
    use plumbline::checkpoint::pickle::{Value, read};
    // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP: l = []; l.append(l)
    let p = read(b"\x80\x02]q\x00h\x00a.", "t").unwrap();
    let Value::List(l) = &p.root else {
        panic!("not a list")
    };
    let weak = std::rc::Rc::downgrade(l);
    assert_eq!(
        std::rc::Rc::strong_count(l),
        3,
        "root, the list itself, the tracked copy"
    );
    drop(p);
    assert!(weak.upgrade().is_none(), "the cycle was not broken");
}

/// Hostile shapes that random mutation will not find: each must end in a value or an error, quickly
/// and without exhausting the stack or memory.
#[test]
fn pickle_bombs_are_contained() {
    use plumbline::checkpoint::pickle::read;
    // A million nested tuples: dropping them must not recurse a million times.
    let mut p = b"\x80\x02N".to_vec();
    p.extend(std::iter::repeat_n(0x85u8, 1_000_000));
    p.push(b'.');
    assert!(read(&p, "t").is_ok());
    // And as a checkpoint: the tree conversion refuses the depth.
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("deep.pt");
    torch_zip(&pt, &p);
    let err = plumbline::checkpoint::open(&pt).unwrap_err().to_string();
    assert!(err.contains("nested deeper than"), "{err}");

    // A 16 MiB string duplicated a million times: shared, not copied.
    let big = "x".repeat(16 << 20);
    let mut p = b"\x80\x04(".to_vec();
    p.push(b'X');
    p.extend_from_slice(&(big.len() as u32).to_le_bytes());
    p.extend_from_slice(big.as_bytes());
    p.extend(std::iter::repeat_n(b'2', 1_000_000));
    p.extend(b"l.");
    assert!(read(&p, "t").is_ok());

    // {"k": [[...[s, s]..., ...]]}: a 1 KiB string in a list twice, that list in a list twice, 30 deep:
    // 2^30 strings if expanded. Each level: BINPUT i, POP, EMPTY_LIST, BINGET i, APPEND, BINGET i, APPEND.
    let mut p2 = b"\x80\x02}".to_vec();
    p2.extend(pstr("k"));
    p2.extend(pstr(&"y".repeat(1024)));
    for i in 0..30u8 {
        p2.extend([b'q', i, b'0', b']', b'h', i, b'a', b'h', i, b'a']);
    }
    p2.extend(b"s.");
    assert!(
        read(&p2, "t").is_ok(),
        "the pickle itself is small and shared"
    );
    let pt = dir.path().join("wide.pt");
    torch_zip(&pt, &p2);
    let err = plumbline::checkpoint::open(&pt).unwrap_err().to_string();
    assert!(err.contains("more than 256 MiB of text"), "{err}");
}
