//! The repository, read with git2 (libgit2; no `git` process): commits, merge bases and the files a
//! revision holds (`base` parses the docs contract committed at a run's base revision from them).
//! plumbline only reads; it never writes objects, refs or the index.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

use crate::error::{Error, Result};

/// An open repository and its work tree.
pub struct Repo {
    pub repo: Repository,
    pub workdir: PathBuf,
}

fn err(what: impl std::fmt::Display) -> Error {
    Error::msg(what.to_string())
}

/// The repository `start` is in.
pub fn open(start: &Path) -> Result<Repo> {
    let repo = Repository::discover(start).map_err(|e| {
        err(format!(
            "{}: not in a git repository ({})",
            crate::paths::display_path(start),
            e.message()
        ))
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| err("a bare repository has no work tree to check"))?;
    let workdir = workdir.canonicalize().map_err(|e| Error::io(workdir, e))?;
    Ok(Repo { repo, workdir })
}

impl Repo {
    /// `path` (a file in the work tree, existing or not) relative to the repository root, `/`-separated.
    pub fn relative(&self, path: &Path) -> Result<String> {
        let abs = absolute(path)?;
        let rel = abs.strip_prefix(&self.workdir).map_err(|_| {
            err(format!(
                "{} is outside the repository at {}",
                abs.display(),
                self.workdir.display()
            ))
        })?;
        Ok(crate::paths::display_path(rel))
    }

    /// The commit `rev` names. A commit id this clone does not have (a shallow checkout) gets a message
    /// that says so and how to fetch it.
    pub fn commit(&self, rev: &str) -> Result<Oid> {
        match self
            .repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
        {
            Ok(c) => Ok(c.id()),
            Err(e) => {
                let looks_like_id = rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit());
                let shallow = self.repo.is_shallow();
                Err(err(if looks_like_id {
                    format!(
                        "the base commit {rev} is not in this clone{}: fetch it (`git fetch --depth=1 origin {rev}`) or check out with `fetch-depth: 0`",
                        if shallow { " (a shallow checkout)" } else { "" }
                    )
                } else {
                    format!(
                        "no revision `{rev}` in {} ({}){}",
                        self.workdir.display(),
                        e.message(),
                        if shallow {
                            "; this is a shallow checkout: fetch the base branch (`git fetch --depth=1 origin <branch>`)"
                        } else {
                            ""
                        }
                    )
                }))
            }
        }
    }

    /// The merge base of `base` and `HEAD`, or `base` itself when history does not connect them (a
    /// shallow clone with only the base commit fetched).
    pub fn merge_base(&self, base: Oid) -> Result<(Oid, bool)> {
        let head = self
            .repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map_err(|e| err(format!("HEAD: {}", e.message())))?;
        match self.repo.merge_base(base, head.id()) {
            Ok(mb) => Ok((mb, true)),
            // History that does not connect (a shallow clone): compare against the base itself.
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok((base, false)),
            Err(e) => Err(err(format!(
                "the merge base of {base} and HEAD: {}",
                e.message()
            ))),
        }
    }

    /// The bytes of `rel` in `commit`'s tree (`None` when the file is not there).
    pub fn file_at(&self, commit: Oid, rel: &str) -> Result<Option<Vec<u8>>> {
        let tree = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| err(format!("commit {commit}: {}", e.message())))?;
        let entry = match tree.get_path(Path::new(rel)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("{rel} at {commit}: {}", e.message()))),
        };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        let blob = self
            .repo
            .find_blob(entry.id())
            .map_err(|e| err(format!("{rel} at {commit}: {}", e.message())))?;
        Ok(Some(blob.content().to_vec()))
    }

    pub fn short(&self, oid: Oid) -> String {
        oid.to_string()[..12].to_owned()
    }
}

/// `path` made absolute by canonicalizing its directory only: the file may not exist (a docs file
/// deleted in the work tree), and a symlink is the link itself, not its target (git tracks the link).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| err(format!("{}: not a file path", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    Ok(dir.join(name))
}
