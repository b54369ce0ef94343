//! Posting results to GitHub through its REST API (octocrab): a check run with annotations and one
//! sticky pull-request comment. Used by `plumbline ci`; renderers make the text, this module only
//! carries it. Posting never changes the verdict: what could not be posted becomes a notice for the job
//! summary, and a token without write access (fork pull requests) is said once.

pub mod client;
pub mod publish;

pub use client::{ApiError, Retry};
pub use publish::{ANNOTATIONS_PER_REQUEST, Comment, Repo};

use crate::check::Outcome;
use crate::finding::Severity;
use crate::render::markdown::{self, CHECK_SUMMARY_CHARS, COMMENT_CHARS, Limit, Options};

/// What to post, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    pub api_url: String,
    pub repo: Repo,
    /// The commit the check run belongs to: the pull request's head, not the merge commit.
    pub head_sha: String,
    pub pull_request: Option<u64>,
    pub check_run: bool,
    pub comment: bool,
    pub check_name: String,
    pub details_url: Option<String>,
    /// Where every finding can be read, for texts that had to be cut (Markdown).
    pub elsewhere: Option<String>,
}

/// What was posted, and what the job summary should say about the rest.
#[derive(Debug, Default)]
pub struct Posted {
    pub check_run: Option<u64>,
    pub annotations: usize,
    pub comment: Option<Comment>,
    pub notices: Vec<String>,
}

/// The check run's title: the verdict in a few words.
pub fn title(outcome: &Outcome, fail_on: Severity) -> String {
    let c = outcome.counts();
    let mark = if outcome.fails(fail_on) { "✗" } else { "✓" };
    format!(
        "{mark} {} · {}",
        crate::text::plural(c.errors, "error"),
        crate::text::plural(c.warnings, "warning")
    )
}

/// Post the check run and the comment the plan asks for. Blocks on a small Tokio runtime of its own.
pub fn publish(
    plan: &Plan,
    token: &str,
    outcome: &Outcome,
    fail_on: Severity,
    retry: Retry,
) -> Posted {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return Posted {
                notices: vec![format!(
                    "Nothing was posted to GitHub: no async runtime ({e})."
                )],
                ..Posted::default()
            };
        }
    };
    runtime.block_on(publish_async(plan, token, outcome, fail_on, retry))
}

const DENIED: &str = "The token cannot write check runs or comments here (403 “Resource not accessible by integration”: a pull request from a fork gets a read-only token). The results are in the annotations and this summary.";

async fn publish_async(
    plan: &Plan,
    token: &str,
    outcome: &Outcome,
    fail_on: Severity,
    retry: Retry,
) -> Posted {
    let mut posted = Posted::default();
    let client = match client::Client::new(&plan.api_url, token, retry) {
        Ok(c) => c,
        Err(e) => {
            posted
                .notices
                .push(format!("Nothing was posted to GitHub: {e}."));
            return posted;
        }
    };
    let marker = markdown::marker(&plan.check_name);
    let text = |limit, marker: Option<String>| {
        let mut o = Options::new(fail_on, limit);
        o.marker = marker;
        o.elsewhere = plan.elsewhere.clone();
        markdown::render(outcome, &o)
    };
    let mut denied = false;
    if plan.check_run {
        let run = publish::CheckRun {
            name: &plan.check_name,
            head_sha: &plan.head_sha,
            failed: outcome.fails(fail_on),
            details_url: plan.details_url.as_deref(),
            title: title(outcome, fail_on),
            summary: text(Limit::Chars(CHECK_SUMMARY_CHARS), None),
        };
        match publish::check_run(&client, &plan.repo, &run, &outcome.findings).await {
            Ok((id, annotated)) => {
                posted.check_run = Some(id);
                posted.annotations = annotated;
            }
            Err(publish::CheckRunFailure {
                error: ApiError::Denied { .. },
                ..
            }) => denied = true,
            Err(publish::CheckRunFailure {
                id: Some(id),
                annotated,
                error,
            }) => {
                posted.check_run = Some(id);
                posted.annotations = annotated;
                posted.notices.push(format!(
                    "The check run carries only the first {annotated} of {} annotations: {error}.",
                    publish::annotatable(&outcome.findings).len()
                ));
            }
            Err(publish::CheckRunFailure { error, .. }) => posted
                .notices
                .push(format!("The check run was not posted: {error}.")),
        }
    }
    if plan.comment
        && !denied
        && let Some(number) = plan.pull_request
    {
        let body = text(Limit::Chars(COMMENT_CHARS), Some(marker.clone()));
        match publish::sticky_comment(&client, &plan.repo, number, &marker, &body).await {
            Ok(c) => posted.comment = Some(c),
            Err(ApiError::Denied { .. }) => denied = true,
            Err(e) => posted
                .notices
                .push(format!("The pull-request comment was not posted: {e}.")),
        }
    }
    if denied {
        posted.notices.insert(0, DENIED.to_owned());
    }
    posted
}
