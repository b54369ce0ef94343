//! plumbline's side of the differential test: for each file named on the command line (or every
//! file of each directory named), one JSON line with the globals the pickle machine references in
//! recording mode and how the walk ended. See compare.py.
use plumbline::checkpoint::pickle::{self, Ids};

fn main() {
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        let p = std::path::PathBuf::from(&arg);
        if p.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p);
        }
    }
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let (globals, end) = pickle::referenced_globals(&data, Ids::None);
        let end = match end {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        println!(
            "{}",
            serde_json::json!({"file": f.file_name().unwrap().to_string_lossy(), "globals": globals, "end": end})
        );
    }
}
