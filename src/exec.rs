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

/// What a command did, when it exited by itself.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Trimmed, lossily decoded.
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

/// Run one of the config's commands in the config's directory, unless the run refuses commands
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
    run_in(&loaded.root, argv, timeout_secs, env)
}

fn run_in(
    cwd: &Path,
    argv: &[String],
    timeout_secs: u64,
    env: &[(String, String)],
) -> Result<Ran, RunError> {
    let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Spawn(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = pipe.read_to_end(&mut b);
            let _ = tx.send(b);
        });
        rx
    };
    let out_rx = drain(Box::new(child.stdout.take().expect("piped")));
    let err_rx = drain(Box::new(child.stderr.take().expect("piped")));
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
