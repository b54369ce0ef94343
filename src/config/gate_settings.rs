//! `[gates]`: which gates run and the settings of each.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[gates]`: every gate runs unless disabled here (or skipped because its inputs are not configured).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct GatesSection {
    /// Gates not to run, by name.
    pub disable: Vec<String>,
    pub norm_stats: NormStatsSettings,
    pub forward_contract: ForwardSettings,
    pub output_distribution: OutputDistributionSettings,
    pub feature_parity: FeatureParitySettings,
    pub leakage: LeakageSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct FeatureParitySettings {
    /// Values agree when |a − b| ≤ atol + rtol · |b| (b: the training builder's), or both are NaN.
    pub atol: f64,
    pub rtol: f64,
    /// Run every builder on a table of edge-case symbols made from the prices (the first 1…64 bars of
    /// the first symbol, each as a symbol; 64 bars of it with nothing moving; with penny prices), and on
    /// three tables of bad bars (docs/gates/feature-parity.md).
    pub edge_symbols: bool,
}

impl Default for FeatureParitySettings {
    fn default() -> Self {
        FeatureParitySettings {
            atol: 1e-9,
            rtol: 1e-9,
            edge_symbols: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LeakageSettings {
    /// Cut points, evenly spaced between 30% and 90% of the timestamps.
    pub cuts: usize,
    /// Factor applied to the price columns after a cut (perturb-future).
    pub perturb: f64,
}

impl Default for LeakageSettings {
    fn default() -> Self {
        LeakageSettings {
            cuts: 5,
            perturb: 1.5,
        }
    }
}

impl GatesSection {
    /// Every number finite and in range: a NaN tolerance would turn every comparison into a pass.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let n = &self.norm_stats;
        let f = &self.forward_contract;
        let o = &self.output_distribution;
        let non_negative = [
            ("gates.norm-stats.mad-epsilon", n.mad_epsilon),
            ("gates.norm-stats.tolerance", n.tolerance),
            (
                "gates.forward-contract.reference-tolerance",
                f.reference_tolerance,
            ),
            ("gates.forward-contract.batch-tolerance", f.batch_tolerance),
            (
                "gates.output-distribution.collapse-epsilon",
                o.collapse_epsilon,
            ),
            ("gates.output-distribution.psi-threshold", o.psi_threshold),
            ("gates.output-distribution.js-threshold", o.js_threshold),
            ("gates.feature-parity.atol", self.feature_parity.atol),
            ("gates.feature-parity.rtol", self.feature_parity.rtol),
        ];
        if self.leakage.cuts < 1 {
            return Err("`gates.leakage.cuts` must be at least 1".into());
        }
        if !self.leakage.perturb.is_finite()
            || self.leakage.perturb == 1.0
            || self.leakage.perturb <= 0.0
        {
            return Err(format!(
                "`gates.leakage.perturb` must be a positive factor other than 1, not {}",
                self.leakage.perturb
            ));
        }
        for (key, v) in non_negative {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("`{key}` must be a finite number ≥ 0, not {v}"));
            }
        }
        for (key, v) in [
            (
                "gates.output-distribution.class-share-min",
                o.class_share_min,
            ),
            (
                "gates.output-distribution.class-share-max",
                o.class_share_max,
            ),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{key}` must be a share between 0 and 1, not {v}"));
            }
        }
        if o.class_share_min > o.class_share_max {
            return Err(format!(
                "`gates.output-distribution.class-share-min` ({}) is above `class-share-max` ({})",
                o.class_share_min, o.class_share_max
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NormStatsSettings {
    /// A MAD at or below this is a constant feature (scaling divides by it).
    pub mad_epsilon: f64,
    /// Recompute median and MAD on the slice and compare.
    pub recompute: bool,
    /// Allowed difference, in units of the checkpoint's MAD, between recomputed and stored statistics.
    pub tolerance: f64,
}

impl Default for NormStatsSettings {
    fn default() -> Self {
        NormStatsSettings {
            mad_epsilon: 1e-8,
            recompute: false,
            tolerance: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ForwardSettings {
    /// Reference outputs to match (JSON rows with `scaled` inputs and `outputs` by head), e.g. written
    /// by the training script with PyTorch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Largest allowed absolute difference from the reference outputs.
    pub reference_tolerance: f64,
    /// Largest allowed difference between a row run in a batch and the same row run alone.
    pub batch_tolerance: f64,
    /// Seed of the normal draws among the probes.
    pub seed: u64,
    /// How many normal draws, and how many rows of the slice, the probes hold.
    pub normal_rows: usize,
    pub slice_rows: usize,
}

impl Default for ForwardSettings {
    fn default() -> Self {
        ForwardSettings {
            reference: None,
            reference_tolerance: 1e-5,
            batch_tolerance: 1e-6,
            seed: 7,
            normal_rows: 32,
            slice_rows: 64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct OutputDistributionSettings {
    /// A head output whose standard deviation over the slice is at or below this has collapsed.
    pub collapse_epsilon: f64,
    /// Bounds on each class's share of the slice's predictions (argmax of a softmax head).
    pub class_share_min: f64,
    pub class_share_max: f64,
    /// The stored reference distribution (`plumbline baseline` writes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Drift alarms: population stability index and Jensen-Shannon divergence (base 2).
    pub psi_threshold: f64,
    pub js_threshold: f64,
}

impl Default for OutputDistributionSettings {
    fn default() -> Self {
        OutputDistributionSettings {
            collapse_epsilon: 1e-6,
            class_share_min: 0.05,
            class_share_max: 0.9,
            baseline: None,
            psi_threshold: 0.2,
            js_threshold: 0.1,
        }
    }
}
