//! Which version of the files a run reads. `check` and the other commands read the work tree;
//! `hook pre-commit` reads what is about to be committed: the staged contents (the git index, via git2)
//! of tracked files, and the work tree for untracked ones (checkpoints often live outside git). So a
//! staged docs edit that drifts blocks the commit even when the work tree has since been fixed, and an
//! unstaged fix does not let a drifting commit through.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::Repository;

use crate::error::{Error, Result};

pub enum Snapshot {
    WorkTree,
    Staged(Staged),
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Snapshot::WorkTree => f.write_str("WorkTree"),
            Snapshot::Staged(s) => write!(f, "Staged({})", s.workdir.display()),
        }
    }
}

/// The index of a repository.
pub struct Staged {
    // git2's Repository is Send but not Sync (and its Index neither): reads take the lock.
    repo: Mutex<Repository>,
    workdir: PathBuf,
}

impl Staged {
    /// The index of the repository `start` is in.
    pub fn open(start: &Path) -> Result<Staged> {
        let repo = crate::git::open(start)?;
        repo.repo
            .index()
            .map_err(|e| Error::msg(format!("the git index: {}", e.message())))?;
        Ok(Staged {
            workdir: repo.workdir.clone(),
            repo: Mutex::new(repo.repo),
        })
    }

    /// The staged bytes of `path`, or `None` when git does not track it.
    pub fn blob(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        let Some(rel) = self.relative(path) else {
            return Ok(None);
        };
        let repo = self.repo.lock().unwrap_or_else(|e| e.into_inner());
        let index = repo
            .index()
            .map_err(|e| std::io::Error::other(format!("the git index: {}", e.message())))?;
        let Some(entry) = index.get_path(Path::new(&rel), 0) else {
            return Ok(None);
        };
        let blob = repo
            .find_blob(entry.id)
            .map_err(|e| std::io::Error::other(format!("staged {rel}: {}", e.message())))?;
        Ok(Some(blob.content().to_vec()))
    }

    fn relative(&self, path: &Path) -> Option<String> {
        let abs = match path.canonicalize() {
            Ok(p) => p,
            // Deleted from the work tree but maybe still staged: resolve its directory.
            Err(_) => path.parent()?.canonicalize().ok()?.join(path.file_name()?),
        };
        let rel = abs.strip_prefix(&self.workdir).ok()?;
        Some(crate::config::display_path(rel))
    }
}

impl Snapshot {
    /// The bytes of `path` in this snapshot.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        if let Snapshot::Staged(s) = self
            && let Some(bytes) = s.blob(path).map_err(|e| Error::io(path, e))?
        {
            return Ok(bytes);
        }
        std::fs::read(path).map_err(|e| Error::io(path, e))
    }

    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        String::from_utf8(self.read(path)?).map_err(|_| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
            )
        })
    }

    /// The staged bytes of a tracked file (`None` in the work-tree snapshot or for an untracked file),
    /// for readers that otherwise seek in the file (checkpoints).
    pub fn staged(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match self {
            Snapshot::WorkTree => Ok(None),
            Snapshot::Staged(s) => s.blob(path).map_err(|e| Error::io(path, e)),
        }
    }
}
