//! The docs contract: `PIPELINE_CONTRACT.json` (fully generated) and Markdown files whose generated blocks
//! are rendered from the contract. This module knows the mechanics (expected text, schema validation,
//! diffs, atomic writes); the docs-drift gate turns differences into findings.

pub mod blocks;
pub mod render;

use crate::contract::PipelineContract;
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::atomic_write_creating;

/// The committed contract schema, embedded so the binary validates without the repository.
pub const CONTRACT_SCHEMA: &str = include_str!("../../schemas/pipeline-contract.schema.json");

/// The exact bytes `PIPELINE_CONTRACT.json` must hold.
pub fn expected_json(contract: &PipelineContract) -> String {
    crate::canonical::to_string(contract).expect("the contract holds only finite numbers")
}

/// The blocks of a Markdown docs file, checked: at least one, every name one plumbline generates.
fn validated_blocks(text: &str) -> std::result::Result<Vec<blocks::Block>, blocks::MarkerError> {
    let parsed = blocks::parse(text)?;
    if parsed.is_empty() {
        return Err(blocks::MarkerError {
            line: 1,
            message: format!(
                "no generated blocks (`<!-- plumbline:begin NAME -->` … `<!-- plumbline:end NAME -->`; names: {})",
                render::BLOCK_NAMES.join(", ")
            ),
        });
    }
    if let Some(b) = parsed
        .iter()
        .find(|b| !render::BLOCK_NAMES.contains(&b.name.as_str()))
    {
        return Err(blocks::MarkerError {
            line: b.begin_line,
            message: format!(
                "unknown block `{}` (plumbline generates: {})",
                b.name,
                render::BLOCK_NAMES.join(", ")
            ),
        });
    }
    Ok(parsed)
}

/// The Markdown file with every generated block re-rendered.
pub fn expected_markdown(
    text: &str,
    contract: &PipelineContract,
) -> std::result::Result<String, blocks::MarkerError> {
    let parsed = validated_blocks(text)?;
    Ok(blocks::rewrite_parsed(text, &parsed, &|name| {
        render::block(name, contract)
    }))
}

/// A new Markdown docs file: a title, a line on what is generated, and every block plumbline generates
/// under its heading, for `docs --write` to fill. People write their prose around the blocks.
pub fn skeleton(pipeline: &str) -> String {
    let mut s = format!(
        "# {pipeline}: pipeline contract\n\nThe parts between `plumbline:begin` and `plumbline:end` markers are generated from the code and the\ncheckpoints by `plumbline docs --write`; `plumbline docs --check` (and the pre-commit hook) fails when\nthey drift. Write the prose around them.\n"
    );
    for name in render::BLOCK_NAMES {
        let title = match *name {
            "production-checkpoint" => "Production checkpoint".to_owned(),
            other => {
                let mut c = other.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
        };
        s.push_str(&format!(
            "\n## {title}\n\n<!-- plumbline:begin {name} -->\n<!-- plumbline:end {name} -->\n"
        ));
    }
    s
}

/// One generated block that differs from its rendering.
pub struct BlockDrift {
    pub block: String,
    /// The whole file with only this block re-rendered (so a diff shows this block alone, with the
    /// file's line numbers).
    pub fixed: String,
}

/// The drifting blocks of a Markdown docs file, parsed once.
pub fn markdown_drift(
    text: &str,
    contract: &PipelineContract,
) -> std::result::Result<Vec<BlockDrift>, blocks::MarkerError> {
    let parsed = validated_blocks(text)?;
    let mut out = Vec::new();
    for b in &parsed {
        let rendered = b.with_line_ends(&render::block(&b.name, contract).unwrap_or_default());
        if rendered != b.body {
            let raw = render::block(&b.name, contract);
            let fixed = blocks::rewrite_parsed(text, &parsed, &|n| {
                if n == b.name { raw.clone() } else { None }
            });
            out.push(BlockDrift {
                block: b.name.clone(),
                fixed,
            });
        }
    }
    Ok(out)
}

/// Schema problems of a docs JSON document: (JSON pointer, message). Empty when valid.
pub fn schema_errors(doc: &serde_json::Value) -> Vec<(String, String)> {
    let schema: serde_json::Value =
        serde_json::from_str(CONTRACT_SCHEMA).expect("committed schema is JSON");
    let validator =
        jsonschema::validator_for(&schema).expect("committed schema is a valid JSON Schema");
    let mut errors: Vec<(String, String)> = validator
        .iter_errors(doc)
        .map(|e| {
            let pointer = e.instance_path().as_str().to_owned();
            (
                if pointer.is_empty() {
                    "/".to_owned()
                } else {
                    pointer
                },
                e.to_string(),
            )
        })
        .collect();
    errors.sort();
    errors
}

/// How much of a drift diff a finding keeps: its first lines, then a count of the rest (a block rewritten
/// whole would otherwise put megabytes into every report and comment).
pub const DIFF_LINES: usize = 200;

/// A unified diff of `old` → `new` with file line numbers in the hunk headers, cut after
/// [`DIFF_LINES`] lines with a count of what was left out. The diff gives up refining after two
/// seconds (a huge rewrite then shows as larger hunks, never as a hang).
pub fn unified_diff(old: &str, new: &str, path: &str) -> String {
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_secs(2))
        .diff_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header(
            &format!("{path} (committed)"),
            "derived from code and checkpoints",
        )
        .to_string();
    cap_lines(text, DIFF_LINES)
}

/// `text` cut after `max` lines, with a last line counting the lines and bytes left out.
fn cap_lines(text: String, max: usize) -> String {
    let Some((cut, _)) = text.match_indices('\n').nth(max - 1) else {
        return text;
    };
    let rest = &text[cut + 1..];
    if rest.is_empty() {
        return text;
    }
    let lines = rest.lines().count();
    format!(
        "{}[… {} more diff line{} ({} bytes) not shown: `plumbline docs --write` rewrites the generated blocks]\n",
        &text[..=cut],
        crate::text::thousands(lines),
        if lines == 1 { "" } else { "s" },
        crate::text::thousands(rest.len())
    )
}

/// The first line (1-based, in `old`) where `old` and `new` differ.
pub fn first_changed_line(old: &str, new: &str) -> u32 {
    let mut line = 1u32;
    for (a, b) in old.split_inclusive('\n').zip(new.split_inclusive('\n')) {
        if a != b {
            return line;
        }
        line += 1;
    }
    line
}

/// What `docs --write` did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Unchanged,
    Updated,
    Created,
}

/// Write the generated parts of every docs file. Markdown files must exist and have valid markers
/// (plumbline never invents prose around blocks); the JSON file is created when missing.
pub fn write(
    loaded: &crate::config::Loaded,
    contract: &PipelineContract,
) -> Result<Vec<(String, WriteOutcome)>> {
    let docs = &loaded.config.docs;
    // Compute every new text first: a marker error in the second file must not leave the first rewritten.
    let mut plan = Vec::new();
    let json_path = loaded.resolve(&docs.json);
    let json_new = expected_json(contract);
    let json_old = std::fs::read_to_string(&json_path).ok();
    plan.push((loaded.display(&docs.json), json_path, json_old, json_new));
    for md in &docs.markdown {
        let path = loaded.resolve(md);
        let display = loaded.display(md);
        // A file that does not exist yet is created with every block plumbline generates.
        let old = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&path, e)),
        };
        let base = old.clone().unwrap_or_else(|| skeleton(&contract.pipeline));
        let new = expected_markdown(&base, contract).map_err(|e| {
            Error::at(
                Location::at(display.clone(), e.line),
                format!("{} (nothing was written)", e.message),
            )
        })?;
        plan.push((display, path, old, new));
    }
    let mut out = Vec::new();
    for (display, path, old, new) in plan {
        let outcome = match &old {
            Some(o) if *o == new => WriteOutcome::Unchanged,
            Some(_) => WriteOutcome::Updated,
            None => WriteOutcome::Created,
        };
        if outcome != WriteOutcome::Unchanged {
            atomic_write_creating(&path, new.as_bytes())?;
        }
        out.push((display, outcome));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_diff_is_cut_with_a_count() {
        let old: String = (0..10_000).map(|i| format!("row {i}\n")).collect();
        let new: String = (0..10_000).map(|i| format!("row {}\n", i * 7)).collect();
        let d = unified_diff(&old, &new, "x.md");
        assert_eq!(d.lines().count(), DIFF_LINES + 1);
        let last = d.lines().last().unwrap();
        assert!(last.starts_with("[… "), "{last}");
        assert!(
            last.ends_with(
                " bytes) not shown: `plumbline docs --write` rewrites the generated blocks]"
            ),
            "{last}"
        );
        // A small diff is whole.
        let small = unified_diff("a\nb\n", "a\nc\n", "x.md");
        assert!(!small.contains("not shown"), "{small}");
    }

    #[test]
    fn diff_has_file_line_numbers() {
        let d = unified_diff("a\nb\nc\nd\ne\nf\n", "a\nb\nc\nD\ne\nf\n", "x.md");
        assert!(d.contains("--- x.md (committed)"), "{d}");
        assert!(d.contains("@@ -2,5 +2,5 @@"), "{d}");
        assert_eq!(first_changed_line("a\nb\nc\nd\n", "a\nb\nc\nD\n"), 4);
    }
}
