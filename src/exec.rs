//! Running a user's command: the config's directory as working directory, stdin closed, both pipes
//! drained on threads, one deadline for the process and its pipes (a background child that keeps a pipe
//! open cannot hang plumbline). Used by command sources and by the command protocol.

use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::config::Loaded;

/// How much of a command's stderr plumbline keeps: its first and its last bytes. The middle is dropped
/// while it is read (a command that prints 200 MB costs 16 KiB), and the kept text says how much went.
pub const STDERR_HEAD: usize = 8 * 1024;
pub const STDERR_TAIL: usize = 8 * 1024;

/// What a command did, when it exited by itself.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Trimmed, lossily decoded; capped at [`STDERR_HEAD`] + [`STDERR_TAIL`] bytes.
    pub stderr: String,
}

/// Why a command gave no usable exit.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("empty argv")]
    Empty,
    #[error("refused: {0}")]
    Refused(String),
    #[error("could not start: {0}")]
    Spawn(String),
    #[error("{0}")]
    StagedTree(String),
    #[error("timed out after {secs} s (killed){}", stderr_suffix(said))]
    Timeout { secs: u64, said: String },
    #[error("exited, but something it started kept its output open past the {secs} s timeout")]
    PipesHeld { secs: u64 },
    #[error("waiting for it: {0}")]
    Wait(String),
}

fn stderr_suffix(said: &str) -> String {
    if said.is_empty() {
        String::new()
    } else {
        format!("; stderr:\n{said}")
    }
}

/// `; stderr:\n…` when the command said something, for messages about it.
pub fn with_stderr(msg: String, stderr: &str) -> String {
    format!("{msg}{}", stderr_suffix(stderr))
}

/// The argv as shown in messages.
pub fn shown(argv: &[String]) -> String {
    argv.join(" ")
}

/// Run one of the config's commands in the config's directory (in `hook pre-commit`, that directory in
/// the staged tree: [`crate::snapshot::Snapshot::command_dir`]), unless the run refuses commands
/// ([`crate::config::RunOptions::refuse_commands`]): the one door every user command goes through.
pub fn run(
    loaded: &Loaded,
    argv: &[String],
    timeout_secs: u64,
    env: &[(String, String)],
) -> Result<Ran, RunError> {
    if let Some(why) = &loaded.run.refuse_commands {
        loaded
            .run
            .commands_refused
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return Err(RunError::Refused(why.clone()));
    }
    // In the hook, the same directory in the staged tree.
    let cwd = loaded
        .run
        .snapshot
        .command_dir(&loaded.root)
        .map_err(|e| RunError::StagedTree(e.to_string()))?;
    let staged = matches!(*loaded.run.snapshot, crate::snapshot::Snapshot::Staged(_));
    run_in(&cwd, argv, timeout_secs, env, staged)
}

fn run_in(
    cwd: &Path,
    argv: &[String],
    timeout_secs: u64,
    env: &[(String, String)],
    staged: bool,
) -> Result<Ran, RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
    let mut command = Command::new(program);
    if staged {
        // The staged tree is no repository: git's variables from the hook would point commands at
        // the real index (often by a relative path that no longer resolves).
        for var in ["GIT_INDEX_FILE", "GIT_DIR", "GIT_WORK_TREE"] {
            command.env_remove(var);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let drain = |mut pipe: Box<dyn Read + Send>, read: fn(&mut dyn Read) -> Vec<u8>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read(&mut pipe));
        });
        rx
    };
    let whole = |pipe: &mut dyn Read| {
        let mut b = Vec::new();
        let _ = pipe.read_to_end(&mut b);
        b
    };
    let out_rx = drain(Box::new(child.stdout.take().expect("piped")), whole);
    let err_rx = drain(Box::new(child.stderr.take().expect("piped")), read_capped);
    let status = match child
        .wait_timeout(Duration::from_secs(timeout_secs))
        .map_err(|e| RunError::Wait(e.to_string()))?
    {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            // What it said before it was killed helps more than the timeout alone.
            let said = err_rx
                .recv_timeout(Duration::from_millis(500))
                .unwrap_or_default();
            return Err(RunError::Timeout {
                secs: timeout_secs,
                said: String::from_utf8_lossy(&said).trim().to_owned(),
            });
        }
    };
    let left = || deadline.saturating_duration_since(Instant::now());
    let collect = |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(left());
    let (Ok(stdout), Ok(stderr)) = (collect(out_rx), collect(err_rx)) else {
        return Err(RunError::PipesHeld { secs: timeout_secs });
    };
    Ok(Ran {
        status,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
    })
}

/// Read `pipe` to its end, keeping its first [`STDERR_HEAD`] and last [`STDERR_TAIL`] bytes, with a line
/// in between saying how many bytes were dropped.
fn read_capped(pipe: &mut dyn Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut tail = std::collections::VecDeque::<u8>::new();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        total += n;
        let mut chunk = &buf[..n];
        let take = STDERR_HEAD.saturating_sub(head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..take]);
        chunk = &chunk[take..];
        if chunk.len() >= STDERR_TAIL {
            tail.clear();
            chunk = &chunk[chunk.len() - STDERR_TAIL..];
        }
        tail.extend(chunk);
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
    }
    let dropped = total - head.len() - tail.len();
    if dropped > 0 {
        let line = format!(
            "\n[… {} bytes of stderr dropped …]\n",
            crate::text::thousands(dropped)
        );
        head.extend_from_slice(line.as_bytes());
    }
    head.extend(tail);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_keeps_its_head_and_tail_and_counts_the_rest() {
        let said: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let kept = read_capped(&mut said.as_slice());
        let text = String::from_utf8(kept).unwrap();
        assert!(text.starts_with("0\n1\n2\n"));
        assert!(text.ends_with("199998\n199999\n"));
        let dropped = said.len() - STDERR_HEAD - STDERR_TAIL;
        let line = format!(
            "[… {} bytes of stderr dropped …]",
            crate::text::thousands(dropped)
        );
        assert!(text.contains(&line), "{line}");
        assert!(text.len() < STDERR_HEAD + STDERR_TAIL + 100);
        // A short stderr is kept whole.
        assert_eq!(read_capped(&mut &b"oops\n"[..]), b"oops\n");
    }
}
