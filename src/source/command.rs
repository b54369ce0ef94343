//! A command that prints JSON: the escape hatch for facts no parser can reach. Run by [`crate::exec`]
//! (the config's directory as working directory, stdin closed, a timeout); stderr goes into the error.

use super::Fact;
use crate::config::Loaded;
use crate::error::{Error, Result};
use crate::exec;
use crate::finding::Location;

pub fn run(loaded: &Loaded, argv: &[String], key: Option<&str>, timeout_secs: u64) -> Result<Fact> {
    let shown = exec::shown(argv);
    let fail = |msg: String| Error::msg(format!("command `{shown}`: {msg}"));
    let ran = exec::run(loaded, argv, timeout_secs, &[]).map_err(|e| fail(e.to_string()))?;
    let stdout = ran.stdout;
    let stderr = ran.stderr;
    let with_stderr = |msg: String| fail(exec::with_stderr(msg, &stderr));
    if !ran.status.success() {
        return Err(with_stderr(format!("exited with {}", ran.status)));
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

    /// The example's config, with commands run in the working directory.
    fn here() -> Loaded {
        let mut l = crate::config::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/momentum/plumbline.toml"
        )))
        .unwrap();
        l.root = ".".into();
        l
    }

    #[test]
    fn refused_commands_do_not_run() {
        let mut l = here();
        l.run.refuse_commands = Some("untrusted event".into());
        let marker = std::env::temp_dir().join(format!("plumbline-refused-{}", std::process::id()));
        let err = run(&l, &sh(&format!("touch {}", marker.display())), None, 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("refused: untrusted event"), "{err}");
        assert!(!marker.exists(), "the command ran");
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn json_output_and_key() {
        let f = run(
            &here(),
            &sh("echo '{\"a\": {\"b\": [1, 2]}}'"),
            Some("a.b"),
            10,
        )
        .unwrap();
        assert_eq!(f.value, serde_json::json!([1, 2]));
    }

    #[test]
    fn failure_carries_stderr() {
        let err = run(&here(), &sh("echo boom >&2; exit 3"), None, 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with") && err.contains("boom"), "{err}");
        let err = run(&here(), &sh("echo not-json; echo why >&2"), None, 10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did not print JSON") && err.contains("why"),
            "{err}"
        );
    }

    #[test]
    fn background_child_holding_the_pipe_cannot_hang_it() {
        let err = run(&here(), &sh("(sleep 5 &) ; echo '{}'"), None, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kept its output open"), "{err}");
    }

    #[test]
    fn timeout_kills() {
        let err = run(&here(), &sh("sleep 5"), None, 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out after 1 s"), "{err}");
    }
}
