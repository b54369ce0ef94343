//! `plumbline hook install`: the plain git hook (`hooks/pre-commit`, compiled in) written into the
//! repository's hooks directory with git2. A pre-commit hook plumbline did not write is never replaced
//! without `--force`: it may be the only thing running a team's other checks.

use std::path::{Path, PathBuf};

use crate::check::{self, Selection};
use crate::error::{Error, Result};
use crate::finding::Severity;
use crate::gates;
use crate::render::Format;

/// The hook script; `@RUN@` becomes one line per config.
pub const SCRIPT: &str = include_str!("../hooks/pre-commit");
/// The line that marks a hook as plumbline's.
pub const MARK: &str = "# plumbline-hook";
/// The line that names one config of the hook (the path as written, relative to the repository root).
const CONFIG_LINE: &str = "# plumbline-config: ";

/// `'…'` for sh, with `'` inside escaped.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script that checks each of `configs` (paths relative to the repository root, where git runs
/// hooks) in turn; the commit is blocked when any of them fails, with a failing run's exit code.
pub fn script(configs: &[String]) -> String {
    let run: Vec<String> = configs
        .iter()
        .map(|c| {
            format!(
                "{CONFIG_LINE}{c}\nplumbline --config {} hook pre-commit || status=$?",
                sh_quote(c)
            )
        })
        .collect();
    SCRIPT.replace("@RUN@", &run.join("\n"))
}

/// The configs a hook plumbline wrote checks: its config lines, or the one config of a hook written
/// before hooks could chain (`exec plumbline --config '…' hook pre-commit`).
fn configs_of(hook: &str) -> Vec<String> {
    let listed: Vec<String> = hook
        .lines()
        .filter_map(|l| l.strip_prefix(CONFIG_LINE))
        .map(str::to_owned)
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    hook.lines()
        .filter_map(|l| l.strip_prefix("exec plumbline --config '"))
        .filter_map(|l| l.strip_suffix("' hook pre-commit"))
        .map(|q| q.replace(r"'\''", "'"))
        .collect()
}

/// Whether a hook with plumbline's mark has lines plumbline would not write: it is not the script for
/// its own configs (a hook written before chaining, one `exec plumbline` line, is plumbline's own).
fn edited(hook: &str) -> bool {
    let configs = configs_of(hook);
    let legacy = !hook.contains(CONFIG_LINE) && configs.len() == 1;
    !legacy && hook != script(&configs)
}

/// What `install` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Installed,
    UpToDate,
    /// Added to a hook that checks other configs; it now checks all of these.
    Chained(Vec<String>),
    /// A hook for other configs replaced by one for this config only (`--force`).
    Replaced(Vec<String>),
    Updated,
    ForeignReplaced,
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Installed::Installed => f.write_str("installed"),
            Installed::UpToDate => f.write_str("up to date"),
            Installed::Updated => f.write_str("updated"),
            Installed::ForeignReplaced => f.write_str("replaced (--force)"),
            Installed::Chained(all) => write!(
                f,
                "chained: the hook now checks {} in turn ({}); `hook install --force` keeps only this one",
                crate::text::plural(all.len(), "config"),
                all.join(", ")
            ),
            Installed::Replaced(old) => write!(
                f,
                "replaced (--force): the hook checked {} and now checks only this one",
                old.join(", ")
            ),
        }
    }
}

/// The hooks directory of the repository `cwd` is in (`core.hooksPath`, else the common directory's).
fn hooks_dir(repo: &crate::git::Repo) -> Result<PathBuf> {
    match repo
        .repo
        .config()
        .and_then(|c| c.get_path("core.hooksPath"))
    {
        Ok(p) if p.is_absolute() => Ok(p),
        Ok(p) => Ok(repo.workdir.join(p)),
        // In a linked worktree git reads hooks from the common directory.
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(repo.repo.commondir().join("hooks")),
        Err(e) => Err(Error::msg(format!(
            "core.hooksPath in the git config: {}",
            e.message()
        ))),
    }
}

/// Install the hook for the repository `cwd` is in. A plumbline hook for other configs gets this one
/// chained after them (`force`: replaced by one for this config only). Returns the hook's path and what
/// happened.
pub fn install(cwd: &Path, config: &Path, force: bool) -> Result<(PathBuf, Installed)> {
    let repo = crate::git::open(cwd)?;
    let hooks = hooks_dir(&repo)?;
    std::fs::create_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    let path = hooks.join("pre-commit");
    // Git runs hooks at the top of the work tree: the config path must be relative to it.
    let config_rel = repo.relative(&cwd.join(config))?;
    if config_rel.contains(['\n', '\r']) {
        return Err(Error::msg(format!(
            "{config_rel:?}: a config path with a line break cannot be written into the hook"
        )));
    }
    let only = vec![config_rel.clone()];
    let (configs, what) = match std::fs::read_to_string(&path) {
        Ok(old) if old.contains(MARK) && !force && edited(&old) => {
            return Err(Error::msg(format!(
                "{}: plumbline wrote this hook, but it has been edited since (lines plumbline does not write); rewriting it would lose them: add the config by hand (`plumbline --config C hook pre-commit || status=$?`), or replace the hook with `plumbline hook install --force`",
                path.display()
            )));
        }
        Ok(old) if old.contains(MARK) => {
            let mut had = configs_of(&old);
            if had.is_empty() {
                had = only.clone();
            }
            if force && had != only {
                (only, Installed::Replaced(had))
            } else if had.contains(&config_rel) {
                let what = if old == script(&had) {
                    Installed::UpToDate
                } else {
                    Installed::Updated
                };
                (had, what)
            } else {
                had.push(config_rel);
                (had.clone(), Installed::Chained(had))
            }
        }
        Ok(_) if !force => {
            return Err(Error::msg(format!(
                "{}: a pre-commit hook plumbline did not write is there; keep it and call `plumbline hook pre-commit` from it, use the pre-commit framework (.pre-commit-hooks.yaml), or replace it with `plumbline hook install --force`",
                path.display()
            )));
        }
        Ok(_) => (only, Installed::ForeignReplaced),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (only, Installed::Installed),
        Err(e) => return Err(Error::io(&path, e)),
    };
    if what == Installed::UpToDate {
        return Ok((path, what));
    }
    crate::paths::atomic_write(&path, &script(&configs))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&path, e))?;
    }
    Ok((path, what))
}

/// `hook pre-commit`: docs-drift on what is about to be committed (the staged files, read from the index
/// of the repository `cwd` is in). Exit 1 when the staged docs drift, saying how to fix it on `err`.
pub fn pre_commit(
    cwd: &Path,
    config: &Path,
    destinations: &[(Format, Option<PathBuf>)],
    fail_on: Severity,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<u8> {
    let staged = crate::snapshot::Staged::open(cwd)?;
    let loaded = check::load_in(
        config,
        std::sync::Arc::new(crate::snapshot::Snapshot::Staged(staged)),
    )?;
    let gate = gates::DOCS_DRIFT;
    let bar = crate::progress::Bar::new();
    let outcome = check::run_with(&loaded, Selection::Gate(gate), &mut |p| bar.update(p))?;
    let code = crate::render::write(destinations, &outcome, fail_on, out)?;
    if code != 0 {
        writeln!(
            err,
            "plumbline: the staged docs drift from the staged code and checkpoints; run `plumbline --config {} docs --write`, then `git add` the docs",
            crate::paths::display_path(config)
        )
        .map_err(|e| Error::msg(format!("writing diagnostics: {e}")))?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_each_config_quoted_and_keeps_a_failure() {
        let s = script(&["pipe line/it's.toml".to_owned(), "b.toml".to_owned()]);
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(MARK));
        assert!(
            s.contains(
                "plumbline --config 'pipe line/it'\\''s.toml' hook pre-commit || status=$?\n"
            ),
            "{s}"
        );
        assert!(s.ends_with("exit $status\n"), "{s}");
        assert_eq!(configs_of(&s), ["pipe line/it's.toml", "b.toml"]);
    }

    #[test]
    fn a_hook_written_before_chaining_names_its_config() {
        let old = "#!/bin/sh\n# plumbline-hook\nexec plumbline --config 'a/it'\\''s.toml' hook pre-commit\n";
        assert_eq!(configs_of(old), ["a/it's.toml"]);
    }
}
