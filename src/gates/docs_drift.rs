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

use super::{Context, Gate, Id, Needs, Profile, Report};
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
pub const DOCS_NOT_CHECKED: Code = code(
    "docs-not-checked",
    "the docs could not be compared because the contract could not be derived",
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
        DOCS_NOT_CHECKED,
    ],
    needs: Needs {
        engine: false,
        slice: false,
        base: false,
    },
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

pub fn run(cx: &Context) -> crate::error::Result<Report> {
    let docs = &cx.loaded.config.docs;
    let mut out = Vec::new();
    let Some(contract) = cx.contract else {
        out.push(
            Finding::new(
                &DOCS_NOT_CHECKED,
                "docs were not compared: the contract could not be derived",
            )
            .at(Location::file(crate::paths::display_path(&cx.loaded.path)))
            .help("fix the checkpoint-missing-fact findings first"),
        );
        return Ok(Report {
            findings: out,
            summary: "not checked".into(),
            skipped: None,
        });
    };
    let help = fix_help(cx);
    let mut files = 0;

    // The JSON contract: parse, validate against the schema, then compare bytes.
    let display = cx.loaded.display(&docs.json);
    match cx.loaded.read_to_string(&cx.loaded.resolve(&docs.json)) {
        Err(e) => out.push(
            Finding::new(&DOCS_MISSING, format!("cannot read the docs contract: {e}"))
                .at(Location::file(&display))
                .help(help.clone()),
        ),
        Ok(text) => {
            files += 1;
            match serde_json::from_str::<serde_json::Value>(&text) {
                Err(e) => out.push(
                    Finding::new(&DOCS_UNPARSABLE, format!("not valid JSON: {e}"))
                        .at(Location {
                            path: display.clone(),
                            line: Some(e.line() as u32),
                            column: Some(e.column() as u32),
                            label: None,
                        })
                        .help(help.clone()),
                ),
                Ok(doc) => {
                    let errors = docs::schema_errors(&doc);
                    for (pointer, message) in &errors {
                        out.push(
                            Finding::new(&DOCS_SCHEMA_INVALID, format!("{pointer}: {message}"))
                                .at(Location::file(&display).with_label(pointer.clone()))
                                .help(help.clone()),
                        );
                    }
                    let expected = docs::expected_json(contract);
                    if errors.is_empty() && text != expected {
                        let line = docs::first_changed_line(&text, &expected);
                        let key = json_path_at(&text, line);
                        let docs_line = text.lines().nth(line as usize - 1).unwrap_or("");
                        let mut f = Finding::new(&DOCS_DRIFT, format!("{display} is out of date"))
                            .at(Location::at(&display, line))
                            .help(help.clone())
                            .diff(docs::unified_diff(&text, &expected, &display));
                        if let Some(loc) = source_of(cx, &key, docs_line) {
                            f = f.related(loc);
                        }
                        out.push(f);
                    }
                }
            }
        }
    }

    for md in &docs.markdown {
        let display = cx.loaded.display(md);
        let text = match cx.loaded.read_to_string(&cx.loaded.resolve(md)) {
            Ok(t) => t,
            Err(e) => {
                out.push(
                    Finding::new(&DOCS_MISSING, format!("cannot read docs file: {e}"))
                        .at(Location::file(&display)),
                );
                continue;
            }
        };
        files += 1;
        let drifts = match docs::markdown_drift(&text, contract) {
            Ok(d) => d,
            Err(e) => {
                out.push(Finding::new(&DOCS_MARKERS, e.message).at(Location::at(&display, e.line)));
                continue;
            }
        };
        for drift in drifts {
            let line = docs::first_changed_line(&text, &drift.fixed);
            let docs_line = text.lines().nth(line as usize - 1).unwrap_or("");
            let mut f = Finding::new(
                &DOCS_DRIFT,
                format!("{display} is out of date (block `{}`)", drift.block),
            )
            .at(Location::at(&display, line))
            .help(help.clone())
            .diff(docs::unified_diff(&text, &drift.fixed, &display));
            if let Some(loc) = source_of(cx, &drift.block, docs_line) {
                f = f.related(loc);
            }
            out.push(f);
        }
    }
    let drifted = out.iter().filter(|f| f.code == DOCS_DRIFT.id).count();
    Ok(Report {
        findings: out,
        summary: format!("{files} files · {drifted} drifted"),
        skipped: None,
    })
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
