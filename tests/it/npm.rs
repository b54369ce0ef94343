//! The third-party references the tests check plumbline against, from npm (installed by `.ci/run`,
//! found through `PLUMBLINE_NODE_MODULES`, else in `.ci/npm/node_modules`): GitHub's REST description
//! (`@octokit/openapi`), real webhook payloads (`@octokit/webhooks-examples`) and the SARIF 2.1.0
//! schema (`@microsoft/jest-sarif`).
//! Without the variable a test says so and skips; with `CI=true` a missing package is a failure.
// The OpenAPI helpers serve the GitHub API tests, which need the `github-api` feature.
#![cfg_attr(not(feature = "github-api"), allow(dead_code))]

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// A file of an installed package, or `None` (skip) outside CI.
pub fn package_file(rel: &str, what: &str) -> Option<PathBuf> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // The variable, or where `.ci/run` installs them (so a local `cargo test` after it finds them too).
    let installed = crate::util::repo().join(".ci/npm/node_modules");
    let root = std::env::var_os("PLUMBLINE_NODE_MODULES")
        .map(PathBuf::from)
        .or_else(|| installed.is_dir().then_some(installed));
    let Some(root) = root else {
        assert!(
            !ci,
            "CI=true, but PLUMBLINE_NODE_MODULES is not set: {what} needs npm's {rel} (.ci/run installs it)"
        );
        eprintln!("skipped: {what} needs PLUMBLINE_NODE_MODULES with {rel} (docs/testing.md)");
        return None;
    };
    let path = root.join(rel);
    // The variable is set: a missing file is a broken install, never a skip.
    assert!(
        path.is_file(),
        "{} is missing: {what} needs it (npm install in .ci/run)",
        path.display()
    );
    Some(path)
}

fn load(rel: &str, what: &str) -> Option<Value> {
    let path = package_file(rel, what)?;
    Some(serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap())
}

/// GitHub's OpenAPI description of api.github.com.
pub fn openapi() -> Option<&'static Value> {
    static DOC: OnceLock<Option<Value>> = OnceLock::new();
    DOC.get_or_init(|| {
        load(
            "@octokit/openapi/generated/api.github.com.json",
            "validating request bodies",
        )
    })
    .as_ref()
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolved {r}")),
        None => v,
    }
}

fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    doc["paths"]
        .get(path)
        .and_then(|p| p.get(method))
        .unwrap_or_else(|| panic!("the OpenAPI description has no {method} {path}"))
}

/// The request-body schema of an endpoint (`path` as the description writes it, `method` lower case).
pub fn request_schema(doc: &Value, path: &str, method: &str) -> Value {
    operation(doc, path, method)["requestBody"]["content"]["application/json"]["schema"].clone()
}

/// The documented example response of an endpoint: a real body shape for the mock server to send.
pub fn response_example(doc: &Value, path: &str, method: &str, status: &str) -> Value {
    let content = &operation(doc, path, method)["responses"][status]["content"]["application/json"];
    let (_, example) = content["examples"]
        .as_object()
        .and_then(|m| m.iter().next())
        .unwrap_or_else(|| panic!("no example for {method} {path} {status}"));
    resolve(doc, example)["value"].clone()
}

/// The query parameters an endpoint declares.
pub fn query_parameters(doc: &Value, path: &str, method: &str) -> Vec<String> {
    operation(doc, path, method)["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| resolve(doc, p))
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every key of `body` is a property the schema declares, recursively. GitHub's schemas leave
/// `additionalProperties` open, so a misspelt field (`headSha`) would pass validation and be ignored by
/// the API; this catches it.
pub fn only_declared_properties(schema: &Value, body: &Value, at: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    match body {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    match props.get(k) {
                        Some(s) => {
                            wrong.extend(only_declared_properties(s, v, &format!("{at}.{k}")))
                        }
                        None => wrong.push(format!("{at}.{k} is not in the schema")),
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    wrong.extend(only_declared_properties(s, v, &format!("{at}[{i}]")));
                }
            }
        }
        _ => {}
    }
    wrong
}

/// Validate a captured request body against the endpoint's schema in GitHub's description.
pub fn assert_valid_body(doc: &Value, path: &str, method: &str, body: &Value) {
    let schema = request_schema(doc, path, method);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .chain(only_declared_properties(&schema, body, "$"))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path}: the body does not match GitHub's OpenAPI description:\n{}\n{body:#}",
        errors.join("\n")
    );
}

/// The `pull_request` webhook payloads of api.github.com, by action.
pub fn pull_request_event(action: &str) -> Option<Value> {
    static ALL: OnceLock<Option<Value>> = OnceLock::new();
    let all = ALL
        .get_or_init(|| {
            load(
                "@octokit/webhooks-examples/api.github.com/index.json",
                "parsing real event payloads",
            )
        })
        .as_ref()?;
    let examples = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pull_request")
        .expect("pull_request examples")["examples"]
        .as_array()
        .unwrap();
    Some(
        examples
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no pull_request.{action} example"))
            .clone(),
    )
}

/// The SARIF 2.1.0 schema as `@microsoft/jest-sarif` ships it.
pub fn sarif_schema() -> Option<Value> {
    load(
        "@microsoft/jest-sarif/lib/schemas/sarif-2.1.0-rtm.5.json",
        "validating SARIF output",
    )
}
