//! `[audit]`: the settings of `plumbline audit conditions` and `audit decisions`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where integrated gradients start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IgBaseline {
    /// Zeros in scaled space: every feature at the training median.
    Median,
    /// The mean of the slice's scaled inputs.
    SliceMean,
}

impl IgBaseline {
    /// The name the config and `summary.json` use.
    pub fn name(self) -> &'static str {
        match self {
            IgBaseline::Median => "median",
            IgBaseline::SliceMean => "slice-mean",
        }
    }
}

/// How `audit conditions` attributes the outputs to the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AttributionMethod {
    /// Integrated gradients for the native engine, permutation importance for a command.
    Auto,
    IntegratedGradients,
    Permutation,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AuditSettings {
    pub method: AttributionMethod,
    /// The integrated-gradients baseline.
    pub baseline: IgBaseline,
    /// Integrated gradients refine the path until, for every output, both the completeness delta
    /// |Σ attributions − (f(x) − f(baseline))| and the estimated quadrature error are at most this (in
    /// the output's units).
    pub tolerance: f64,
    /// At most this many gradient evaluations per row (a row that needs more is reported as not
    /// converged).
    pub max_steps: usize,
    /// Permutation importance: shuffles per feature.
    pub repeats: usize,
    /// Seed of the permutations.
    pub seed: u64,
    /// The deepest surrogate tree that may be exported (the depth table goes to `max-depth + 2`).
    pub max_depth: usize,
    /// The surrogate's smallest leaf, in rows.
    pub min_leaf: usize,
    /// Share of the slice's latest timestamps held out to measure the surrogate's fidelity.
    pub holdout: f64,
    /// Factors per decision in `decision_attribution.csv`.
    pub top_k: usize,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            method: AttributionMethod::Auto,
            baseline: IgBaseline::Median,
            tolerance: 1e-5,
            max_steps: 4096,
            repeats: 5,
            seed: 0,
            max_depth: 4,
            min_leaf: 20,
            holdout: 0.3,
            top_k: 3,
        }
    }
}

impl AuditSettings {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(format!(
                "`audit.tolerance` must be a finite number > 0, not {}",
                self.tolerance
            ));
        }
        if self.max_steps < 65 {
            return Err(format!(
                "`audit.max-steps` must be at least 65 (the first pass evaluates 65 points), not {}",
                self.max_steps
            ));
        }
        if self.repeats == 0 || self.max_depth == 0 || self.min_leaf == 0 || self.top_k == 0 {
            return Err(
                "`audit.repeats`, `audit.max-depth`, `audit.min-leaf` and `audit.top-k` must be at least 1"
                    .into(),
            );
        }
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            return Err(format!(
                "`audit.holdout` must be a share strictly between 0 and 1, not {}",
                self.holdout
            ));
        }
        Ok(())
    }
}
