//! The JSON report: verdict, counts, per-gate results and findings. Schema: `schemas/report.schema.json`.
//! Canonical and free of timings, so the same inputs give the same bytes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::{GateResult, Outcome};
use crate::finding::{Counts, Finding, Severity, Wire};

/// Version of the report format.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "plumbline report")]
#[schemars(rename = "JsonReport")]
pub struct JsonReport<F = Finding> {
    pub report_format: u32,
    pub pipeline: String,
    /// The workflow profile of the run (`--profile`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// `passed` or `failed` (at the `--fail-on` severity).
    pub verdict: String,
    pub fail_on: Severity,
    pub counts: Counts,
    pub gates: Vec<GateResult>,
    pub findings: Vec<F>,
    /// The contract changes against the base revision (`--base`), when the run had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::changes::Changes>,
}

pub fn report(outcome: &Outcome, fail_on: Severity) -> JsonReport {
    JsonReport {
        report_format: REPORT_FORMAT,
        pipeline: outcome.pipeline.clone(),
        profile: outcome.profile.map(str::to_owned),
        verdict: if outcome.fails(fail_on) {
            "failed"
        } else {
            "passed"
        }
        .to_owned(),
        fail_on,
        counts: outcome.counts(),
        gates: outcome.gates.clone(),
        findings: outcome.findings.clone(),
        changes: outcome.changes.clone(),
    }
}

/// Reads a JSON report back: each finding's code is looked up by its id in the gate registry.
pub fn read(text: &str) -> Result<JsonReport, String> {
    let wire: JsonReport<Wire> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if wire.report_format != REPORT_FORMAT {
        return Err(format!(
            "report format {} (this plumbline reads format {REPORT_FORMAT})",
            wire.report_format
        ));
    }
    let findings = wire
        .findings
        .into_iter()
        .map(|w| Finding::from_wire(w, crate::gates::code))
        .collect::<Result<_, _>>()?;
    Ok(JsonReport {
        report_format: wire.report_format,
        pipeline: wire.pipeline,
        profile: wire.profile,
        verdict: wire.verdict,
        fail_on: wire.fail_on,
        counts: wire.counts,
        gates: wire.gates,
        findings,
        changes: wire.changes,
    })
}

pub fn render(outcome: &Outcome, fail_on: Severity) -> String {
    crate::canonical::to_string(&report(outcome, fail_on))
        .expect("reports hold no non-finite numbers")
}

/// `--format json`.
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
    fn report_shape_verdict_and_no_timings() {
        let o = crate::render::sample_outcome();
        let text = render(&o, Severity::Error);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["verdict"], "failed");
        assert_eq!(
            v["counts"],
            serde_json::json!({"errors": 1, "warnings": 1, "notes": 0})
        );
        assert_eq!(v["findings"][0]["code"], "feature-order-mismatch");
        assert_eq!(
            v["findings"][0]["location"],
            serde_json::json!({"path": "no/such/features.py", "line": 9, "label": "index 1"})
        );
        assert_eq!(v["findings"][1]["severity"], "warning");
        assert!(
            !text.contains("duration"),
            "timings would make the JSON differ between runs"
        );
        assert_eq!(text, render(&o, Severity::Error));
        // Read back by id, the findings are the ones rendered; an unknown code is refused.
        assert_eq!(read(&text).unwrap().findings, o.findings);
        let unknown = text.replace("feature-order-mismatch", "no-such-code");
        assert_eq!(
            read(&unknown).unwrap_err(),
            "unknown finding code `no-such-code`"
        );
        let newer = text.replace("\"report-format\": 1", "\"report-format\": 2");
        assert_eq!(
            read(&newer).unwrap_err(),
            "report format 2 (this plumbline reads format 1)"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&crate::cli::schema(crate::cli::SchemaName::Report)).unwrap();
        assert!(jsonschema::is_valid(&schema, &v));
        // At --fail-on note the same findings pass or fail by the same rule.
        let mut passing = o.clone();
        passing.findings.retain(|f| f.severity < Severity::Error);
        assert_eq!(report(&passing, Severity::Error).verdict, "passed");
        assert_eq!(report(&passing, Severity::Warning).verdict, "failed");
    }
}
