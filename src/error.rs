//! Errors that stop plumbline from doing its job (exit 2). Each names the file, and the line or key where
//! one exists. Problems *in* the pipeline are findings, not errors.

use std::path::{Path, PathBuf};

use crate::finding::Location;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something wrong at a known place in a file (config, source, docs).
    #[error("{location}: {message}")]
    At { location: Location, message: String },
    #[error("{}: {source}", path.display())]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: CheckpointError,
    },
    #[error("{0}")]
    Message(String),
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn at(location: Location, message: impl Into<String>) -> Self {
        Error::At {
            location,
            message: message.into(),
        }
    }

    pub fn msg(message: impl Into<String>) -> Self {
        Error::Message(message.into())
    }
}

/// Why a checkpoint could not be read. `UnsafeGlobal` is a refusal, not a parse failure: the file names
/// code that a loader would run.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(
        "refused: the pickle references `{module}.{name}` ({opcode} at byte {offset} of {entry}), which is not on the weights-only allowlist; nothing in the file was executed"
    )]
    UnsafeGlobal {
        entry: String,
        module: String,
        name: String,
        opcode: &'static str,
        offset: u64,
    },
    /// torch (or another reader) could read these bytes differently from plumbline: a duplicated or
    /// case-colliding entry, bytes before the archive, an opcode across a pickle frame. Refused, since
    /// what plumbline checked might not be what runs.
    #[error(
        "refused as ambiguous: {0}; torch could read this file differently from plumbline, so none of it is trusted"
    )]
    Ambiguous(String),
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl CheckpointError {
    pub fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        CheckpointError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

/// Read a file to a string, naming the file on failure.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}
