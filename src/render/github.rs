//! GitHub Actions workflow commands: one `::error file=…,line=…,title=…::message` line per finding, which
//! the runner turns into an annotation on that line of the pull request's diff.
//!
//! The runner shows at most [`PER_KIND`] annotations of each kind (error, warning, notice) per step and
//! drops the rest without a word; so this renderer writes at most that many of each and reports how many
//! it left out, for the job summary to say so (`plumbline ci` does). Escaping follows the runner's own
//! (`@actions/core` `toCommandValue`/`escapeData`/`escapeProperty`): a message may hold newlines, and a
//! path may hold `,` or `:`.

use std::fmt::Write;

use crate::check::Outcome;
use crate::finding::{Finding, Severity};

/// Annotations of one kind the runner shows per step.
pub const PER_KIND: usize = 10;

/// The workflow commands and what did not fit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Annotations {
    pub text: String,
    pub written: usize,
    /// Findings left out because their kind had used its [`PER_KIND`] slots.
    pub left_out: usize,
}

/// The command word for a severity.
pub fn command(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    }
}

/// Escapes workflow-command data (the message after `::`).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value (`file=`, `title=`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The line that says how many findings the runner would not have shown.
pub fn left_out_notice(left_out: usize) -> String {
    format!(
        "{} not shown as annotations on the diff (the runner shows {PER_KIND} of each kind per step)",
        crate::text::plural(left_out, "finding")
    )
}

/// Render findings in order, at most [`PER_KIND`] of each severity.
pub fn render(findings: &[Finding]) -> Annotations {
    let mut out = Annotations::default();
    let mut used = [0usize; 3];
    for f in findings {
        let slot = &mut used[f.severity as usize];
        if *slot == PER_KIND {
            out.left_out += 1;
            continue;
        }
        *slot += 1;
        out.written += 1;
        let mut props = Vec::new();
        if let Some(loc) = &f.location {
            props.push(format!("file={}", escape_property(&loc.path)));
            if let Some(line) = loc.line {
                props.push(format!("line={line}"));
                props.push(format!("endLine={line}"));
                if let Some(col) = loc.column {
                    props.push(format!("col={col}"));
                }
            }
        }
        props.push(format!("title={}", escape_property(f.code.id)));
        let _ = writeln!(
            out.text,
            "::{} {}::{}",
            command(f.severity),
            props.join(","),
            escape_data(&crate::render::full_message(f))
        );
    }
    out
}

/// `--format github`.
pub struct Renderer;

impl crate::render::Render for Renderer {
    /// (Annotations carry levels, not a verdict: `fail_on` does not change it.)
    fn render(&self, outcome: &Outcome, _fail_on: Severity) -> String {
        let a = render(&outcome.findings);
        let mut text = a.text;
        if a.left_out > 0 {
            text.push_str(&format!(
                "::notice title=plumbline::{}\n",
                left_out_notice(a.left_out)
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Location;

    #[test]
    fn sample_findings_become_annotations_on_their_lines() {
        let o = crate::render::sample_outcome();
        let a = render(&o.findings);
        assert_eq!(
            a.text,
            "::error file=no/such/features.py,line=9,endLine=9,title=feature-order-mismatch::\
             the checkpoint has `vol_20` at index 1 where the code has `ret_5`%0A2 of 14 positions differ%0Ahelp: build rows by name\n\
             ::warning file=docs/C.md,line=33,endLine=33,title=docs-drift::docs/C.md is out of date (block `features`)\n"
        );
        assert_eq!((a.written, a.left_out), (2, 0));
    }

    #[test]
    fn escaping_matches_the_runner() {
        // The runner's escapeProperty: % first (so escapes are not escaped twice), then CR, LF, `:` and `,`.
        assert_eq!(escape_property("a,b:c%0A\r\n"), "a%2Cb%3Ac%250A%0D%0A");
        assert_eq!(escape_data("50% of a:b,\nnext"), "50%25 of a:b,%0Anext");
        let f = Finding::new(
            crate::render::sample_codes()[0],
            "line one\nline two :: not a command",
        )
        .at(Location::at("dir,with:odd/f.py", 3));
        let a = render(&[f]);
        assert_eq!(
            a.text,
            "::error file=dir%2Cwith%3Aodd/f.py,line=3,endLine=3,title=feature-order-mismatch::line one%0Aline two :: not a command\n"
        );
        assert_eq!(a.text.lines().count(), 1, "one command per finding");
    }

    #[test]
    fn at_most_ten_of_each_kind_and_the_rest_counted() {
        let codes = crate::render::sample_codes();
        let mut findings = Vec::new();
        for i in 0..13 {
            findings.push(Finding::new(codes[0], format!("e{i}")).at(Location::at("a.py", i + 1)));
        }
        for i in 0..4 {
            let mut f = Finding::new(codes[1], format!("w{i}"));
            f.severity = Severity::Warning;
            findings.push(f);
        }
        let a = render(&findings);
        assert_eq!((a.written, a.left_out), (14, 3));
        assert_eq!(a.text.matches("::error ").count(), 10);
        assert_eq!(a.text.matches("::warning ").count(), 4);
        // A finding without a location is still an annotation (on the run, not a line).
        assert!(a.text.contains("::warning title=docs-drift::w0\n"));
        assert!(!a.text.contains("::e10"));
    }
}
