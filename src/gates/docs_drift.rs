//! # docs-drift (contract 6)
//!
//! **What it does.** Compares the committed docs with what plumbline derives from code and checkpoints:
//! `PIPELINE_CONTRACT.json` is first validated against `schemas/pipeline-contract.schema.json` (an invalid
//! document is reported with its JSON pointer), then compared byte for byte with the canonical contract;
//! each Markdown file's generated blocks are compared with their rendering. A missing file, a file without
//! markers, broken markers or unparsable JSON are errors, never "no drift".
//!
//! **Why is this bad?** People read the docs, not the code: a label horizon documented as 5 bars while the
//! code uses 10 sends a researcher's backtest and a reviewer's approval down the wrong path.
//!
//! **Example.** The code renames `vol_20` to `vol_21`; `docs/PIPELINE_CONTRACT.md` still lists `vol_20` in
//! its `features` block: `docs-drift` at that docs line, with the code line of the feature beside it and a
//! unified diff; `plumbline docs --write` fixes it.

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::contract::PipelineContract;
use crate::docs;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};
use crate::source::Fact;

const fn code(id: &'static str, summary: &'static str) -> Code {
    Code {
        id,
        gate: "docs-drift",
        contract: ContractKind::Docs,
        severity: Severity::Error,
        summary,
    }
}

pub const DOCS_DRIFT: Code = code(
    "docs-drift",
    "a generated docs part differs from what the code and checkpoints derive",
);
pub const DOCS_MISSING: Code = code(
    "docs-missing",
    "a docs file named in the config does not exist",
);
pub const DOCS_UNPARSABLE: Code = code("docs-unparsable", "the docs JSON is not valid JSON");
pub const DOCS_SCHEMA_INVALID: Code = code(
    "docs-schema-invalid",
    "the docs JSON does not validate against the contract schema",
);
pub const DOCS_MARKERS: Code = code(
    "docs-markers-invalid",
    "a Markdown docs file has no generated blocks, or broken or unknown markers",
);

pub const GATE: Gate = Gate {
    id: Id::DocsDrift,
    name: "docs-drift",
    plan_script: None,
    codes: &[
        DOCS_DRIFT,
        DOCS_MISSING,
        DOCS_UNPARSABLE,
        DOCS_SCHEMA_INVALID,
        DOCS_MARKERS,
    ],
    needs: Needs::NOTHING,
    parts: Parts::Files,
    profiles: &[Profile::PreLive],
    run,
};

const FIX: &str = "run `plumbline docs --write` and commit the result";

fn fix_help(cx: &Context) -> String {
    let cfg = crate::paths::display_path(&cx.loaded.path);
    if cfg == "plumbline.toml" {
        FIX.to_owned()
    } else {
        format!("run `plumbline --config {cfg} docs --write` and commit the result")
    }
}

/// The code-side location of the fact a docs line shows. `what` is a Markdown block name or the dotted
/// contract path of a JSON line (`features.columns`, `production-checkpoint.schema-hash`).
fn source_of(cx: &Context, what: &str, docs_line: &str) -> Option<Location> {
    let code = &cx.facts.code;
    let checkpoint = || Location::file(crate::paths::display_path(&cx.facts.production.path));
    let config = || Location::file(crate::paths::display_path(&cx.loaded.path));
    // Table rows start with `| <index> |`: point at that item's own line.
    let item = |fact: &Fact| {
        let idx = docs_line
            .trim()
            .strip_prefix('|')
            .and_then(|r| r.split('|').next())
            .and_then(|c| c.trim().parse::<usize>().ok());
        idx.map(|i| fact.item(i))
            .unwrap_or_else(|| fact.origin.clone())
    };
    let has = |s: &str| docs_line.contains(s);
    let loc = match what {
        "features" if has("NaN policy") => code.nan_policy.origin.clone(),
        "features" if has("Input window") => code.window.origin.clone(),
        "features" => item(&code.columns),
        "heads" => item(&code.heads),
        "targets" if has("horizon") => code.horizon.origin.clone(),
        "targets" => code.thresholds.origin.clone(),
        "versions" if has("heads version") => code.heads_version.origin.clone(),
        "versions" if has("model version") => code.model_version.origin.clone(),
        "versions" => config(),
        "hashes" if has("derived") => code.columns.origin.clone(),
        "hashes" | "production-checkpoint" => checkpoint(),
        p if p.starts_with("production-checkpoint") => checkpoint(),
        p if p.starts_with("features.columns") || p.starts_with("features.schema-hash") => {
            code.columns.origin.clone()
        }
        p if p.starts_with("features.nan-policy") => code.nan_policy.origin.clone(),
        p if p.starts_with("window") => code.window.origin.clone(),
        p if p.starts_with("targets.horizon") => code.horizon.origin.clone(),
        p if p.starts_with("targets.thresholds") => code.thresholds.origin.clone(),
        p if p.starts_with("heads-version") => code.heads_version.origin.clone(),
        p if p.starts_with("heads") => code.heads.origin.clone(),
        p if p.starts_with("model-version") => code.model_version.origin.clone(),
        "pipeline" | "contract-format" => config(),
        _ => return None,
    };
    Some(loc.with_label("derived from"))
}

/// The docs contract JSON cannot be read.
fn json_missing(cx: &Context, display: &str, e: &crate::error::Error, help: &str) -> Finding {
    Finding::new(&DOCS_MISSING, unreadable("the docs contract", display, e))
        .at(Location::file(display))
        .note(format!(
            "`docs.json` in {} names this file",
            crate::paths::display_path(&cx.loaded.path)
        ))
        .help(help)
}

/// Why a docs file cannot be read: it does not exist yet, or the read failed.
fn unreadable(what: &str, display: &str, e: &crate::error::Error) -> String {
    match e {
        crate::error::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!("{what} {display} does not exist yet")
        }
        other => format!("cannot read {what}: {other}"),
    }
}

/// The docs contract is not valid JSON.
fn unparsable(display: &str, e: &serde_json::Error, help: &str) -> Finding {
    Finding::new(&DOCS_UNPARSABLE, format!("not valid JSON: {e}"))
        .at(Location {
            path: display.to_owned(),
            line: Some(e.line() as u32),
            column: Some(e.column() as u32),
            label: None,
        })
        .help(help)
}

/// The docs contract breaks the schema at `pointer`.
fn schema_invalid(display: &str, pointer: &str, message: &str, help: &str) -> Finding {
    Finding::new(&DOCS_SCHEMA_INVALID, format!("{pointer}: {message}"))
        .at(Location::file(display).with_label(pointer))
        .help(help)
}

/// A Markdown docs file cannot be read.
fn markdown_missing(cx: &Context, display: &str, e: &crate::error::Error) -> Finding {
    Finding::new(&DOCS_MISSING, unreadable("the docs file", display, e))
        .at(Location::file(display))
        .note(format!(
            "`docs.markdown` in {} names this file",
            crate::paths::display_path(&cx.loaded.path)
        ))
        .help(format!(
            "{}: a missing file is created with every generated block under its heading, to write prose around",
            fix_help(cx)
        ))
}

/// A Markdown docs file's markers are missing, broken or unknown.
fn markers(display: &str, e: docs::blocks::MarkerError) -> Finding {
    Finding::new(&DOCS_MARKERS, e.message).at(Location::at(display, e.line))
}

/// A docs file differs from `expected`, first at `line`; `source`: where the fact on that line comes
/// from.
fn drift(
    message: String,
    doc: &DocFile,
    line: u32,
    expected: &str,
    help: &str,
    source: Option<Location>,
) -> Finding {
    let mut f = Finding::new(&DOCS_DRIFT, message)
        .at(Location::at(&doc.display, line))
        .help(help)
        .diff(docs::unified_diff(&doc.text, expected, &doc.display));
    if let Some(loc) = source {
        f = f.related(loc);
    }
    f
}

/// A docs file that could be read: how findings name it, and its text.
struct DocFile {
    display: String,
    text: String,
}

impl DocFile {
    /// The first line where the text differs from `expected`, and that line of the text.
    fn first_change(&self, expected: &str) -> (u32, &str) {
        let line = docs::first_changed_line(&self.text, expected);
        (line, self.text.lines().nth(line as usize - 1).unwrap_or(""))
    }
}

pub fn run(cx: &Context) -> crate::error::Result<Report> {
    let contract = cx.contract;
    let help = fix_help(cx);
    let mut out = Vec::new();
    let mut files = 0;
    if check_json(cx, contract, &help, &mut out) {
        files += 1;
    }
    for md in &cx.loaded.config.docs.markdown {
        if check_markdown(cx, contract, md, &help, &mut out) {
            files += 1;
        }
    }
    let drifted = out.iter().filter(|f| f.code == DOCS_DRIFT.id).count();
    Ok(Report {
        findings: out,
        summary: format!("{} · {drifted} drifted", crate::text::plural(files, "file")),
        skipped: None,
    })
}

/// The JSON contract: parse, validate against the schema, then compare bytes. Returns whether the file
/// could be read.
fn check_json(
    cx: &Context,
    contract: &PipelineContract,
    help: &str,
    out: &mut Vec<Finding>,
) -> bool {
    let json = &cx.loaded.config.docs.json;
    let display = cx.loaded.display(json);
    let text = match cx.loaded.read_to_string(&cx.loaded.resolve(json)) {
        Ok(text) => text,
        Err(e) => {
            out.push(json_missing(cx, &display, &e, help));
            return false;
        }
    };
    let doc_json = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(doc) => doc,
        Err(e) => {
            out.push(unparsable(&display, &e, help));
            return true;
        }
    };
    let errors = docs::schema_errors(&doc_json);
    for (pointer, message) in &errors {
        out.push(schema_invalid(&display, pointer, message, help));
    }
    let doc = DocFile { display, text };
    let expected = docs::expected_json(contract);
    if errors.is_empty() && doc.text != expected {
        let (line, docs_line) = doc.first_change(&expected);
        let source = source_of(cx, &json_path_at(&doc.text, line), docs_line);
        let message = format!("{} is out of date", doc.display);
        out.push(drift(message, &doc, line, &expected, help, source));
    }
    true
}

/// One Markdown docs file: its generated blocks against their rendering. Returns whether the file could
/// be read.
fn check_markdown(
    cx: &Context,
    contract: &PipelineContract,
    md: &str,
    help: &str,
    out: &mut Vec<Finding>,
) -> bool {
    let display = cx.loaded.display(md);
    let text = match cx.loaded.read_to_string(&cx.loaded.resolve(md)) {
        Ok(t) => t,
        Err(e) => {
            out.push(markdown_missing(cx, &display, &e));
            return false;
        }
    };
    let drifts = match docs::markdown_drift(&text, contract) {
        Ok(d) => d,
        Err(e) => {
            out.push(markers(&display, e));
            return true;
        }
    };
    let doc = DocFile { display, text };
    for d in drifts {
        let (line, docs_line) = doc.first_change(&d.fixed);
        let source = source_of(cx, &d.block, docs_line);
        let message = format!("{} is out of date (block `{}`)", doc.display, d.block);
        out.push(drift(message, &doc, line, &d.fixed, help, source));
    }
    true
}

/// The dotted path of object keys enclosing `line` of a canonical (two-space indented) JSON text, e.g.
/// `production-checkpoint.schema-hash`: enough to name the fact a changed line belongs to.
fn json_path_at(text: &str, line: u32) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let idx = (line as usize).saturating_sub(1);
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut keys = Vec::new();
    let mut limit = usize::MAX;
    for l in lines.iter().take(idx + 1).rev() {
        let t = l.trim_start();
        if indent(l) < limit && (t.starts_with('"') || l.trim_end().ends_with(['{', '['])) {
            if let Some(key) = t
                .strip_prefix('"')
                .and_then(|r| r.split_once("\":"))
                .map(|(k, _)| k)
            {
                keys.push(key.to_owned());
            }
            limit = indent(l);
        }
    }
    keys.reverse();
    keys.join(".")
}

#[cfg(test)]
mod tests {
    use super::json_path_at;

    #[test]
    fn finds_the_enclosing_key_path() {
        let text = "{\n  \"features\": {\n    \"columns\": [\n      {\n        \"dtype\": \"float32\",\n        \"name\": \"a\"\n      }\n    ],\n    \"nan-policy\": \"zero\"\n  }\n}\n";
        assert_eq!(json_path_at(text, 6), "features.columns.name");
        assert_eq!(json_path_at(text, 9), "features.nan-policy");
        assert_eq!(json_path_at(text, 2), "features");
        assert_eq!(json_path_at(text, 1), "");
    }
}
