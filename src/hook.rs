//! `plumbline hook install`: the plain git hook (`hooks/pre-commit`, compiled in) written into the
//! repository's hooks directory with git2. A pre-commit hook plumbline did not write is never replaced
//! without `--force`: it may be the only thing running a team's other checks.

use std::path::{Path, PathBuf};

use crate::check::{self, Selection};
use crate::error::{Error, Result};
use crate::finding::Severity;
use crate::gates;
use crate::render::Format;

/// The hook script; `@CONFIG@` becomes the config path.
pub const SCRIPT: &str = include_str!("../hooks/pre-commit");
/// The line that marks a hook as plumbline's.
pub const MARK: &str = "# plumbline-hook";

/// `'…'` for sh, with `'` inside escaped.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script for a config at `config` (as given on the command line, relative to the repository root
/// where git runs hooks).
pub fn script(config: &str) -> String {
    SCRIPT.replace("@CONFIG@", &sh_quote(config))
}

/// Install the hook for the repository `cwd` is in. Returns the hook's path and what happened.
pub fn install(cwd: &Path, config: &Path, force: bool) -> Result<(PathBuf, &'static str)> {
    let repo = crate::git::open(cwd)?;
    let hooks = match repo
        .repo
        .config()
        .and_then(|c| c.get_path("core.hooksPath"))
    {
        Ok(p) if p.is_absolute() => p,
        Ok(p) => repo.workdir.join(p),
        // In a linked worktree git reads hooks from the common directory.
        Err(e) if e.code() == git2::ErrorCode::NotFound => repo.repo.commondir().join("hooks"),
        Err(e) => {
            return Err(Error::msg(format!(
                "core.hooksPath in the git config: {}",
                e.message()
            )));
        }
    };
    std::fs::create_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    let path = hooks.join("pre-commit");
    // Git runs hooks at the top of the work tree: the config path must be relative to it.
    let config_rel = repo.relative(&cwd.join(config))?;
    let text = script(&config_rel);
    let what = match std::fs::read_to_string(&path) {
        Ok(old) if old == text => return Ok((path, "up to date")),
        Ok(old) if old.contains(MARK) => "updated",
        Ok(_) if !force => {
            return Err(Error::msg(format!(
                "{}: a pre-commit hook plumbline did not write is there; keep it and call `plumbline hook pre-commit` from it, use the pre-commit framework (.pre-commit-hooks.yaml), or replace it with `plumbline hook install --force`",
                path.display()
            )));
        }
        Ok(_) => "replaced (--force)",
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "installed",
        Err(e) => return Err(Error::io(&path, e)),
    };
    crate::paths::atomic_write(&path, &text)?;
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
    fn the_script_runs_the_hook_with_the_quoted_config() {
        let s = script("pipe line/it's.toml");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(MARK));
        assert!(
            s.ends_with("exec plumbline --config 'pipe line/it'\\''s.toml' hook pre-commit\n"),
            "{s}"
        );
    }
}
