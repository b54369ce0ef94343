#![no_main]
//! Which globals does a pickle reference? The reading mode (refuse at the first global outside the
//! allowlist) and the recording mode (note every global, refuse none) must agree on the same bytes:
//! a stream the reader accepts references only allowlisted globals in the recording walk, and a
//! refusal names a global the recording walk saw. The corpus this grows is replayed against CPython's
//! unpickler offline (fuzz/differential/compare.py), which records `find_class` the same way.
use libfuzzer_sys::fuzz_target;
use plumbline::checkpoint::pickle::{self, Ids, Rules};
use plumbline::error::CheckpointError;

fuzz_target!(|data: &[u8]| {
    for ids in [Ids::Zip, Ids::None] {
        let (seen, _) = pickle::referenced_globals(data, ids);
        let read = pickle::read_with(data, "fuzz", Rules { ids, declared: &[], decimal: None });
        match read {
            Ok(_) => {
                for g in &seen {
                    let (m, n) = g.rsplit_once('.').unwrap();
                    // A global named through STACK_GLOBAL may itself contain dots in either part;
                    // the allowlist check is on the exact pair, so look for any split that matches.
                    let ok = pickle::is_allowed(m, n)
                        || g.match_indices('.').any(|(i, _)| pickle::is_allowed(&g[..i], &g[i + 1..]));
                    assert!(ok, "accepted a stream that references {g}");
                }
            }
            Err(CheckpointError::UnsafeGlobal { module, name, .. }) if module != "copyreg" => {
                let g = format!("{module}.{name}");
                assert!(seen.contains(&g), "refused {g}, which the recording walk never saw: {seen:?}");
            }
            Err(_) => {}
        }
    }
});
