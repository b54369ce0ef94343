//! The JSON report: verdict, counts, per-gate results and findings. Schema: `schemas/report.schema.json`.
//! Canonical and free of timings, so the same inputs give the same bytes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::{GateResult, Outcome};
use crate::finding::{Counts, Finding, Severity};

/// Version of the report format.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "plumbline report")]
pub struct JsonReport {
    pub report_format: u32,
    pub pipeline: String,
    /// `passed` or `failed` (at the `--fail-on` severity).
    pub verdict: String,
    pub fail_on: Severity,
    pub counts: Counts,
    pub gates: Vec<GateResult>,
    pub findings: Vec<Finding>,
}

pub fn report(outcome: &Outcome, fail_on: Severity) -> JsonReport {
    JsonReport {
        report_format: REPORT_FORMAT,
        pipeline: outcome.pipeline.clone(),
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
    }
}

pub fn render(outcome: &Outcome, fail_on: Severity) -> String {
    crate::canonical::to_string(&report(outcome, fail_on))
        .expect("reports hold no non-finite numbers")
}
