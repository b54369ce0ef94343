//! `--changed-from REF`: which gates a change needs. The changed files are the difference between the
//! merge base of REF and HEAD and what would be committed plus the work tree (git2: the base tree against
//! the index and the work tree, untracked files included). Each is matched against the config's
//! `[[paths]]` rules; a file under the config's directory that no rule matches needs every gate (an
//! unknown change is not a safe change). Files outside the config's directory count only when a rule
//! or the config names them (`../shared/features.py`): the rest of a monorepo is not this pipeline.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::{Loaded, PathRule};
use crate::error::{Error, Result};

/// The gates a change needs and why, shown for the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    pub gates: BTreeSet<String>,
    pub reason: String,
}

/// The rules when the config has none: the docs files need the docs gates; anything else every gate.
pub fn default_rules(loaded: &Loaded) -> Vec<PathRule> {
    let docs = &loaded.config.docs;
    vec![PathRule {
        paths: std::iter::once(docs.json.clone())
            .chain(docs.markdown.iter().cloned())
            .collect(),
        gates: vec!["docs-drift".into(), "contract-changes".into()],
    }]
}

/// The gates `files` (config-relative, `/`-separated; `../` for files outside) need.
pub fn needed_for(loaded: &Loaded, files: &[String], rev: &str) -> Needed {
    let rules = if loaded.config.paths.is_empty() {
        default_rules(loaded)
    } else {
        loaded.config.paths.clone()
    };
    let referenced = referenced(loaded);
    let every = || {
        crate::gates::GATES
            .iter()
            .map(|g| g.name.to_owned())
            .collect()
    };
    let mut gates = BTreeSet::new();
    let mut unmatched = Vec::new();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for f in files {
        let matched: Vec<&PathRule> = rules
            .iter()
            .filter(|r| {
                r.paths
                    .iter()
                    .any(|p| glob::Pattern::new(p).is_ok_and(|pat| pat.matches_with(f, opts)))
            })
            .collect();
        if matched.is_empty() {
            if !f.starts_with("../") || referenced.contains(f) {
                unmatched.push(f.as_str());
            }
        } else {
            gates.extend(matched.iter().flat_map(|r| r.gates.iter().cloned()));
        }
    }
    let n = crate::text::plural(files.len(), "changed file");
    if files.is_empty() {
        return Needed {
            gates: BTreeSet::new(),
            reason: format!("nothing changed since `{rev}`"),
        };
    }
    if let Some(first) = unmatched.first() {
        return Needed {
            gates: every(),
            reason: format!(
                "{n} since `{rev}`; `{first}` matches no `[[paths]]` rule, so every gate runs"
            ),
        };
    }
    Needed {
        reason: format!("not needed by the {n} since `{rev}` (`[[paths]]` rules)"),
        gates,
    }
}

/// Every path the config names (sources, checkpoints, docs, data, commands' scripts), normalized like
/// the changed files: a file outside the config's directory that the config reads is in scope.
fn referenced(loaded: &Loaded) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::String(s) => {
                out.insert(s.trim_start_matches("./").to_owned());
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    if let Ok(v) = serde_json::to_value(&loaded.config) {
        walk(&v, &mut out);
    }
    out
}

/// The files changed since `rev` (its merge base with HEAD), relative to the config's directory.
pub fn changed_files(loaded: &Loaded, rev: &str) -> Result<Vec<String>> {
    let repo = crate::git::open(&loaded.root)?;
    let (base, _) = repo.merge_base(repo.commit(rev)?)?;
    let tree = repo
        .repo
        .find_commit(base)
        .and_then(|c| c.tree())
        .map_err(|e| Error::msg(format!("commit {base}: {}", e.message())))?;
    let mut opts = git2::DiffOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let diff = repo
        .repo
        .diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))
        .map_err(|e| Error::msg(format!("diff against {rev}: {}", e.message())))?;
    let root = loaded
        .root
        .canonicalize()
        .map_err(|e| Error::io(&loaded.root, e))?;
    let mut files = BTreeSet::new();
    for d in diff.deltas() {
        for p in [d.old_file().path(), d.new_file().path()]
            .into_iter()
            .flatten()
        {
            files.insert(relative_to(&repo.workdir.join(p), &root));
        }
    }
    Ok(files.into_iter().collect())
}

/// `path` relative to `dir`, with `../` where it is outside; `/`-separated.
fn relative_to(path: &Path, dir: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let d: Vec<_> = dir.components().collect();
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_owned(), d.len() - common).collect();
    parts.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Restrict `loaded` to the gates the change since `rev` needs.
pub fn restrict(loaded: &mut Loaded, rev: &str) -> Result<Needed> {
    let files = changed_files(loaded, rev)?;
    let needed = needed_for(loaded, &files, rev);
    loaded.run.only = Some((needed.gates.clone(), needed.reason.clone()));
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_inside_and_outside() {
        assert_eq!(
            relative_to(Path::new("/r/a/b.py"), Path::new("/r/a")),
            "b.py"
        );
        assert_eq!(
            relative_to(Path::new("/r/x/y.md"), Path::new("/r/a")),
            "../x/y.md"
        );
    }
}
