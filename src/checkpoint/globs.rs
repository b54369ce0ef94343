//! The checkpoint files a config's globs name: every file each pattern matches under the config's
//! directory (taken literally; only the pattern is a glob), sorted and deduplicated, plus the files a run
//! adds (`--checkpoint`). A file plumbline cannot read is still listed: the inventory reports it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;

/// The files the globs found, and the patterns that matched nothing.
#[derive(Debug, Default)]
pub struct Expanded {
    pub files: Vec<PathBuf>,
    pub empty: Vec<String>,
}

/// Expand `globs` under `root`; `config` is named in errors (a pattern that does not parse).
pub fn expand(root: &Path, config: &Path, globs: &[String], extra: &[PathBuf]) -> Result<Expanded> {
    let mut out = Expanded::default();
    for pattern in globs {
        let escaped = glob::Pattern::escape(&root.to_string_lossy());
        let full = format!("{escaped}/{pattern}");
        let paths = glob::glob(&full).map_err(|e| {
            Error::at(
                Location::file(display_path(config)),
                format!("checkpoint glob `{pattern}`: {e}"),
            )
        })?;
        let before = out.files.len();
        for p in paths {
            let p = p.map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?;
            // Every file the glob matches is read: one plumbline cannot read (an unknown
            // extension) is an unreadable-checkpoint finding, not skipped in silence.
            if p.is_file() {
                out.files.push(p);
            }
        }
        if out.files.len() == before {
            out.empty.push(pattern.clone());
        }
    }
    out.files.extend(extra.iter().cloned());
    out.files.sort();
    out.files.dedup();
    Ok(out)
}

/// Whether two paths name the same file (canonically, else as written).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
