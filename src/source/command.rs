//! A command that prints JSON: the escape hatch for facts no parser can reach. Run with the config's
//! directory as working directory, stdin closed, and a timeout; stderr goes into the error.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use super::Fact;
use crate::error::{Error, Result};
use crate::finding::Location;

pub fn run(cwd: &Path, argv: &[String], key: Option<&str>, timeout_secs: u64) -> Result<Fact> {
    let shown = argv.join(" ");
    let fail = |msg: String| Error::msg(format!("command `{shown}`: {msg}"));
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("empty argv".into()))?;
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("could not start: {e}")))?;
    // Drain both pipes on threads so a chatty command cannot block on a full pipe before the timeout;
    // wait for them with the same deadline, since a background child may keep a pipe open after the
    // command itself exits.
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
        .map_err(|e| fail(e.to_string()))?
    {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            // What it said before it was killed helps more than the timeout alone.
            let said = err_rx
                .recv_timeout(Duration::from_millis(500))
                .unwrap_or_default();
            let said = String::from_utf8_lossy(&said).trim().to_owned();
            let msg = format!("timed out after {timeout_secs} s (killed)");
            return Err(fail(if said.is_empty() {
                msg
            } else {
                format!("{msg}; stderr:\n{said}")
            }));
        }
    };
    let left = || deadline.saturating_duration_since(Instant::now());
    let collect = |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(left());
    let (Ok(stdout), Ok(stderr)) = (collect(out_rx), collect(err_rx)) else {
        return Err(fail(format!(
            "exited, but something it started kept its output open past the {timeout_secs} s timeout"
        )));
    };
    let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
    let with_stderr = |msg: String| {
        if stderr.is_empty() {
            fail(msg)
        } else {
            fail(format!("{msg}; stderr:\n{stderr}"))
        }
    };
    if !status.success() {
        return Err(with_stderr(format!("exited with {status}")));
    }
    let value: serde_json::Value = serde_json::from_slice(&stdout)
        .map_err(|e| with_stderr(format!("did not print JSON ({e})")))?;
    let value = match key {
        Some(k) => crate::checkpoint::lookup(&value, k)
            .cloned()
            .ok_or_else(|| with_stderr(format!("its JSON has no key `{k}`")))?,
        None => value,
    };
    Ok(Fact::new(
        value,
        Location::file(format!("`{shown}`")).with_label(key.unwrap_or("output").to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn json_output_and_key() {
        let f = run(
            Path::new("."),
            &sh("echo '{\"a\": {\"b\": [1, 2]}}'"),
            Some("a.b"),
            10,
        )
        .unwrap();
        assert_eq!(f.value, serde_json::json!([1, 2]));
    }

    #[test]
    fn failure_carries_stderr() {
        let err = run(Path::new("."), &sh("echo boom >&2; exit 3"), None, 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with") && err.contains("boom"), "{err}");
        let err = run(Path::new("."), &sh("echo not-json; echo why >&2"), None, 10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not print JSON") && err.contains("why"),
            "{err}"
        );
    }

    #[test]
    fn background_child_holding_the_pipe_cannot_hang_it() {
        let err = run(Path::new("."), &sh("(sleep 5 &) ; echo '{}'"), None, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kept its output open"), "{err}");
    }

    #[test]
    fn timeout_kills() {
        let err = run(Path::new("."), &sh("sleep 5"), None, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out after 1 s"), "{err}");
    }
}
