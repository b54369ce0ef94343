//! The run manifest (plan §4.3): what a pre-live check ran on, so a live session can say which audited
//! state it trades. `artifacts/audit/run_manifest.json` (schema: `schemas/run-manifest.schema.json`).
//!
//! The `run` part holds only what the inputs determine — the tool, the git commit and dirty flag, the
//! sha256 of the config, the derived contract, every checkpoint and every data file, the environment, the
//! gate verdicts — and `run-sha256` is the sha256 of its canonical JSON: the same inputs give the same
//! hash on every run and machine of the same platform. Timings and the creation time sit outside it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::Outcome;
use crate::config::Loaded;
use crate::error::{Error, Result};
use crate::finding::{Counts, Severity};

/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "plumbline run manifest")]
pub struct RunManifest {
    pub manifest_format: u32,
    /// What the run was about; hashed.
    pub run: Run,
    /// `sha256:` of the canonical JSON of `run`.
    pub run_sha256: String,
    /// Wall time per gate in milliseconds (not hashed: it differs between runs).
    pub timings_ms: Vec<Timing>,
    /// When the manifest was written, UTC, RFC 3339 (not hashed).
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Run {
    pub tool: String,
    pub tool_version: String,
    pub pipeline: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The repository the config is in, if it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
    pub config: Hashed,
    /// The contract derived in this run (`sha256:` of its canonical JSON), when it could be derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_sha256: Option<String>,
    pub checkpoints: Vec<Hashed>,
    /// `checkpoints.safe-globals`: the globals the config allowed beyond torch's allowlist, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safe_globals: Vec<String>,
    /// The data files the gates read: the slice, the price table, the ruleset.
    pub data: Vec<Hashed>,
    pub environment: Environment,
    pub verdict: String,
    pub fail_on: Severity,
    pub counts: Counts,
    pub gates: Vec<GateVerdict>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GitState {
    pub commit: String,
    /// Tracked files differ from the commit (staged or not).
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hashed {
    /// As findings show paths.
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Environment {
    pub os: String,
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GateVerdict {
    pub gate: String,
    /// `passed`, `failed`, or `skipped: <why>`.
    pub verdict: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timing {
    pub gate: String,
    pub ms: u64,
}

fn hashed(path: &Path) -> Result<Hashed> {
    Ok(Hashed {
        path: crate::paths::display_path(path),
        sha256: crate::checkpoint::sha256_file(path)?,
    })
}

fn git_state(root: &Path) -> Option<GitState> {
    let repo = crate::git::open(root).ok()?;
    let commit = repo
        .repo
        .head()
        .ok()?
        .peel_to_commit()
        .ok()?
        .id()
        .to_string();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let dirty = repo
        .repo
        .statuses(Some(&mut opts))
        .map(|s| !s.is_empty())
        .unwrap_or(true);
    Some(GitState { commit, dirty })
}

/// Every checkpoint the globs find, with the sha256 of the whole file, sorted by path. Whole-file hashes
/// only: the gates already read the headers (glob problems are their findings).
pub fn checkpoint_hashes(loaded: &Loaded) -> Result<Vec<Hashed>> {
    let mut checkpoints = loaded
        .checkpoint_files()?
        .files
        .iter()
        .map(|p| hashed(p))
        .collect::<Result<Vec<Hashed>>>()?;
    checkpoints.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(checkpoints)
}

/// The data files the gates read, with their sha256: the slice, the price table, the ruleset, the
/// forward-contract reference and the output-distribution baseline (each when configured).
pub fn data_hashes(loaded: &Loaded) -> Result<Vec<Hashed>> {
    let cfg = &loaded.config;
    [
        cfg.slice.as_ref().map(|s| s.features.as_str()),
        cfg.data.as_ref().map(|d| d.prices.as_str()),
        cfg.ruleset.as_ref().map(|r| r.path.as_str()),
        cfg.gates.forward_contract.reference.as_deref(),
        cfg.gates.output_distribution.baseline.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(|rel| hashed(&loaded.resolve(rel)))
    .collect()
}

/// `sha256:` of the contract's canonical JSON (the bytes `derive` prints).
pub fn contract_sha256(c: &crate::contract::PipelineContract) -> String {
    crate::checkpoint::sha256_bytes(crate::docs::expected_json(c).as_bytes())
}

/// `sha256:` of the canonical JSON of a manifest's `run`.
pub fn run_sha256(run: &Run) -> String {
    crate::checkpoint::sha256_bytes(
        crate::canonical::to_string(run)
            .expect("plain JSON")
            .as_bytes(),
    )
}

/// The manifest of a finished run.
pub fn build(loaded: &Loaded, outcome: &Outcome, fail_on: Severity) -> Result<RunManifest> {
    let checkpoints = checkpoint_hashes(loaded)?;
    let data = data_hashes(loaded)?;
    let contract_sha256 = outcome.contract.as_ref().map(contract_sha256);
    let run = Run {
        tool: "plumbline".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        pipeline: outcome.pipeline.clone(),
        profile: outcome.profile.map(str::to_owned),
        git: git_state(&loaded.root),
        config: hashed(&loaded.path)?,
        contract_sha256,
        checkpoints,
        safe_globals: {
            let mut g = loaded.config.checkpoints.safe_globals.clone();
            g.sort();
            g.dedup();
            g
        },
        data,
        environment: Environment {
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        },
        verdict: if outcome.fails(fail_on) {
            "failed"
        } else {
            "passed"
        }
        .into(),
        fail_on,
        counts: outcome.counts(),
        gates: outcome
            .gates
            .iter()
            .map(|g| GateVerdict {
                gate: g.gate.clone(),
                verdict: match &g.skipped {
                    Some(why) => format!("skipped: {why}"),
                    None if outcome
                        .findings
                        .iter()
                        .any(|f| f.gate() == g.gate && f.severity >= fail_on) =>
                    {
                        "failed".into()
                    }
                    None => "passed".into(),
                },
                counts: g.counts,
            })
            .collect(),
    };
    Ok(RunManifest {
        manifest_format: MANIFEST_FORMAT,
        run_sha256: run_sha256(&run),
        run,
        timings_ms: outcome
            .gates
            .iter()
            .map(|g| Timing {
                gate: g.gate.clone(),
                ms: g.duration.as_millis() as u64,
            })
            .collect(),
        created: rfc3339(SystemTime::now()),
    })
}

/// Where a check writes its run manifest: the path given (`--manifest`), else the default path when
/// the run keeps a session log or runs the pre-live profile, else nowhere.
pub fn path_for(
    loaded: &Loaded,
    given: Option<&Path>,
    session_log: bool,
    profile: Option<crate::gates::Profile>,
) -> Option<PathBuf> {
    match (given, session_log, profile) {
        (Some(p), _, _) => Some(p.to_path_buf()),
        (None, true, _) | (None, false, Some(crate::gates::Profile::PreLive)) => {
            Some(default_path(loaded))
        }
        _ => None,
    }
}

/// Where the manifest goes by default: `artifacts/audit/run_manifest.json` under the config's directory.
pub fn default_path(loaded: &Loaded) -> PathBuf {
    loaded.resolve("artifacts/audit/run_manifest.json")
}

/// Write the manifest (atomically, creating its directory); returns the sha256 of the written file.
pub fn write(path: &Path, manifest: &RunManifest) -> Result<String> {
    let text = crate::canonical::to_string(manifest).expect("plain JSON");
    crate::paths::atomic_write_creating(path, text.as_bytes())?;
    Ok(crate::checkpoint::sha256_bytes(text.as_bytes()))
}

/// Append one line to the live session's log (plan §4.3): time, verdict, manifest path and hashes.
pub fn log_session(
    log: &Path,
    manifest_path: &Path,
    file_sha256: &str,
    m: &RunManifest,
) -> Result<()> {
    let line = serde_json::json!({
        "time": m.created,
        "verdict": m.run.verdict,
        "manifest": crate::paths::display_path(manifest_path),
        "manifest-sha256": file_sha256,
        "run-sha256": m.run_sha256,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io(log, e))
}

/// `2026-11-28T01:02:03Z` (UTC, whole seconds), without a date crate: Howard Hinnant's civil-from-days.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_827_723)),
            "2026-11-28T01:02:03Z"
        );
    }
}
