//! The checkpoint files a config's globs name: every file each pattern matches under the config's
//! directory (taken literally; only the pattern is a glob), sorted and deduplicated, plus the files a run
//! adds (`--checkpoint`). A file plumbline cannot read is still listed: the inventory reports it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;

/// The files the globs found, the patterns that matched nothing, and what a glob matched that is not a
/// readable file (a dangling or looping symbolic link, a directory named like a checkpoint), with why.
#[derive(Debug, Default)]
pub struct Expanded {
    pub files: Vec<PathBuf>,
    pub empty: Vec<String>,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// What a path a glob matched is.
enum Match {
    /// A regular file (through any symbolic links), by its canonical path.
    File(PathBuf),
    /// Not a checkpoint file, and not worth a finding (a plain directory a `**` pattern walks through).
    Skip,
    /// Named like a checkpoint or a link to nothing: the inventory reports why it cannot be read.
    Unreadable(String),
}

/// Resolve what `p` is, following symbolic links once to their end.
fn classify(p: &Path) -> Match {
    let link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let canonical = match p.canonicalize() {
        Ok(c) => c,
        Err(e) if link && e.raw_os_error() == Some(40) => {
            return Match::Unreadable("a symbolic link that loops (ELOOP)".into());
        }
        Err(e) if link && e.kind() == std::io::ErrorKind::NotFound => {
            let target = std::fs::read_link(p).map_or_else(|_| "?".into(), |t| display_path(&t));
            return Match::Unreadable(format!("a symbolic link to {target}, which does not exist"));
        }
        Err(e) => return Match::Unreadable(e.to_string()),
    };
    match std::fs::metadata(&canonical) {
        Ok(m) if m.is_file() => Match::File(canonical),
        Ok(m) if m.is_dir() && super::Format::from_path(p).is_none() => Match::Skip,
        Ok(m) if m.is_dir() => Match::Unreadable("a directory, not a checkpoint file".into()),
        Ok(_) => Match::Unreadable("not a regular file".into()),
        Err(e) => Match::Unreadable(e.to_string()),
    }
}

/// Expand `globs` under `root`; `config` is named in errors (a pattern that does not parse). Each file is
/// listed once however many links lead to it, under a path that is not a link where there is one.
pub fn expand(root: &Path, config: &Path, globs: &[String], extra: &[PathBuf]) -> Result<Expanded> {
    let mut out = Expanded::default();
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    for pattern in globs {
        let escaped = glob::Pattern::escape(&root.to_string_lossy());
        let full = format!("{escaped}/{pattern}");
        let paths = glob::glob(&full).map_err(|e| {
            Error::at(
                Location::file(display_path(config)),
                format!("checkpoint glob `{pattern}`: {e}"),
            )
        })?;
        let before = found.len() + out.unreadable.len();
        for p in paths {
            let p = p.map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?;
            // Every file the glob matches is read: one plumbline cannot read (an unknown
            // extension) is an unreadable-checkpoint finding, not skipped in silence.
            match classify(&p) {
                Match::File(canonical) => found.push((p, canonical)),
                Match::Skip => {}
                Match::Unreadable(why) => out.unreadable.push((p, why)),
            }
        }
        if found.len() + out.unreadable.len() == before {
            out.empty.push(pattern.clone());
        }
    }
    found.extend(
        extra
            .iter()
            .map(|p| (p.clone(), p.canonicalize().unwrap_or(p.clone()))),
    );
    // Of the paths that reach one file, keep one that is not a link (else the first in order).
    let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    found.sort_by_cached_key(|(p, canonical)| (canonical.clone(), is_link(p), p.clone()));
    found.dedup_by(|a, b| a.1 == b.1);
    out.files = found.into_iter().map(|(p, _)| p).collect();
    out.files.sort();
    out.unreadable.sort();
    out.unreadable.dedup();
    Ok(out)
}

/// Whether two paths name the same file (canonically, else as written).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
