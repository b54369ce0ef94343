//! Renderers turn a check's outcome into text. They know findings and the codes the registry declares,
//! never a gate's workings.

pub mod github;
pub mod human;
pub mod inventory;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod sarif;

use std::io::Write;
use std::path::PathBuf;

use crate::check::{GateResult, Outcome};
use crate::error::Result;
use crate::finding::Finding;
use crate::finding::Severity;
use crate::text::plural;

/// What the run was about: ` · momentum · model v3 · heads v2 · profile pre-live`.
pub fn identity(outcome: &Outcome) -> String {
    let mut s = format!(" · {}", outcome.pipeline);
    if let Some(c) = &outcome.contract {
        s.push_str(&format!(" · model v{}", c.model_version));
        // A pipeline that does not version its heads (`model.heads-version` not configured).
        if c.heads_version != crate::source::NOT_STATED {
            s.push_str(&format!(" · heads v{}", c.heads_version));
        }
    }
    if let Some(p) = outcome.profile {
        s.push_str(&format!(" · profile {p}"));
    }
    s
}

/// A gate's verdict as every renderer shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Skipped(String),
    Errors(usize),
    Warnings(usize),
    /// Passed, with the gate's summary.
    Passed(String),
}

impl Verdict {
    pub fn of(g: &GateResult) -> Verdict {
        match &g.skipped {
            Some(why) => Verdict::Skipped(why.clone()),
            None if g.counts.errors > 0 => Verdict::Errors(g.counts.errors),
            None if g.counts.warnings > 0 => Verdict::Warnings(g.counts.warnings),
            None => Verdict::Passed(g.summary.clone()),
        }
    }

    /// The mark and the words: `✗`, `1 error`.
    pub fn parts(&self) -> (&'static str, String) {
        match self {
            Verdict::Skipped(why) => ("–", format!("skipped: {why}")),
            Verdict::Errors(n) => ("✗", plural(*n, "error")),
            Verdict::Warnings(n) => ("!", plural(*n, "warning")),
            Verdict::Passed(summary) => ("✓", summary.clone()),
        }
    }
}

/// A finding's message with its notes and help, one per line (annotations, SARIF).
pub fn full_message(f: &Finding) -> String {
    let mut m = f.message.clone();
    for n in &f.notes {
        m.push('\n');
        m.push_str(n);
    }
    if let Some(h) = &f.help {
        m.push_str("\nhelp: ");
        m.push_str(h);
    }
    m
}

/// A Markdown code fence longer than any run of backticks in `text`.
pub fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// The `--format` values: one renderer each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The terminal report (colour on a terminal unless NO_COLOR).
    Human,
    /// The JSON report (schemas/report.schema.json); byte-identical for the same inputs.
    Json,
    /// GitHub Actions workflow commands (annotations on the diff).
    Github,
    /// GitHub-flavoured Markdown (job summary, PR comment), trimmed under 1 MiB.
    Markdown,
    /// SARIF 2.1.0 (code scanning).
    Sarif,
    /// JUnit XML, a test case per gate.
    Junit,
}

/// One output format: the text of a run's outcome. Each `--format` value implements it in its own module
/// (`human::Renderer`, …); [`Format::renderer`] is the one dispatch.
pub trait Render {
    /// The text of `outcome`, for a run that fails at `fail_on`.
    fn render(&self, outcome: &Outcome, fail_on: Severity) -> String;
}

impl Format {
    pub fn renderer(self) -> &'static dyn Render {
        match self {
            Format::Human => &human::Renderer,
            Format::Json => &json::Renderer,
            Format::Github => &github::Renderer,
            Format::Markdown => &markdown::Renderer,
            Format::Sarif => &sarif::Renderer,
            Format::Junit => &junit::Renderer,
        }
    }
}

/// The text of `outcome` in `format`.
pub fn render(format: Format, outcome: &Outcome, fail_on: Severity) -> String {
    format.renderer().render(outcome, fail_on)
}

/// Write `outcome` to each destination (`None`: `out`, a sink whose failures never change the
/// verdict; a file: replaced atomically, without terminal colour). Returns the exit code of the verdict.
pub fn write(
    destinations: &[(Format, Option<PathBuf>)],
    outcome: &Outcome,
    fail_on: Severity,
    out: &mut dyn Write,
) -> Result<u8> {
    for (format, path) in destinations {
        let text = render(*format, outcome, fail_on);
        match path {
            None => {
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            }
            // Files get no terminal colour.
            Some(p) => {
                crate::paths::atomic_write(p, &anstream::adapter::strip_str(&text).to_string())?
            }
        }
    }
    Ok(u8::from(outcome.fails(fail_on)))
}

/// The codes of the sample findings: an error and a warning, as the registry declares them.
#[cfg(test)]
pub(crate) fn sample_codes() -> [&'static crate::finding::Code; 2] {
    ["feature-order-mismatch", "docs-drift"]
        .map(|id| crate::gates::code(id).expect("a declared code"))
}

/// One shared set of sample findings every renderer's tests render.
#[cfg(test)]
pub(crate) fn sample_outcome() -> crate::check::Outcome {
    use std::time::Duration;

    use crate::check::{GateResult, Outcome};
    use crate::finding::{Counts, Finding, Location};

    let [order, drift] = sample_codes();
    // The docs-drift finding is a warning here, as `[severity] docs-drift = "warning"` makes it.
    let mut warning = Finding::new(drift, "docs/C.md is out of date (block `features`)")
        .at(Location::at("docs/C.md", 33))
        .diff("--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n");
    warning.severity = crate::finding::Severity::Warning;
    let findings = vec![
        Finding::new(
            order,
            "the checkpoint has `vol_20` at index 1 where the code has `ret_5`",
        )
        .at(Location::at("no/such/features.py", 9).with_label("index 1"))
        .related(Location::file("checkpoints/m.pt").with_label("checkpoint key `feature_cols`"))
        .note("2 of 14 positions differ")
        .help("build rows by name"),
        warning,
    ];
    let gates = vec![
        GateResult {
            gate: "feature-schema".into(),
            summary: "14 features".into(),
            counts: Counts {
                errors: 1,
                warnings: 0,
                notes: 0,
            },
            skipped: None,
            duration: Duration::from_millis(3),
        },
        GateResult {
            gate: "docs-drift".into(),
            summary: "2 files".into(),
            counts: Counts {
                errors: 0,
                warnings: 1,
                notes: 0,
            },
            skipped: None,
            duration: Duration::from_millis(1500),
        },
        GateResult {
            gate: "output-distribution".into(),
            summary: String::new(),
            counts: Counts::default(),
            skipped: Some("not configured: no `[slice]` in plumbline.toml".into()),
            duration: Duration::ZERO,
        },
    ];
    Outcome {
        pipeline: "momentum".into(),
        profile: Some("pre-backtest"),
        contract: None,
        gates,
        findings,
        changes: None,
        commands_refused: false,
        staged_commands: None,
        duration: Duration::from_millis(1503),
    }
}
