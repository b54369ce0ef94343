//! Posting a run's results: a check run on the pull request's head commit carrying every finding with a
//! line as an annotation (50 per request, the API's limit: the first batch with the create call, the
//! rest with update calls, which GitHub appends), and one sticky comment found by its hidden marker and
//! edited in place on re-runs. Request bodies use octocrab's check-run parameter types.

use octocrab::params::checks::{
    CheckRunConclusion, CheckRunOutput, CheckRunOutputAnnotation, CheckRunOutputAnnotationLevel,
    CheckRunStatus,
};
use serde::Serialize;

use super::client::{ApiError, Client, Method, has_next_page};
use crate::finding::{Finding, Severity};

/// Annotations per request (the checks API's limit).
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Pages of comments searched for the marker (100 each).
const MAX_COMMENT_PAGES: u32 = 50;
/// The checks API's cap on an annotation's message and raw details.
const ANNOTATION_BYTES: usize = 64 * 1024 - 1;

/// Where results go.
#[derive(Debug, Clone)]
pub struct Repo {
    pub owner: String,
    pub name: String,
}

#[derive(Serialize)]
struct CreateCheckRun<'a> {
    name: &'a str,
    head_sha: &'a str,
    status: CheckRunStatus,
    conclusion: CheckRunConclusion,
    #[serde(skip_serializing_if = "Option::is_none")]
    details_url: Option<&'a str>,
    output: CheckRunOutput,
}

#[derive(Serialize)]
struct UpdateCheckRun {
    output: CheckRunOutput,
}

#[derive(Serialize)]
struct CommentBody<'a> {
    body: &'a str,
}

/// A check run to post.
pub struct CheckRun<'a> {
    pub name: &'a str,
    pub head_sha: &'a str,
    pub failed: bool,
    pub details_url: Option<&'a str>,
    pub title: String,
    /// Markdown, within the API's 65,535 characters.
    pub summary: String,
}

fn cut(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The findings that can sit on a line: those with a path and a line.
pub fn annotatable(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.location.as_ref().is_some_and(|l| l.line.is_some()))
        .collect()
}

fn annotation(f: &Finding) -> CheckRunOutputAnnotation {
    let loc = f.location.as_ref().expect("annotatable");
    let line = loc.line.expect("annotatable");
    CheckRunOutputAnnotation {
        path: loc.path.clone(),
        start_line: line,
        end_line: line,
        start_column: loc.column,
        end_column: loc.column,
        annotation_level: match f.severity {
            Severity::Error => CheckRunOutputAnnotationLevel::Failure,
            Severity::Warning => CheckRunOutputAnnotationLevel::Warning,
            Severity::Note => CheckRunOutputAnnotationLevel::Notice,
        },
        message: cut(&crate::render::full_message(f), ANNOTATION_BYTES),
        title: Some(f.code.id.to_owned()),
        raw_details: f.diff.as_deref().map(|d| cut(d, ANNOTATION_BYTES)),
    }
}

fn output(run: &CheckRun, batch: &[&Finding]) -> CheckRunOutput {
    CheckRunOutput {
        title: run.title.clone(),
        summary: run.summary.clone(),
        text: None,
        annotations: batch.iter().map(|f| annotation(f)).collect(),
        images: Vec::new(),
    }
}

/// Why a check run is incomplete: it may exist (`id`) with its first `annotated` annotations.
#[derive(Debug)]
pub struct CheckRunFailure {
    pub id: Option<u64>,
    pub annotated: usize,
    pub error: ApiError,
}

/// Create the check run with the first batch of annotations, then add the rest. Returns its id and the
/// annotations it carries.
pub async fn check_run(
    client: &Client,
    repo: &Repo,
    run: &CheckRun<'_>,
    findings: &[Finding],
) -> Result<(u64, usize), CheckRunFailure> {
    let lined = annotatable(findings);
    let mut batches = lined.chunks(ANNOTATIONS_PER_REQUEST);
    let first = batches.next().unwrap_or(&[]);
    let path = format!("/repos/{}/{}/check-runs", repo.owner, repo.name);
    let failed = |id, annotated, error| CheckRunFailure {
        id,
        annotated,
        error,
    };
    let created = client
        .call(
            Method::Post,
            &path,
            Some(&CreateCheckRun {
                name: run.name,
                head_sha: run.head_sha,
                status: CheckRunStatus::Completed,
                conclusion: if run.failed {
                    CheckRunConclusion::Failure
                } else {
                    CheckRunConclusion::Success
                },
                details_url: run.details_url,
                output: output(run, first),
            }),
        )
        .await
        .map_err(|e| failed(None, 0, e))?;
    let id = created.body["id"].as_u64().ok_or_else(|| {
        failed(
            None,
            0,
            ApiError::Status {
                method: "POST",
                path: path.clone(),
                status: 201,
                message: "the response has no check-run `id`".into(),
            },
        )
    })?;
    let mut annotated = first.len();
    for batch in batches {
        client
            .call(
                Method::Patch,
                &format!("{path}/{id}"),
                Some(&UpdateCheckRun {
                    output: output(run, batch),
                }),
            )
            .await
            .map_err(|e| failed(Some(id), annotated, e))?;
        annotated += batch.len();
    }
    Ok((id, annotated))
}

/// What the sticky comment call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comment {
    Created(u64),
    Updated(u64),
}

/// Find plumbline's comment on the pull request by its `marker` (paging through the comments, 100 a
/// page, while the `Link` header has a next page, up to 5,000 comments) and edit it, or create it.
/// `body` must end with the marker, or the next run will not find it. Of several marked comments, one
/// written by a bot (the Actions token's identity) wins over one a person wrote, so a marker pasted into
/// a review comment does not capture the results.
pub async fn sticky_comment(
    client: &Client,
    repo: &Repo,
    number: u64,
    marker: &str,
    body: &str,
) -> Result<Comment, ApiError> {
    debug_assert!(body.contains(marker));
    let list = format!(
        "/repos/{}/{}/issues/{number}/comments",
        repo.owner, repo.name
    );
    // A create that failed with a 5xx may have happened: look again before creating again.
    for round in 0..2 {
        if let Some(id) = find_marked(client, &list, marker).await? {
            client
                .call(
                    Method::Patch,
                    &format!("/repos/{}/{}/issues/comments/{id}", repo.owner, repo.name),
                    Some(&CommentBody { body }),
                )
                .await?;
            return Ok(Comment::Updated(id));
        }
        match client
            .call_once(Method::Post, &list, Some(&CommentBody { body }))
            .await
        {
            Ok(created) => {
                let id = created.body["id"]
                    .as_u64()
                    .ok_or_else(|| ApiError::Status {
                        method: "POST",
                        path: list.clone(),
                        status: 201,
                        message: "the response has no comment `id`".into(),
                    })?;
                return Ok(Comment::Created(id));
            }
            Err(ApiError::Status { status, .. }) if round == 0 && status >= 500 => {}
            Err(ApiError::Transport { .. }) if round == 0 => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("the second round returns")
}

async fn find_marked(client: &Client, list: &str, marker: &str) -> Result<Option<u64>, ApiError> {
    let mut by_person = None;
    for page in 1..=MAX_COMMENT_PAGES {
        let r = client
            .call::<()>(
                Method::Get,
                &format!("{list}?per_page=100&page={page}"),
                None,
            )
            .await?;
        for c in r.body.as_array().into_iter().flatten() {
            let marked = c["body"].as_str().is_some_and(|b| b.contains(marker));
            let Some(id) = c["id"].as_u64().filter(|_| marked) else {
                continue;
            };
            if c["user"]["type"] == "Bot" {
                return Ok(Some(id));
            }
            by_person.get_or_insert(id);
        }
        if !has_next_page(&r.headers) {
            break;
        }
    }
    Ok(by_person)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let s = "é".repeat(100);
        let c = cut(&s, 51);
        assert!(c.len() <= 51 && c.ends_with('…'), "{}", c.len());
        assert_eq!(cut("short", 51), "short");
    }
}
