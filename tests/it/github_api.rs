//! The GitHub publisher against a local mock of the REST API (wiremock): each test asserts the method,
//! path, auth and accept headers and the JSON body of every request, and validates each body against the
//! endpoint's request schema in GitHub's own OpenAPI description (npm `@octokit/openapi`). Mock responses
//! are that description's documented examples.
#![cfg(feature = "github-api")]

use std::time::{Duration, Instant};

use plumbline::check::{GateResult, Outcome};
use plumbline::finding::{Counts, Finding, Location, Severity};
use plumbline::github::{self, Comment, Plan, Repo, Retry};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::npm;

pub const TOKEN: &str = "ghs_plumblineTestToken0123456789";
const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
const CHECK_RUNS: &str = "/repos/{owner}/{repo}/check-runs";
const CHECK_RUN: &str = "/repos/{owner}/{repo}/check-runs/{check_run_id}";
const COMMENTS: &str = "/repos/{owner}/{repo}/issues/{issue_number}/comments";
const COMMENT: &str = "/repos/{owner}/{repo}/issues/comments/{comment_id}";

fn fast() -> Retry {
    Retry {
        attempts: 4,
        base: Duration::from_millis(20),
        max_wait: Duration::from_secs(5),
    }
}

/// Mount a mock on the server (the runtime serves it from its worker thread).
fn mount(rt: &tokio::runtime::Runtime, server: &MockServer, mock: Mock) {
    rt.block_on(mock.mount(server));
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn plan(uri: &str) -> Plan {
    Plan {
        api_url: uri.to_owned(),
        repo: Repo {
            owner: "Codertocat".into(),
            name: "Hello-World".into(),
        },
        head_sha: SHA.into(),
        pull_request: Some(2),
        check_run: true,
        comment: true,
        check_name: "plumbline".into(),
        details_url: Some("https://github.com/Codertocat/Hello-World/actions/runs/7".into()),
        elsewhere: Some("Every finding is in the report `plumbline-report.json`.".into()),
    }
}

/// An outcome with `n` errors, each on its own line of `pipeline/features.py`.
fn outcome(n: u32) -> Outcome {
    let code = plumbline::gates::all_codes()
        .find(|c| c.id == "feature-order-mismatch")
        .unwrap();
    let findings: Vec<Finding> = (1..=n)
        .map(|i| {
            Finding::new(code, format!("finding {i}"))
                .at(Location::at("pipeline/features.py", i))
                .help("build rows by name")
        })
        .collect();
    Outcome {
        pipeline: "momentum".into(),
        profile: None,
        contract: None,
        gates: vec![GateResult {
            gate: "feature-schema".into(),
            summary: String::new(),
            counts: Counts::of(&findings),
            skipped: None,
            duration: Duration::from_millis(3),
        }],
        findings,
        changes: None,
        commands_refused: false,
        staged_commands: None,
        duration: Duration::from_millis(3),
    }
}

fn example(p: &str, m: &str, status: &str) -> Value {
    npm::openapi()
        .map(|doc| npm::response_example(doc, p, m, status))
        .unwrap_or(Value::Null)
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// Every request carries the token as a bearer header, asks for GitHub's JSON media type and pins the
/// API version; every body matches its endpoint's schema.
pub fn assert_requests(requests: &[Request], token: &str) {
    for r in requests {
        let h = |name: &str| {
            r.headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(
            h("authorization"),
            format!("Bearer {token}"),
            "{} {}",
            r.method,
            r.url
        );
        assert!(
            h("accept").contains("application/vnd.github+json"),
            "accept: {}",
            h("accept")
        );
        assert_eq!(h("x-github-api-version"), "2022-11-28");
        // Each header once (octocrab adds some itself; a second copy would be joined with a comma).
        for name in [
            "authorization",
            "accept",
            "x-github-api-version",
            "user-agent",
        ] {
            assert_eq!(
                r.headers.get_all(name).iter().count(),
                1,
                "{name} sent twice"
            );
        }
        assert!(!h("user-agent").is_empty());
        let Some(doc) = npm::openapi() else { continue };
        let (template, m) = endpoint(r);
        if r.method.as_str() == "GET" {
            let declared = npm::query_parameters(doc, template, m);
            for (k, v) in r.url.query_pairs() {
                assert!(
                    declared.contains(&k.to_string()),
                    "query `{k}` is not declared"
                );
                if k == "per_page" {
                    assert!(v.parse::<u32>().unwrap() <= 100);
                }
            }
        } else {
            assert_eq!(h("content-type"), "application/json");
            npm::assert_valid_body(doc, template, m, &body(r));
        }
    }
}

/// The endpoint (as the OpenAPI description names it) a captured request went to.
fn endpoint(r: &Request) -> (&'static str, &'static str) {
    let p = r.url.path();
    let segments: Vec<&str> = p.split('/').collect();
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", [_, "repos", _, _, "check-runs"]) => (CHECK_RUNS, "post"),
        ("PATCH", [_, "repos", _, _, "check-runs", _]) => (CHECK_RUN, "patch"),
        ("POST", [_, "repos", _, _, "issues", _, "comments"]) => (COMMENTS, "post"),
        ("GET", [_, "repos", _, _, "issues", _, "comments"]) => (COMMENTS, "get"),
        ("PATCH", [_, "repos", _, _, "issues", "comments", _]) => (COMMENT, "patch"),
        _ => panic!("an unexpected request: {} {p}", r.method),
    }
}

fn only_check_run(p: &mut Plan) {
    p.comment = false;
}

#[test]
fn check_run_carries_120_annotations_in_batches_of_50() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let created = example(CHECK_RUNS, "post", "201");
    let id = created["id"].as_u64().unwrap_or(4);
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/check-runs"))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(if created.is_object() {
                    created.clone()
                } else {
                    json!({ "id": id })
                }),
            )
            .expect(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("PATCH"))
            .and(path(format!(
                "/repos/Codertocat/Hello-World/check-runs/{id}"
            )))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(example(CHECK_RUN, "patch", "200")),
            )
            .expect(2),
    );
    let mut p = plan(&server.uri());
    only_check_run(&mut p);
    let posted = github::publish(&p, TOKEN, &outcome(120), Severity::Error, fast());
    assert_eq!(posted.check_run, Some(id));
    assert_eq!(posted.annotations, 120);
    assert!(posted.notices.is_empty(), "{:?}", posted.notices);
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_requests(&requests, TOKEN);
    let bodies: Vec<Value> = requests.iter().map(body).collect();
    assert_eq!(bodies.len(), 3);
    let create = &bodies[0];
    assert_eq!(create["name"], "plumbline");
    assert_eq!(create["head_sha"], SHA);
    assert_eq!(create["status"], "completed");
    assert_eq!(create["conclusion"], "failure");
    assert_eq!(
        create["details_url"],
        "https://github.com/Codertocat/Hello-World/actions/runs/7"
    );
    assert_eq!(create["output"]["title"], "✗ 120 errors · 0 warnings");
    assert!(
        create["output"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("### plumbline · ✗ failed · 120 errors")
    );
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["output"]["annotations"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [50, 50, 20]);
    // Every finding once, in order, on its line.
    let lines: Vec<u64> = bodies
        .iter()
        .flat_map(|b| b["output"]["annotations"].as_array().unwrap().clone())
        .map(|a| {
            assert_eq!(a["path"], "pipeline/features.py");
            assert_eq!(a["annotation_level"], "failure");
            assert_eq!(a["title"], "feature-order-mismatch");
            assert_eq!(a["start_line"], a["end_line"]);
            a["start_line"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(lines, (1..=120).collect::<Vec<u64>>());
    assert_eq!(
        bodies[1]["output"]["annotations"][0]["message"],
        "finding 51\nhelp: build rows by name"
    );
    // The updates carry only the output (status and conclusion were set by the create call).
    assert_eq!(
        bodies[2].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["output"]
    );
}

/// A mock comment as the API returns it (the documented example with our id and body).
fn comment(id: u64, text: &str) -> Value {
    let mut c = example(COMMENTS, "post", "201");
    if !c.is_object() {
        c = json!({});
    }
    c["id"] = json!(id);
    c["body"] = json!(text);
    c
}

#[test]
fn a_new_comment_when_none_has_the_marker() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let list = "/repos/Codertocat/Hello-World/issues/2/comments";
    mount(
        &rt,
        &server,
        Mock::given(method("GET"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([comment(1, "Me too")])))
            .expect(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(201).set_body_json(comment(9, "")))
            .expect(1),
    );
    let mut p = plan(&server.uri());
    p.check_run = false;
    let posted = github::publish(&p, TOKEN, &outcome(3), Severity::Error, fast());
    assert_eq!(posted.comment, Some(Comment::Created(9)));
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_requests(&requests, TOKEN);
    assert_eq!(requests[0].url.query(), Some("per_page=100&page=1"));
    let text = body(&requests[1])["body"].as_str().unwrap().to_owned();
    assert!(text.starts_with("### plumbline · ✗ failed · 3 errors"));
    assert!(text.ends_with("<!-- plumbline:sticky -->\n"));
}

#[test]
fn the_sticky_comment_is_found_on_page_two_and_edited() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let list = "/repos/Codertocat/Hello-World/issues/2/comments";
    let page1: Vec<Value> = (1..=100).map(|i| comment(i, "looks good")).collect();
    let next = format!(
        "<{0}/repositories/1296269/issues/2/comments?per_page=100&page=2>; rel=\"next\", <{0}/repositories/1296269/issues/2/comments?per_page=100&page=2>; rel=\"last\"",
        server.uri()
    );
    mount(
        &rt,
        &server,
        Mock::given(method("GET"))
            .and(path(list))
            .and(wiremock::matchers::query_param("page", "1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("link", next.as_str())
                    .set_body_json(Value::Array(page1)),
            )
            .expect(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("GET"))
            .and(path(list))
            .and(wiremock::matchers::query_param("page", "2"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([
                comment(101, "a question"),
                comment(
                    102,
                    "### plumbline · ✓ passed\n\n<!-- plumbline:sticky -->\n"
                ),
            ])))
            .expect(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("PATCH"))
            .and(path("/repos/Codertocat/Hello-World/issues/comments/102"))
            .respond_with(ResponseTemplate::new(200).set_body_json(comment(102, "")))
            .expect(1),
    );
    let mut p = plan(&server.uri());
    p.check_run = false;
    let posted = github::publish(&p, TOKEN, &outcome(1), Severity::Error, fast());
    assert_eq!(posted.comment, Some(Comment::Updated(102)));
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_requests(&requests, TOKEN);
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "GET", "PATCH"], "edited, not posted again");
    assert!(
        body(&requests[2])["body"]
            .as_str()
            .unwrap()
            .contains("✗ failed · 1 error")
    );
}

#[test]
fn a_read_only_token_falls_back_and_says_so_once() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/check-runs"))
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({
                "message": "Resource not accessible by integration",
                "documentation_url": "https://docs.github.com/rest/checks/runs#create-a-check-run",
                "status": "403"
            })))
            .expect(1),
    );
    let posted = github::publish(
        &plan(&server.uri()),
        TOKEN,
        &outcome(2),
        Severity::Error,
        fast(),
    );
    assert_eq!(posted.check_run, None);
    assert_eq!(posted.comment, None);
    assert_eq!(posted.notices.len(), 1, "{:?}", posted.notices);
    assert!(posted.notices[0].contains("Resource not accessible by integration"));
    assert!(posted.notices[0].contains("fork"));
    // No retry of a 403 and no comment attempt after it.
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_eq!(requests.len(), 1);
    assert_requests(&requests, TOKEN);
}

#[test]
fn a_502_is_retried_then_succeeds() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/check-runs"))
            .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>"))
            .up_to_n_times(1)
            .with_priority(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/check-runs"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
            .with_priority(2),
    );
    let mut p = plan(&server.uri());
    only_check_run(&mut p);
    let posted = github::publish(&p, TOKEN, &outcome(2), Severity::Error, fast());
    assert_eq!(posted.check_run, Some(5));
    assert!(posted.notices.is_empty(), "{:?}", posted.notices);
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        body(&requests[0]),
        body(&requests[1]),
        "the same request again"
    );
    assert_requests(&requests, TOKEN);
}

#[test]
fn persistent_5xx_gives_up_after_the_bounded_tries_with_a_notice() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount(
        &rt,
        &server,
        Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)),
    );
    let mut p = plan(&server.uri());
    only_check_run(&mut p);
    let posted = github::publish(&p, TOKEN, &outcome(1), Severity::Error, fast());
    assert_eq!(posted.check_run, None);
    assert_eq!(rt.block_on(server.received_requests()).unwrap().len(), 4);
    assert!(
        posted.notices[0].starts_with(
            "The check run was not posted: POST /repos/Codertocat/Hello-World/check-runs: 503"
        ),
        "{:?}",
        posted.notices
    );
    assert!(!posted.notices[0].contains(TOKEN));
}

#[test]
fn a_429_waits_for_the_rate_limit_reset() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/check-runs"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("x-ratelimit-limit", "5000")
                    .insert_header("x-ratelimit-remaining", "0")
                    .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                    .set_body_json(json!({"message": "API rate limit exceeded"})),
            )
            .up_to_n_times(1)
            .with_priority(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path("/repos/Codertocat/Hello-World/check-runs"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 6})))
            .with_priority(2),
    );
    let mut p = plan(&server.uri());
    only_check_run(&mut p);
    let start = Instant::now();
    let posted = github::publish(&p, TOKEN, &outcome(1), Severity::Error, fast());
    assert_eq!(posted.check_run, Some(6));
    let requests = rt.block_on(server.received_requests()).unwrap();
    assert_eq!(requests.len(), 2);
    // It waited for the reset (not the 20 ms backoff): the second request came after the reset second.
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_requests(&requests, TOKEN);
}

#[test]
fn a_rate_limit_longer_than_the_bound_is_given_up_not_waited_for() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount(
        &rt,
        &server,
        Mock::given(method("POST")).respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "3600")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        ),
    );
    let mut p = plan(&server.uri());
    only_check_run(&mut p);
    let posted = github::publish(&p, TOKEN, &outcome(1), Severity::Error, fast());
    assert_eq!(posted.check_run, None);
    assert_eq!(rt.block_on(server.received_requests()).unwrap().len(), 1);
    assert!(
        posted.notices[0].contains("rate limited for another 3600 s"),
        "{:?}",
        posted.notices
    );
}

#[test]
fn the_openapi_check_rejects_what_github_would_not_take() {
    let Some(doc) = npm::openapi() else { return };
    let good = json!({"name": "plumbline", "head_sha": SHA, "status": "completed", "conclusion": "failure",
        "output": {"title": "t", "summary": "s", "annotations": [
            {"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "failure", "message": "m"}]}});
    npm::assert_valid_body(doc, CHECK_RUNS, "post", &good);
    let mut bad_level = good.clone();
    bad_level["output"]["annotations"][0]["annotation_level"] = json!("error");
    let mut misspelt = good.clone();
    misspelt["headSha"] = json!(SHA);
    let mut no_summary = good.clone();
    no_summary["output"]
        .as_object_mut()
        .unwrap()
        .remove("summary");
    for bad in [bad_level, misspelt, no_summary] {
        let caught =
            std::panic::catch_unwind(|| npm::assert_valid_body(doc, CHECK_RUNS, "post", &bad));
        assert!(caught.is_err(), "accepted: {bad}");
    }
    let caught = std::panic::catch_unwind(|| {
        npm::assert_valid_body(doc, COMMENTS, "post", &json!({"text": "x"}))
    });
    assert!(caught.is_err());
}

#[test]
fn a_failed_comment_create_looks_again_before_creating_again() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let list = "/repos/Codertocat/Hello-World/issues/2/comments";
    mount(
        &rt,
        &server,
        Mock::given(method("GET"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .expect(2),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(502))
            .up_to_n_times(1)
            .with_priority(1),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(201).set_body_json(comment(11, "")))
            .with_priority(2),
    );
    let mut p = plan(&server.uri());
    p.check_run = false;
    let posted = github::publish(&p, TOKEN, &outcome(1), Severity::Error, fast());
    assert_eq!(posted.comment, Some(Comment::Created(11)));
    let requests = rt.block_on(server.received_requests()).unwrap();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    // A create is never simply repeated: GitHub may have made the comment before it answered 502.
    assert_eq!(methods, ["GET", "POST", "GET", "POST"]);
    assert_requests(&requests, TOKEN);
}

#[test]
fn a_marked_comment_by_the_bot_wins_over_one_a_person_wrote() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let list = "/repos/Codertocat/Hello-World/issues/2/comments";
    let mut planted = comment(5, "copied: <!-- plumbline:sticky -->");
    planted["user"] = json!({"login": "someone", "type": "User"});
    let mut ours = comment(6, "### plumbline\n<!-- plumbline:sticky -->\n");
    ours["user"] = json!({"login": "github-actions[bot]", "type": "Bot"});
    // Another check's comment has another marker.
    let mut other = comment(7, "<!-- plumbline:sticky:gpu -->");
    other["user"] = json!({"login": "github-actions[bot]", "type": "Bot"});
    mount(
        &rt,
        &server,
        Mock::given(method("GET"))
            .and(path(list))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([planted, other, ours]))),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("PATCH"))
            .and(path("/repos/Codertocat/Hello-World/issues/comments/6"))
            .respond_with(ResponseTemplate::new(200).set_body_json(comment(6, "")))
            .expect(1),
    );
    let mut p = plan(&server.uri());
    p.check_run = false;
    let posted = github::publish(&p, TOKEN, &outcome(1), Severity::Error, fast());
    assert_eq!(posted.comment, Some(Comment::Updated(6)));
}

#[test]
fn a_check_run_whose_later_batch_fails_is_reported_as_incomplete() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    mount(
        &rt,
        &server,
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 8}))),
    );
    mount(
        &rt,
        &server,
        Mock::given(method("PATCH")).respond_with(
            ResponseTemplate::new(422).set_body_json(json!({"message": "Validation Failed"})),
        ),
    );
    let mut p = plan(&server.uri());
    only_check_run(&mut p);
    let posted = github::publish(&p, TOKEN, &outcome(120), Severity::Error, fast());
    assert_eq!((posted.check_run, posted.annotations), (Some(8), 50));
    assert!(
        posted.notices[0].starts_with("The check run carries only the first 50 of 120 annotations: PATCH /repos/Codertocat/Hello-World/check-runs/8: 422 Validation Failed"),
        "{:?}",
        posted.notices
    );
}

#[test]
fn a_token_that_cannot_be_a_header_is_a_notice_not_a_panic() {
    let posted = github::publish(
        &plan("http://127.0.0.1:9"),
        "ghs_abc\ndef",
        &outcome(1),
        Severity::Error,
        fast(),
    );
    assert_eq!(posted.check_run, None);
    assert_eq!(posted.notices.len(), 1);
    assert!(posted.notices[0].contains("GITHUB_TOKEN holds characters a header cannot carry"));
    assert!(!posted.notices[0].contains("ghs_abc"));
}
