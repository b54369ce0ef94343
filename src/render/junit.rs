//! JUnit XML, for CI systems that show test reports (GitLab, Jenkins, Buildkite, GitHub test-report
//! actions): one test suite, one test case per gate. A gate with findings at or above `--fail-on` is a
//! failure whose text lists them as the terminal does; a gate that did not run is skipped with the reason; lower findings go to
//! the case's system-out. Written with `quick-junit` (cargo-nextest's serializer).
//!
//! Test reports show times, so this format carries each gate's wall time: unlike JSON and SARIF its
//! bytes differ between runs.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::check::Outcome;
use crate::finding::{Finding, Severity};
use crate::render::human::{self, Sources};
use crate::text::plural;

/// A finding as the terminal shows it (with source lines), without colour.
fn text(findings: &[&Finding], sources: &mut Sources) -> String {
    let mut s = String::new();
    for f in findings {
        human::finding(&mut s, f, sources);
        s.push('\n');
    }
    anstream::adapter::strip_str(s.trim_end()).to_string()
}

pub fn render(outcome: &Outcome, fail_on: Severity) -> String {
    let mut sources = Sources::default();
    let mut suite = TestSuite::new(format!("plumbline · {}", outcome.pipeline));
    for g in &outcome.gates {
        let findings: Vec<&Finding> = outcome
            .findings
            .iter()
            .filter(|f| f.gate() == g.gate)
            .collect();
        let (failing, other): (Vec<&Finding>, Vec<&Finding>) =
            findings.iter().partition(|f| f.severity >= fail_on);
        let status = if let Some(why) = &g.skipped {
            let mut s = TestCaseStatus::skipped();
            s.set_message(why.clone());
            s
        } else if !failing.is_empty() {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let count = |sev| failing.iter().filter(|f| f.severity == sev).count();
            let what: Vec<String> = [
                (Severity::Error, "error"),
                (Severity::Warning, "warning"),
                (Severity::Note, "note"),
            ]
            .into_iter()
            .filter(|(sev, _)| count(*sev) > 0)
            .map(|(sev, word)| plural(count(sev), word))
            .collect();
            s.set_message(what.join(", "));
            s.set_type(failing[0].code.id);
            s.set_description(text(&failing, &mut sources));
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(g.gate.clone(), status);
        case.set_classname(format!("plumbline.{}", outcome.pipeline));
        case.set_time(g.duration);
        if !other.is_empty() {
            case.set_system_out(text(&other, &mut sources));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("plumbline");
    report.set_time(outcome.duration);
    report.add_test_suite(suite);
    let mut xml = report.to_string().expect("JUnit XML of plain strings");
    if !xml.ends_with('\n') {
        xml.push('\n');
    }
    xml
}

/// `--format junit`.
pub struct Renderer;

impl crate::render::Render for Renderer {
    fn render(&self, outcome: &Outcome, fail_on: Severity) -> String {
        render(outcome, fail_on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_per_gate_failed_skipped_and_passed() {
        let o = crate::render::sample_outcome();
        let xml = render(&o, Severity::Error);
        assert!(xml.starts_with("<?xml"));
        assert!(xml.contains(
            r#"<testsuites name="plumbline" tests="3" skipped="1" failures="1" errors="0""#
        ));
        assert!(xml.contains(
            r#"<testcase name="feature-schema" classname="plumbline.momentum" time="0.003">"#
        ));
        assert!(xml.contains(r#"<failure message="1 error" type="feature-order-mismatch">"#));
        assert!(xml.contains(
            "error[feature-order-mismatch]: the checkpoint has `vol_20` at index 1 where the code has `ret_5`\n  --&gt; no/such/features.py:9"
        ));
        // A warning under --fail-on error: the gate passes; its finding is in system-out.
        assert!(xml.contains(
            r#"<testcase name="docs-drift" classname="plumbline.momentum" time="1.500">"#
        ));
        assert!(xml.contains("<system-out>warning[docs-drift]: docs/C.md is out of date"));
        assert!(!xml.contains('\u{1b}'), "no terminal colour in XML");
        assert!(
            xml.contains(r#"<skipped message="not configured: no `[slice]` in plumbline.toml"/>"#)
        );
        // At --fail-on warning, docs-drift fails too.
        let strict = render(&o, Severity::Warning);
        assert!(strict.contains(r#"failures="2""#));
    }
}
