//! The staged tree on disk, for the config's commands in `hook pre-commit`: the index checked out to a
//! temporary directory (git2, never touching the repository's own index or work tree), with what the
//! index does not track linked from the work tree, as [`super::Staged::blob`] reads it. A directory
//! that holds no tracked file is linked whole (a checkpoint folder, a data folder), so the cost is the
//! tracked files, not the work tree. A file staged for deletion is left out, and a Git LFS pointer is
//! replaced by a link to the work-tree file it stands for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::Repository;

use crate::error::{Error, Result};

pub struct Tree {
    dir: tempfile::TempDir,
    /// How long checking it out took.
    pub took: Duration,
}

impl Tree {
    pub fn new(repo: &Repository, workdir: &Path) -> Result<Tree> {
        let start = Instant::now();
        let git = |what: &str, e: git2::Error| Error::msg(format!("{what}: {}", e.message()));
        let dir = tempfile::Builder::new()
            .prefix("plumbline-staged-")
            .tempdir()
            .map_err(|e| Error::msg(format!("a temporary directory: {e}")))?;
        let mut index = repo.index().map_err(|e| git("the git index", e))?;
        let mut opts = git2::build::CheckoutBuilder::new();
        opts.target_dir(dir.path())
            .force()
            .update_index(false)
            .disable_filters(false);
        repo.checkout_index(Some(&mut index), Some(&mut opts))
            .map_err(|e| git("checking out the index", e))?;
        let tracked = Tracked::of(repo, &index)?;
        drop(index);
        for rel in &tracked.lfs {
            let at = dir.path().join(rel);
            std::fs::remove_file(&at).map_err(|e| Error::io(&at, e))?;
            link(&workdir.join(rel), &at)?;
        }
        link_untracked(workdir, dir.path(), Path::new(""), &tracked)?;
        Ok(Tree {
            dir,
            took: start.elapsed(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What the index and HEAD hold, as `/`-separated paths relative to the root.
struct Tracked {
    files: BTreeSet<String>,
    /// Every directory with a tracked file somewhere under it.
    dirs: BTreeSet<String>,
    /// Files in HEAD that the index no longer has (staged for deletion).
    deleted: BTreeSet<String>,
    /// Tracked files whose staged blob is a Git LFS pointer.
    lfs: Vec<String>,
}

impl Tracked {
    fn of(repo: &Repository, index: &git2::Index) -> Result<Tracked> {
        let mut files = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        let mut lfs = Vec::new();
        let odb = repo
            .odb()
            .map_err(|e| Error::msg(format!("the object database: {}", e.message())))?;
        for entry in index.iter() {
            let rel = String::from_utf8_lossy(&entry.path).into_owned();
            // A submodule (gitlink) checks out as an empty directory: it is linked from the work tree
            // like an untracked directory.
            if entry.mode == 0o160000 {
                continue;
            }
            let mut at = rel.as_str();
            while let Some(i) = at.rfind('/') {
                at = &at[..i];
                dirs.insert(at.to_owned());
            }
            // An LFS pointer is a small text file; read only blobs of that size (the index's own size
            // is the work-tree file's, which for an LFS file is the large real one).
            if entry.mode != 0o120000
                && odb.read_header(entry.id).is_ok_and(|(size, _)| size < 1024)
                && repo
                    .find_blob(entry.id)
                    .is_ok_and(|b| b.content().starts_with(super::LFS_POINTER))
            {
                lfs.push(rel.clone());
            }
            files.insert(rel);
        }
        let mut deleted = BTreeSet::new();
        if let Ok(head) = repo.head().and_then(|h| h.peel_to_tree()) {
            head.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() == Some(git2::ObjectType::Blob) {
                    let rel = format!("{dir}{}", entry.name().unwrap_or_default());
                    if !files.contains(&rel) {
                        deleted.insert(rel);
                    }
                }
                git2::TreeWalkResult::Ok
            })
            .map_err(|e| Error::msg(format!("reading HEAD: {}", e.message())))?;
        }
        Ok(Tracked {
            files,
            dirs,
            deleted,
            lfs,
        })
    }
}

/// Link into `to` every entry of `workdir/rel` the index does not track, recursing only into
/// directories that hold tracked files.
fn link_untracked(workdir: &Path, to: &Path, rel: &Path, tracked: &Tracked) -> Result<()> {
    let here = workdir.join(rel);
    let entries = std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&here, e))?;
        let name = entry.file_name();
        if rel.as_os_str().is_empty() && name == ".git" {
            continue;
        }
        let child = rel.join(&name);
        let key = crate::paths::display_path(&child);
        if tracked.files.contains(&key) || tracked.deleted.contains(&key) {
            continue;
        }
        let is_dir = entry
            .file_type()
            .map_err(|e| Error::io(entry.path(), e))?
            .is_dir();
        if is_dir && tracked.dirs.contains(&key) {
            link_untracked(workdir, to, &child, tracked)?;
        } else if !is_dir || !holds_deleted(&key, tracked) {
            link(&entry.path(), &to.join(&child))?;
        } else {
            // A directory whose only tracked files are staged for deletion: its other files, one by one.
            std::fs::create_dir_all(to.join(&child)).map_err(|e| Error::io(to.join(&child), e))?;
            link_untracked(workdir, to, &child, tracked)?;
        }
    }
    Ok(())
}

fn holds_deleted(dir: &str, tracked: &Tracked) -> bool {
    let prefix = format!("{dir}/");
    tracked
        .deleted
        .range(prefix.clone()..)
        .next()
        .is_some_and(|d| d.starts_with(&prefix))
}

fn link(target: &Path, at: &PathBuf) -> Result<()> {
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    // What the checkout already put there wins (a name that differs from the work tree's only in case
    // on a case-insensitive file system); an empty directory is a submodule's placeholder.
    if let Ok(meta) = std::fs::symlink_metadata(at) {
        let empty_dir =
            meta.is_dir() && std::fs::read_dir(at).is_ok_and(|mut d| d.next().is_none());
        if !empty_dir {
            return Ok(());
        }
        std::fs::remove_dir(at).map_err(|e| Error::io(at, e))?;
    }
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(target, at);
    #[cfg(windows)]
    let linked = if target.is_dir() {
        std::os::windows::fs::symlink_dir(target, at)
    } else {
        std::os::windows::fs::symlink_file(target, at)
    };
    linked.map_err(|e| Error::io(at, e))
}
