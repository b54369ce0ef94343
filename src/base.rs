//! The base revision of a run (`--base`, or a pull request's base): git reads its tree, and the docs
//! contract committed there is parsed here, above both.

use crate::config::Loaded;
use crate::contract::Committed;
use crate::error::Result;

/// The base revision of a run: the committed docs contract there, and which docs changed since.
#[derive(Debug, Clone)]
pub struct Base {
    /// As the user named it (`main`, `origin/main`, a commit id).
    pub rev: String,
    /// The commit compared against (the merge base with HEAD where history has it), short.
    pub commit: String,
    /// Whether `commit` is the merge base (else the base commit itself).
    pub merge_base: bool,
    /// The docs contract JSON's path, repository-relative.
    pub json_path: String,
    /// The contract committed there, upgraded to today's format: `None` when the file did not exist,
    /// `Err` when it does not parse.
    pub contract: Option<std::result::Result<Committed, String>>,
    /// Markdown docs whose bytes differ between the base and the work tree.
    pub docs_changed: Vec<String>,
}

impl Base {
    pub fn label(&self) -> String {
        let mut s = if self.rev.starts_with(&self.commit) || self.commit.starts_with(&self.rev) {
            format!("`{}`", self.commit)
        } else {
            format!("`{}` ({})", self.rev, self.commit)
        };
        if !self.merge_base {
            s.push_str(" (its tip: no merge base with HEAD in this clone)");
        }
        s
    }
}

/// Read the base revision `rev` for a run of `loaded`.
pub fn read(loaded: &Loaded, rev: &str) -> Result<Base> {
    let repo = crate::git::open(&loaded.root)?;
    let wanted = repo.commit(rev)?;
    let (commit, merge_base) = repo.merge_base(wanted)?;
    let json_rel = repo.relative(&loaded.resolve(&loaded.config.docs.json))?;
    let contract = repo
        .file_at(commit, &json_rel)?
        .map(|bytes| crate::contract::read(&bytes));
    let mut docs_changed = Vec::new();
    for md in &loaded.config.docs.markdown {
        let path = loaded.resolve(md);
        let rel = repo.relative(&path)?;
        let now = std::fs::read(&path).ok();
        if repo.file_at(commit, &rel)? != now {
            docs_changed.push(rel);
        }
    }
    Ok(Base {
        rev: rev.to_owned(),
        commit: repo.short(commit),
        merge_base,
        json_path: json_rel,
        contract,
        docs_changed,
    })
}
