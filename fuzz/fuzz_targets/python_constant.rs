#![no_main]
//! The Python constant reader on arbitrary source text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(m) = plumbline::source::python::PythonModule::parse("fuzz.py", text.to_owned())
    {
        let _ = m.constant("A");
    }
});
