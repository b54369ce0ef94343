#![no_main]
//! The symbolic pickle machine on arbitrary bytes: a value or an error, never a panic, a hang or an
//! out-of-memory.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = plumbline::checkpoint::pickle::read(data, "fuzz");
});
