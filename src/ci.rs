//! `plumbline ci`: the check as a GitHub Actions step. It reads the run's `GITHUB_*` variables and the
//! event payload, runs the gates, and reports in every place a pull request shows: workflow-command
//! annotations on the diff, the job summary (`$GITHUB_STEP_SUMMARY`), step outputs (`$GITHUB_OUTPUT`),
//! a JSON report file, and — with a token that may — a check run and a sticky comment
//! ([`crate::github`]). The exit code is the verdict alone: posting can fail without changing it.
//!
//! Under `pull_request_target` the workflow runs with the base repository's token and secrets; a
//! checkout of the pull request's head would let its author run anything through the commands in
//! `plumbline.toml`. Those commands are refused there unless `--allow-untrusted-commands` is given
//! (docs/ci.md#pull_request_target).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::check::{self, Outcome, Selection};
use crate::error::{Error, Result};
use crate::finding::{Location, Severity};
use crate::render::{Format, github, json, markdown};

/// Why commands are refused under `pull_request_target` (shown in each refused command's finding).
pub const UNTRUSTED: &str = "this is a `pull_request_target` run, where a pull request's code would run with the base repository's token and secrets; plumbline runs no command from plumbline.toml here unless given --allow-untrusted-commands (docs/ci.md#pull_request_target)";

/// A token, never shown: its `Debug` is redacted and nothing formats it.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The pull request an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    /// `pull_request.head.sha`: the commit the check run belongs to (not the merge commit).
    pub head_sha: String,
    /// `pull_request.base.sha`: the base branch's commit the pull request was opened against.
    pub base_sha: Option<String>,
}

/// The GitHub Actions environment of a step.
#[derive(Debug, Clone)]
pub struct Actions {
    pub event_name: String,
    pub owner: String,
    pub repo: String,
    /// `GITHUB_SHA` (for a pull request, the merge commit).
    pub sha: String,
    pub api_url: String,
    pub server_url: String,
    pub run_id: Option<String>,
    pub workspace: Option<PathBuf>,
    pub step_summary: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub runner_temp: Option<PathBuf>,
    pub pull_request: Option<PullRequest>,
    pub token: Option<Token>,
}

fn required(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<String> {
    get(name).filter(|v| !v.is_empty()).ok_or_else(|| {
        Error::msg(format!(
            "`plumbline ci` runs as a GitHub Actions step, and `{name}` is not set (run `plumbline check` elsewhere; docs/ci.md)"
        ))
    })
}

impl Actions {
    /// Read the environment through `get` (`std::env::var` in the binary).
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Actions> {
        let event_name = required(get, "GITHUB_EVENT_NAME")?;
        let repository = required(get, "GITHUB_REPOSITORY")?;
        let (owner, repo) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| {
                Error::msg(format!(
                    "GITHUB_REPOSITORY is `{repository}`, not `owner/name`"
                ))
            })?;
        let sha = required(get, "GITHUB_SHA")?;
        let path = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let pull_request = match event_name.as_str() {
            "pull_request" | "pull_request_target" => {
                let event = path("GITHUB_EVENT_PATH").ok_or_else(|| {
                    Error::msg(format!(
                        "a `{event_name}` run needs GITHUB_EVENT_PATH (the event payload) to find the pull request"
                    ))
                })?;
                Some(pull_request(&event)?)
            }
            _ => None,
        };
        Ok(Actions {
            event_name,
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            sha,
            api_url: get("GITHUB_API_URL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "https://api.github.com".into()),
            server_url: get("GITHUB_SERVER_URL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "https://github.com".into()),
            run_id: get("GITHUB_RUN_ID").filter(|v| !v.is_empty()),
            workspace: path("GITHUB_WORKSPACE"),
            step_summary: path("GITHUB_STEP_SUMMARY"),
            output: path("GITHUB_OUTPUT"),
            runner_temp: path("RUNNER_TEMP"),
            pull_request,
            token: get("GITHUB_TOKEN")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .map(Token),
        })
    }

    /// The commit results belong to: the pull request's head, else `GITHUB_SHA`.
    pub fn head_sha(&self) -> &str {
        self.pull_request
            .as_ref()
            .map_or(self.sha.as_str(), |p| p.head_sha.as_str())
    }

    pub fn untrusted(&self) -> bool {
        self.event_name == "pull_request_target"
    }

    pub fn details_url(&self) -> Option<String> {
        self.run_id.as_ref().map(|id| {
            format!(
                "{}/{}/{}/actions/runs/{id}",
                self.server_url.trim_end_matches('/'),
                self.owner,
                self.repo
            )
        })
    }
}

/// The pull request of an event payload (`pull_request.number`, `.head.sha`, `.base.sha`).
pub fn pull_request(event_path: &Path) -> Result<PullRequest> {
    let text = crate::error::read_to_string(event_path)?;
    let shown = event_path.display();
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::msg(format!("{shown}: the event payload is not JSON ({e})")))?;
    let pr = &v["pull_request"];
    let field = |pointer: &str| {
        pr.pointer(pointer).ok_or_else(|| {
            Error::msg(format!(
                "{shown}: the event payload has no `pull_request{}`",
                pointer.replace('/', ".")
            ))
        })
    };
    let number = field("/number")?
        .as_u64()
        .ok_or_else(|| Error::msg(format!("{shown}: `pull_request.number` is not a number")))?;
    let head_sha = field("/head/sha")?
        .as_str()
        .filter(|s| s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| {
            Error::msg(format!(
                "{shown}: `pull_request.head.sha` is not a commit id"
            ))
        })?
        .to_owned();
    let base_sha = pr
        .pointer("/base/sha")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(PullRequest {
        number,
        head_sha,
        base_sha,
    })
}

/// Findings' paths relative to the repository root (`GITHUB_WORKSPACE`), which is what annotations, check
/// runs and SARIF need; plumbline's paths are relative to the directory it ran in.
pub fn repo_relative(mut outcome: Outcome, cwd: &Path, workspace: Option<&Path>) -> Outcome {
    let Some(ws) = workspace else {
        return outcome;
    };
    let fix = |loc: &mut Location| {
        let abs = cwd.join(&loc.path);
        let abs = normalize(&abs);
        if let Ok(rel) = abs.strip_prefix(normalize(ws)) {
            loc.path = crate::paths::display_path(rel);
        }
    };
    for f in &mut outcome.findings {
        if let Some(l) = &mut f.location {
            fix(l);
        }
        for r in &mut f.related {
            fix(r);
        }
    }
    outcome
}

/// `a/./b/../c` → `a/c`, lexically (the files may not exist).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// What `plumbline ci` was asked to post.
#[derive(Debug, Clone)]
pub struct Posting {
    pub check_run: bool,
    pub comment: bool,
    pub check_name: String,
}

/// What `plumbline ci` was asked to do (its command line).
pub struct Run<'a> {
    pub config: &'a Path,
    /// `--base`; else the pull request's base.
    pub base: Option<String>,
    pub changed_from: Option<String>,
    pub profile: Option<crate::gates::Profile>,
    pub allow_untrusted_commands: bool,
    pub posting: Posting,
    /// Where the JSON report goes (default: `$RUNNER_TEMP/plumbline-report.json`).
    pub report: Option<&'a Path>,
}

/// `plumbline ci`: the check in an Actions step, then everything a pull request shows (docs/ci.md).
pub fn run(
    run: &Run,
    destinations: &[(Format, Option<PathBuf>)],
    fail_on: Severity,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<u8> {
    if destinations
        .iter()
        .any(|(f, p)| *f == Format::Github && p.is_none())
    {
        return Err(Error::msg(
            "`ci` writes the annotations itself; `--format github` only with `--output FILE`",
        ));
    }
    let actions = Actions::from_env(&|k| std::env::var(k).ok())?;
    let bar = crate::progress::Bar::new();
    let checked = check::load(run.config).and_then(|mut loaded| {
        loaded.run.base = run.base.clone().or_else(|| {
            actions
                .pull_request
                .as_ref()
                .and_then(|p| p.base_sha.clone())
        });
        if actions.untrusted() && !run.allow_untrusted_commands {
            loaded.run.refuse_commands = Some(UNTRUSTED.to_owned());
        }
        if let Some(rev) = &run.changed_from {
            crate::affected::restrict(&mut loaded, rev)?;
        }
        let selection = run.profile.map_or(Selection::All, Selection::Profile);
        check::run_with(&loaded, selection, &mut |p| bar.update(p))
    });
    let outcome = match checked {
        Ok(o) => o,
        Err(e) => {
            // Exit 2 all the same; the pull request shows why instead of a bare red step.
            could_not_run(&actions, &e.to_string(), out);
            return Err(e);
        }
    };
    let cwd =
        std::env::current_dir().map_err(|e| Error::msg(format!("the working directory: {e}")))?;
    let outcome = repo_relative(outcome, &cwd, actions.workspace.as_deref());
    crate::render::write(destinations, &outcome, fail_on, out)?;
    report(
        &actions,
        &outcome,
        fail_on,
        &run.posting,
        run.report,
        out,
        err,
    )
}

/// Everything after the check: annotations on `out`, the report, the job summary, the step outputs and
/// the GitHub API. Returns the exit code (the verdict).
pub fn report(
    actions: &Actions,
    outcome: &Outcome,
    fail_on: Severity,
    posting: &Posting,
    report_path: Option<&Path>,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<u8> {
    let io = |what: &str, e: std::io::Error| Error::msg(format!("{what}: {e}"));
    let annotations = github::render(&outcome.findings);
    out.write_all(annotations.text.as_bytes())
        .map_err(|e| io("writing annotations", e))?;

    let report_path = report_path.map(Path::to_path_buf).unwrap_or_else(|| {
        actions
            .runner_temp
            .as_deref()
            .unwrap_or(Path::new("."))
            .join("plumbline-report.json")
    });
    crate::paths::atomic_write(&report_path, &json::render(outcome, fail_on))?;
    let report_shown = crate::paths::display_path(&report_path);

    let mut notices = Vec::new();
    if actions.untrusted() && outcome.commands_refused {
        notices.push(
            "Commands from plumbline.toml were not run: this is a `pull_request_target` run (docs/ci.md#pull_request_target).".to_owned(),
        );
    }
    if annotations.left_out > 0 {
        notices.push(format!(
            "{}; every finding is listed below.",
            github::left_out_notice(annotations.left_out)
        ));
    }
    let in_report = format!(
        "Every finding is in the JSON report `{report_shown}` (the step's `report` output)."
    );
    let in_run = match actions.details_url() {
        Some(url) => format!("Every finding is in [the workflow run]({url})."),
        None => in_report.clone(),
    };
    notices.extend(post(actions, outcome, fail_on, posting, &in_run, err));
    for n in &notices {
        writeln!(err, "plumbline: {n}").map_err(|e| io("writing diagnostics", e))?;
    }

    if let Some(path) = &actions.step_summary {
        let mut opts =
            markdown::Options::new(fail_on, markdown::Limit::Bytes(markdown::SUMMARY_BYTES));
        opts.notices = notices;
        opts.elsewhere = Some(in_report);
        append(path, &markdown::render(outcome, &opts))?;
    }
    if let Some(path) = &actions.output {
        let c = outcome.counts();
        let verdict = if outcome.fails(fail_on) {
            "failed"
        } else {
            "passed"
        };
        append(
            path,
            &format!(
                "verdict={verdict}\nerrors={}\nwarnings={}\nnotes={}\nfindings={}\nreport={report_shown}\n",
                c.errors,
                c.warnings,
                c.notes,
                outcome.findings.len()
            ),
        )?;
    }
    Ok(u8::from(outcome.fails(fail_on)))
}

/// When the check itself could not run (exit 2): an error annotation, the reason in the job summary and
/// `verdict=error` in the outputs, each best-effort.
pub fn could_not_run(actions: &Actions, error: &str, out: &mut dyn std::io::Write) {
    let _ = writeln!(
        out,
        "::error title=plumbline could not run::{}",
        github::escape_data(error)
    );
    if let Some(path) = &actions.step_summary {
        let fence = crate::render::fence(error);
        let _ = append(
            path,
            &format!("### plumbline · could not run (exit 2)\n\n{fence}\n{error}\n{fence}\n"),
        );
    }
    if let Some(path) = &actions.output {
        let _ = append(path, "verdict=error\n");
    }
}

#[cfg(feature = "github-api")]
fn post(
    actions: &Actions,
    outcome: &Outcome,
    fail_on: Severity,
    posting: &Posting,
    elsewhere: &str,
    err: &mut dyn std::io::Write,
) -> Vec<String> {
    if !posting.check_run && !posting.comment {
        return Vec::new();
    }
    let Some(token) = &actions.token else {
        return vec!["No GitHub token was given, so there is no check run or pull-request comment: the results are in the annotations and this summary (docs/ci.md#permissions).".to_owned()];
    };
    let plan = crate::github::Plan {
        api_url: actions.api_url.clone(),
        repo: crate::github::Repo {
            owner: actions.owner.clone(),
            name: actions.repo.clone(),
        },
        head_sha: actions.head_sha().to_owned(),
        pull_request: actions.pull_request.as_ref().map(|p| p.number),
        check_run: posting.check_run,
        comment: posting.comment,
        check_name: posting.check_name.clone(),
        details_url: actions.details_url(),
        elsewhere: Some(elsewhere.to_owned()),
    };
    let posted = crate::github::publish(
        &plan,
        token.expose(),
        outcome,
        fail_on,
        crate::github::Retry::default(),
    );
    if let Some(id) = posted.check_run {
        let _ = writeln!(
            err,
            "plumbline: check run {id} posted on {} with {} annotations",
            plan.head_sha, posted.annotations
        );
    }
    match posted.comment {
        Some(crate::github::Comment::Created(id)) => {
            let _ = writeln!(err, "plumbline: pull-request comment {id} created");
        }
        Some(crate::github::Comment::Updated(id)) => {
            let _ = writeln!(err, "plumbline: pull-request comment {id} updated");
        }
        None => {}
    }
    posted.notices
}

#[cfg(not(feature = "github-api"))]
fn post(
    _: &Actions,
    _: &Outcome,
    _: Severity,
    posting: &Posting,
    _: &str,
    _: &mut dyn std::io::Write,
) -> Vec<String> {
    if !posting.check_run && !posting.comment {
        return Vec::new();
    }
    vec!["This plumbline was built without the `github-api` feature, so there is no check run or pull-request comment: the results are in the annotations and this summary.".to_owned()]
}

/// Append to a file the runner reads after the step (`$GITHUB_STEP_SUMMARY`, `$GITHUB_OUTPUT`).
fn append(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn outside_actions_names_the_missing_variable() {
        let e = Actions::from_env(&env(&[])).unwrap_err().to_string();
        assert!(e.contains("`GITHUB_EVENT_NAME` is not set"), "{e}");
        let e = Actions::from_env(&env(&[
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REPOSITORY", "just-a-name"),
            ("GITHUB_SHA", "abc"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("not `owner/name`"), "{e}");
        let e = Actions::from_env(&env(&[
            ("GITHUB_EVENT_NAME", "pull_request"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_SHA", "abc"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs GITHUB_EVENT_PATH"), "{e}");
    }

    #[test]
    fn push_events_use_github_sha_and_the_token_is_redacted() {
        let a = Actions::from_env(&env(&[
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REPOSITORY", "o/r"),
            ("GITHUB_SHA", "abc"),
            ("GITHUB_TOKEN", "ghs_secret"),
            ("GITHUB_RUN_ID", "42"),
        ]))
        .unwrap();
        assert_eq!(a.head_sha(), "abc");
        assert_eq!(a.api_url, "https://api.github.com");
        assert_eq!(
            a.details_url().as_deref(),
            Some("https://github.com/o/r/actions/runs/42")
        );
        assert!(!format!("{a:?}").contains("ghs_secret"));
        assert!(!a.untrusted());
    }

    #[test]
    fn paths_become_repository_relative() {
        let o = crate::render::sample_outcome();
        let o = repo_relative(o, Path::new("/ws/sub"), Some(Path::new("/ws")));
        let loc = o.findings[0].location.as_ref().unwrap();
        assert_eq!(loc.path, "sub/no/such/features.py");
        assert_eq!(o.findings[0].related[0].path, "sub/checkpoints/m.pt");
        // Outside the workspace: left as it was.
        let o = repo_relative(
            crate::render::sample_outcome(),
            Path::new("/elsewhere"),
            Some(Path::new("/ws")),
        );
        assert_eq!(
            o.findings[0].location.as_ref().unwrap().path,
            "no/such/features.py"
        );
    }
}
