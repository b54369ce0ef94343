//! Which version of the files a run reads. `check` and the other commands read the work tree;
//! `hook pre-commit` reads what is about to be committed: the staged contents (the git index, via git2)
//! of tracked files, and the work tree for untracked ones (checkpoints often live outside git). So a
//! staged docs edit that drifts blocks the commit even when the work tree has since been fixed, and an
//! unstaged fix does not let a drifting commit through.

mod checkout;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use git2::Repository;

use crate::error::{Error, Result};
use crate::finding::Location;

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
    /// The staged tree checked out for the config's commands, made on the first command.
    tree: OnceLock<std::result::Result<checkout::Tree, String>>,
    /// How many commands ran in it.
    commands: AtomicUsize,
}

/// The first line of a Git LFS pointer file.
const LFS_POINTER: &[u8] = b"version https://git-lfs.github.com/spec/v1";

impl Staged {
    /// The index of the repository `start` is in: the one in `GIT_INDEX_FILE` when git sets it (for
    /// `git commit -a`, `git commit <paths>` and `--only` git hands the hook a temporary index), else the
    /// repository's own.
    pub fn open(start: &Path) -> Result<Staged> {
        let repo = crate::git::open(start)?;
        if let Some(file) = std::env::var_os("GIT_INDEX_FILE").filter(|f| !f.is_empty()) {
            let path = start.join(file);
            let mut index = git2::Index::open(&path).map_err(|e| {
                Error::msg(format!(
                    "the index GIT_INDEX_FILE names ({}): {}",
                    path.display(),
                    e.message()
                ))
            })?;
            repo.repo
                .set_index(&mut index)
                .map_err(|e| Error::msg(format!("the git index: {}", e.message())))?;
        }
        repo.repo
            .index()
            .map_err(|e| Error::msg(format!("the git index: {}", e.message())))?;
        Ok(Staged {
            workdir: repo.workdir.clone(),
            repo: Mutex::new(repo.repo),
            tree: OnceLock::new(),
            commands: AtomicUsize::new(0),
        })
    }

    /// The staged bytes of `path`: `Some` for a tracked file, `None` for one git does not track (read
    /// from the work tree). A file in HEAD but not in the index is staged for deletion: NotFound, even
    /// when it is still on disk. A symlink is read as the staged link's target, and a Git LFS pointer
    /// as the work-tree file it stands for.
    pub fn blob(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        let Some(rel) = self.relative(path) else {
            return Ok(None);
        };
        let repo = self.repo.lock().unwrap_or_else(|e| e.into_inner());
        let index = repo
            .index()
            .map_err(|e| std::io::Error::other(format!("the git index: {}", e.message())))?;
        let Some(entry) = index.get_path(Path::new(&rel), 0) else {
            let in_head = repo
                .head()
                .and_then(|h| h.peel_to_tree())
                .is_ok_and(|t| t.get_path(Path::new(&rel)).is_ok());
            if in_head {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "staged for deletion",
                ));
            }
            return Ok(None);
        };
        let bytes = repo
            .find_blob(entry.id)
            .map_err(|e| std::io::Error::other(format!("staged {rel}: {}", e.message())))?
            .content()
            .to_vec();
        drop(index);
        drop(repo);
        if entry.mode == 0o120000 {
            // A symlink: its blob is the target, relative to the link's directory.
            let target = String::from_utf8_lossy(&bytes).into_owned();
            let dir = self.workdir.join(&rel);
            let dir = dir.parent().unwrap_or(&self.workdir);
            return match self.blob(&dir.join(target))? {
                Some(b) => Ok(Some(b)),
                None => std::fs::read(dir.join(String::from_utf8_lossy(&bytes).as_ref())).map(Some),
            };
        }
        if bytes.starts_with(LFS_POINTER) {
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// `dir` (in the work tree) in the staged tree, checked out on the first call.
    fn command_dir(&self, dir: &Path) -> Result<PathBuf> {
        let tree = self
            .tree
            .get_or_init(|| {
                let repo = self.repo.lock().unwrap_or_else(|e| e.into_inner());
                checkout::Tree::new(&repo, &self.workdir).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                Error::msg(format!(
                    "checking out the staged tree for the config's commands: {e}"
                ))
            })?;
        let abs = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let rel = abs.strip_prefix(&self.workdir).map_err(|_| {
            Error::msg(format!(
                "{}: the config's directory is outside the repository {}; the hook runs the config's commands on the staged tree, so the config must be in it",
                dir.display(),
                self.workdir.display()
            ))
        })?;
        self.commands.fetch_add(1, Ordering::Relaxed);
        Ok(tree.path().join(rel))
    }

    fn relative(&self, path: &Path) -> Option<String> {
        let abs = crate::git::absolute(path).ok()?;
        let rel = abs.strip_prefix(&self.workdir).ok()?;
        Some(crate::paths::display_path(rel))
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

    /// The text of `path` in this snapshot, or `None` when it has no such file (a file staged for
    /// deletion has none), for files plumbline looks for (a checkpoint's sidecar).
    pub fn read_if_exists(&self, path: &Path) -> Result<Option<String>> {
        let bytes = match self {
            Snapshot::Staged(s) => match s.blob(path) {
                Ok(Some(bytes)) => Some(bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path, e)),
                Ok(None) => None,
            },
            Snapshot::WorkTree => None,
        };
        let bytes = match bytes {
            Some(b) => b,
            None => match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path, e)),
            },
        };
        utf8(path, bytes).map(Some)
    }

    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        utf8(path, self.read(path)?)
    }

    /// The directory a command of a config in `dir` runs in: `dir` itself in the work tree; in the
    /// staged snapshot the same directory in the staged tree (the index checked out to a temporary
    /// directory, untracked files linked from the work tree), so a command reads what is about to be
    /// committed, as every other source does.
    pub fn command_dir(&self, dir: &Path) -> Result<PathBuf> {
        match self {
            Snapshot::WorkTree => Ok(dir.to_path_buf()),
            Snapshot::Staged(s) => s.command_dir(dir),
        }
    }

    /// How many commands ran on the staged tree and how long checking it out took (`None` when none
    /// ran, or in the work-tree snapshot).
    pub fn staged_commands(&self) -> Option<(usize, Duration)> {
        let Snapshot::Staged(s) = self else {
            return None;
        };
        let n = s.commands.load(Ordering::Relaxed);
        let took = s.tree.get()?.as_ref().ok()?.took;
        (n > 0).then_some((n, took))
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

/// The 1-based line of byte offset `at` in `bytes`.
pub fn line_of(bytes: &[u8], at: usize) -> u32 {
    let newlines = bytes[..at.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    u32::try_from(newlines + 1).unwrap_or(u32::MAX)
}

/// `bytes` as UTF-8 text, or an error at the line of the first byte that is not, with its offset.
pub fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line = line_of(bytes, at);
        Error::at(
            Location::at(crate::paths::display_path(path), line),
            format!(
                "not UTF-8 text: byte 0x{:02X} at byte offset {at} (line {line}) is not valid UTF-8; save the file as UTF-8",
                bytes[at]
            ),
        )
    })
}
