//! The run's options: what one run of plumbline adds to the parsed file (from its command line, the CI
//! event or the git hook). They are never read from `plumbline.toml`. (`--checkpoint` also replaces the
//! file's production checkpoint: `Loaded::use_checkpoint`.)

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::snapshot::Snapshot;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Why the config's commands must not run here (`plumbline ci` under `pull_request_target`), if so.
    /// Every command goes through [`crate::exec::run`], which refuses it with this reason.
    pub refuse_commands: Option<String>,
    /// Only these gates are needed (`--changed-from`), with the reason shown for the others.
    pub only: Option<(BTreeSet<String>, String)>,
    /// The base revision to classify contract changes against (`--base`, or the pull request's base).
    pub base: Option<String>,
    /// Which version of the files this run reads (the work tree, or the index for `hook pre-commit`).
    pub snapshot: Arc<Snapshot>,
    /// Checkpoints the globs do not find but this run checks (`--checkpoint`), absolute.
    pub extra_checkpoints: Vec<PathBuf>,
    /// Set when a command was refused (`refuse_commands`): the run's outcome says so as a flag, so no
    /// one has to search messages for the reason.
    pub commands_refused: Arc<AtomicBool>,
}

impl RunOptions {
    /// A run that reads `snapshot`, with nothing else set.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        RunOptions {
            refuse_commands: None,
            only: None,
            base: None,
            snapshot,
            extra_checkpoints: Vec::new(),
            commands_refused: Arc::default(),
        }
    }
}
