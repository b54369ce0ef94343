#![no_main]
//! A torch.save archive from arbitrary bytes, through the zip reader, the pickle machine, the tree
//! conversion and the storage checks.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = plumbline::checkpoint::torch::read(std::io::Cursor::new(data), plumbline::checkpoint::pickle::Rules::ZIP);
});
