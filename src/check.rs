//! Running gates: derive the contract, run each selected gate, apply the config's severity overrides.
//! The result is plain data for the renderers.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Loaded;
use crate::contract::{self, PipelineContract};
use crate::error::Result;
use crate::facts::{self, Facts};
use crate::finding::{Counts, Finding, Severity};
use crate::gates::{self, Context, Gate};

/// One gate's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateResult {
    pub gate: String,
    pub summary: String,
    pub counts: Counts,
    /// Wall time; shown in the terminal, left out of JSON output so it stays byte-identical.
    #[serde(skip)]
    pub duration: Duration,
}

/// Everything a check produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub pipeline: String,
    pub contract: Option<PipelineContract>,
    pub gates: Vec<GateResult>,
    pub findings: Vec<Finding>,
    pub duration: Duration,
}

impl Outcome {
    pub fn counts(&self) -> Counts {
        Counts::of(&self.findings)
    }

    /// Whether any finding is at or above `fail_on`.
    pub fn fails(&self, fail_on: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= fail_on)
    }
}

/// Derive the contract, tolerating only missing or wrongly typed checkpoint facts (which the
/// feature-schema gate reports as findings). A code fact that cannot be used is still an error.
pub fn derive_for_check(loaded: &Loaded, facts: &Facts) -> Result<Option<PipelineContract>> {
    if !facts.checkpoint.missing().is_empty()
        || !contract::invalid_checkpoint_facts(&facts.checkpoint).is_empty()
    {
        return Ok(None);
    }
    contract::derive(
        &loaded.config.pipeline.name,
        &loaded.config.checkpoints.production,
        facts,
    )
    .map(Some)
}

/// Run `selected` gates (all when empty).
pub fn run(loaded: &Loaded, selected: &[&'static Gate]) -> Result<Outcome> {
    let start = Instant::now();
    let facts = facts::collect(loaded)?;
    let contract = derive_for_check(loaded, &facts)?;
    let cx = Context {
        loaded,
        facts: &facts,
        contract: contract.as_ref(),
    };
    let gates: Vec<&Gate> = if selected.is_empty() {
        gates::GATES.iter().collect()
    } else {
        selected.to_vec()
    };
    let mut results = Vec::new();
    let mut findings = Vec::new();
    for gate in gates {
        let t = Instant::now();
        let report = (gate.run)(&cx)?;
        let mut fs: Vec<Finding> = report
            .findings
            .into_iter()
            .filter_map(|f| apply_override(loaded, f))
            .collect();
        results.push(GateResult {
            gate: gate.name.to_owned(),
            summary: report.summary,
            counts: Counts::of(&fs),
            duration: t.elapsed(),
        });
        findings.append(&mut fs);
    }
    Ok(Outcome {
        pipeline: loaded.config.pipeline.name.clone(),
        contract,
        gates: results,
        findings,
        duration: start.elapsed(),
    })
}

fn apply_override(loaded: &Loaded, mut f: Finding) -> Option<Finding> {
    match loaded.config.severity.get(&f.code) {
        None => Some(f),
        Some(o) => {
            f.severity = o.severity()?;
            Some(f)
        }
    }
}
