#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = plumbline::checkpoint::safetensors::read(std::io::Cursor::new(data));
});
