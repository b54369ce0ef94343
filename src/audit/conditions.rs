//! `plumbline audit conditions` (plan §3.2 `export_learned_conditions.py`): what the model learned, as
//! files under `artifacts/learned_conditions/` (docs/audit.md):
//!
//! - `attribution.csv`: global attribution per head output and feature;
//! - `surrogate_rules.txt` / `surrogate_rules.json`: the surrogate tree's rules and fidelity;
//! - `summary.json`: the settings, per-row integrated-gradients steps and completeness deltas, the
//!   surrogate's depth table.
//!
//! The same inputs give byte-identical files: no clock, no randomness outside the seeded shuffles,
//! numbers printed as the shortest text that reads back to the same bits.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use super::integrated_gradients::{self as ig, RowAttribution};
use super::permutation::{self, Importance};
use super::surrogate::{self, Surrogate};
use super::{Inputs, Unit, num};
use crate::config::{AttributionMethod, Loaded};
use crate::engine::EngineKind;
use crate::error::Result;

pub const DIR: &str = "artifacts/learned_conditions";
pub const FILES: [&str; 4] = [
    "attribution.csv",
    "surrogate_rules.txt",
    "surrogate_rules.json",
    "summary.json",
];

/// The method `audit.method` resolves to for this config.
pub fn method(loaded: &Loaded) -> AttributionMethod {
    match loaded.config.audit.method {
        AttributionMethod::Auto => match EngineKind::of(loaded) {
            EngineKind::Native => AttributionMethod::IntegratedGradients,
            EngineKind::Command => AttributionMethod::Permutation,
        },
        m => m,
    }
}

/// What the attribution found.
pub enum Attribution {
    Integrated {
        baseline: Vec<f64>,
        rows: Vec<RowAttribution>,
    },
    Permutation(Vec<Vec<Importance>>),
}

/// Everything `audit conditions` computed.
pub struct Conditions {
    pub units: Vec<Unit>,
    pub attribution: Attribution,
    pub target: String,
    pub surrogate: Surrogate,
}

/// Run the attribution and fit the surrogate.
pub fn compute(
    loaded: &Loaded,
    inputs: &Inputs,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Conditions> {
    let s = &loaded.config.audit;
    let units = inputs.units();
    let attribution = match method(loaded) {
        AttributionMethod::Permutation => Attribution::Permutation(permutation::importance(
            inputs.engine.as_ref(),
            &inputs.scaled,
            &units,
            s.repeats,
            s.seed,
        )?),
        _ => {
            let baseline = inputs.baseline(s.baseline);
            let rows = ig::attribute(
                inputs.engine.as_ref(),
                &inputs.scaled,
                &baseline,
                &units,
                ig::Settings {
                    tolerance: s.tolerance,
                    max_steps: s.max_steps,
                },
                progress,
            )?;
            Attribution::Integrated { baseline, rows }
        }
    };
    let (target, classes, actions) = inputs.actions()?;
    let surrogate = surrogate::fit(
        &inputs.slice.features,
        &inputs.slice.timestamps,
        &actions,
        &inputs.features,
        &classes,
        surrogate::Settings {
            max_depth: s.max_depth,
            min_leaf: s.min_leaf,
            holdout: s.holdout,
        },
    )?;
    Ok(Conditions {
        units,
        attribution,
        target,
        surrogate,
    })
}

/// The default output directory: `artifacts/learned_conditions/` beside the config.
pub fn default_dir(loaded: &Loaded) -> PathBuf {
    loaded.resolve(DIR)
}

/// Write the four files into `dir`; returns their paths.
pub fn write(dir: &Path, loaded: &Loaded, inputs: &Inputs, c: &Conditions) -> Result<Vec<PathBuf>> {
    let files = [
        (FILES[0], attribution_csv(inputs, c)?),
        (
            FILES[1],
            surrogate::text(
                &c.surrogate,
                &format!(
                    "Surrogate rules of `{}` ({}), fitted to {} on {}",
                    loaded.config.pipeline.name, inputs.checkpoint, c.target, inputs.slice_file
                ),
            ),
        ),
        (FILES[2], super::json(&rules_json(loaded, inputs, c))?),
        (FILES[3], super::json(&summary(loaded, inputs, c))?),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        super::write(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// One row per (head, output, feature), ranked within each output by importance (the csv crate quotes
/// a name that needs it).
pub fn attribution_csv(inputs: &Inputs, c: &Conditions) -> Result<String> {
    let features = &inputs.inputs;
    let method = match &c.attribution {
        Attribution::Integrated { .. } => "integrated-gradients",
        Attribution::Permutation(_) => "permutation",
    };
    let fail = |e: String| crate::error::Error::msg(format!("writing attribution.csv: {e}"));
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record([
        "method",
        "head",
        "output",
        "label",
        "feature",
        "importance",
        "mean",
        "spread",
        "rank",
    ])
    .map_err(|e| fail(e.to_string()))?;
    for (u, unit) in c.units.iter().enumerate() {
        let stats: Vec<(f64, f64, f64)> = (0..features.len()).map(|j| c.stats(u, j)).collect();
        let mut order: Vec<usize> = (0..features.len()).collect();
        order.sort_by(|&a, &b| stats[b].0.total_cmp(&stats[a].0).then(a.cmp(&b)));
        for (rank, &j) in order.iter().enumerate() {
            let (imp, mean, spread) = stats[j];
            w.write_record([
                method.to_owned(),
                unit.head.clone(),
                unit.unit.to_string(),
                inputs.unit_label(&unit.head, unit.unit),
                features[j].clone(),
                num(imp),
                num(mean),
                num(spread),
                (rank + 1).to_string(),
            ])
            .map_err(|e| fail(e.to_string()))?;
        }
    }
    let bytes = w.into_inner().map_err(|e| fail(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| fail(e.to_string()))
}

#[derive(Serialize, JsonSchema)]
#[schemars(
    title = "surrogate_rules.json",
    description = "The surrogate decision tree of `plumbline audit conditions`: its rules and fidelity (docs/audit.md)."
)]
pub struct RulesFile<'a> {
    pipeline: &'a str,
    checkpoint: &'a str,
    slice: &'a str,
    /// What the tree imitates.
    target: &'a str,
    features: &'a [String],
    #[serde(flatten)]
    surrogate: &'a Surrogate,
}

fn rules_json<'a>(loaded: &'a Loaded, inputs: &'a Inputs, c: &'a Conditions) -> RulesFile<'a> {
    RulesFile {
        pipeline: &loaded.config.pipeline.name,
        checkpoint: &inputs.checkpoint,
        slice: &inputs.slice_file,
        target: &c.target,
        features: &inputs.features,
        surrogate: &c.surrogate,
    }
}

#[derive(Serialize, JsonSchema)]
#[schemars(
    title = "summary.json",
    description = "What `plumbline audit conditions` computed and how (docs/audit.md)."
)]
pub struct Summary {
    tool: &'static str,
    version: &'static str,
    pipeline: String,
    checkpoint: String,
    slice: String,
    rows: usize,
    features: Vec<String>,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    integrated_gradients: Option<IgSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permutation: Option<PermutationSummary>,
    surrogate: SurrogateSummary,
    files: Vec<&'static str>,
}

#[derive(Serialize, JsonSchema)]
struct IgSummary {
    baseline: &'static str,
    /// The baseline in scaled units.
    baseline_scaled: Vec<f64>,
    tolerance: f64,
    max_steps: usize,
    rows_converged: usize,
    rows_not_converged: usize,
    steps_min: usize,
    steps_median: usize,
    steps_max: usize,
    /// The largest |completeness delta| over rows and outputs.
    max_abs_completeness_delta: f64,
    /// Head outputs in the order of each row's `completeness_delta`.
    outputs: Vec<String>,
    rows: Vec<IgRow>,
}

#[derive(Serialize, JsonSchema)]
struct IgRow {
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbol: Option<String>,
    steps: usize,
    converged: bool,
    error_bound: f64,
    completeness_delta: Vec<f64>,
}

#[derive(Serialize, JsonSchema)]
struct PermutationSummary {
    repeats: usize,
    seed: u64,
}

#[derive(Serialize, JsonSchema)]
struct SurrogateSummary {
    target: String,
    depth: usize,
    rules: usize,
    holdout_balanced_accuracy: f64,
    majority_balanced_accuracy: f64,
    /// Holdout balanced accuracy minus the majority baseline's.
    lift: f64,
    depth_table: Vec<surrogate::DepthRow>,
}

fn unit_name(u: &Unit) -> String {
    format!("{}.{}", u.head, u.unit)
}

fn summary(loaded: &Loaded, inputs: &Inputs, c: &Conditions) -> Summary {
    let s = &loaded.config.audit;
    let (method, ig_summary, perm) = match &c.attribution {
        Attribution::Integrated { baseline, rows } => {
            let st = StepStats::of(rows);
            (
                "integrated-gradients",
                Some(IgSummary {
                    baseline: s.baseline.name(),
                    baseline_scaled: baseline.clone(),
                    tolerance: s.tolerance,
                    max_steps: s.max_steps,
                    rows_converged: st.converged,
                    rows_not_converged: rows.len() - st.converged,
                    steps_min: st.min,
                    steps_median: st.median,
                    steps_max: st.max,
                    max_abs_completeness_delta: st.max_abs_delta,
                    outputs: c.units.iter().map(unit_name).collect(),
                    rows: rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| IgRow {
                            timestamp: inputs.slice.timestamps[i].clone(),
                            symbol: inputs.slice.symbols[i].clone(),
                            steps: r.steps,
                            converged: r.converged,
                            error_bound: r.error_bound,
                            completeness_delta: r.delta.clone(),
                        })
                        .collect(),
                }),
                None,
            )
        }
        Attribution::Permutation(_) => (
            "permutation",
            None,
            Some(PermutationSummary {
                repeats: s.repeats,
                seed: s.seed,
            }),
        ),
    };
    let sg = &c.surrogate;
    Summary {
        tool: "plumbline",
        version: env!("CARGO_PKG_VERSION"),
        pipeline: loaded.config.pipeline.name.clone(),
        checkpoint: inputs.checkpoint.clone(),
        slice: inputs.slice_file.clone(),
        rows: inputs.slice.len(),
        features: inputs.features.clone(),
        method,
        integrated_gradients: ig_summary,
        permutation: perm,
        surrogate: SurrogateSummary {
            target: c.target.clone(),
            depth: sg.depth,
            rules: sg.rules.len(),
            holdout_balanced_accuracy: sg.holdout_balanced_accuracy,
            majority_balanced_accuracy: sg.majority_balanced_accuracy,
            lift: sg.holdout_balanced_accuracy - sg.majority_balanced_accuracy,
            depth_table: sg.depth_table.clone(),
        },
        files: FILES.to_vec(),
    }
}

/// Steps and completeness over the rows of an integrated-gradients run.
pub struct StepStats {
    pub converged: usize,
    pub min: usize,
    pub median: usize,
    pub max: usize,
    /// The largest |completeness delta| over rows and outputs.
    pub max_abs_delta: f64,
}

impl StepStats {
    pub fn of(rows: &[RowAttribution]) -> StepStats {
        let mut steps: Vec<usize> = rows.iter().map(|r| r.steps).collect();
        steps.sort_unstable();
        StepStats {
            converged: rows.iter().filter(|r| r.converged).count(),
            min: steps.first().copied().unwrap_or(0),
            median: steps.get(steps.len() / 2).copied().unwrap_or(0),
            max: steps.last().copied().unwrap_or(0),
            max_abs_delta: rows
                .iter()
                .flat_map(|r| r.delta.iter().map(|d| d.abs()))
                .fold(0.0, f64::max),
        }
    }
}

impl Conditions {
    /// The global importance of feature `j` for unit `u`: mean |attribution| over the rows (integrated
    /// gradients) or mean |change| of the output (permutation).
    pub fn importance(&self, u: usize, j: usize) -> f64 {
        self.stats(u, j).0
    }

    /// (importance, signed mean, spread) of feature `j` for unit `u`, as `attribution.csv` writes them.
    pub fn stats(&self, u: usize, j: usize) -> (f64, f64, f64) {
        match &self.attribution {
            Attribution::Integrated { rows, .. } => {
                let n = rows.len() as f64;
                let mean = rows.iter().map(|r| r.attributions[u][j]).sum::<f64>() / n;
                let abs = rows.iter().map(|r| r.attributions[u][j].abs()).sum::<f64>() / n;
                let var = rows
                    .iter()
                    .map(|r| (r.attributions[u][j] - mean) * (r.attributions[u][j] - mean))
                    .sum::<f64>()
                    / n;
                (abs, mean, var.sqrt())
            }
            Attribution::Permutation(imp) => {
                let i = &imp[u][j];
                (i.mean_abs_change, i.mean_change, i.spread)
            }
        }
    }

    /// Rows whose integrated gradients did not converge within `max-steps`.
    pub fn not_converged(&self) -> usize {
        match &self.attribution {
            Attribution::Integrated { rows, .. } => rows.iter().filter(|r| !r.converged).count(),
            Attribution::Permutation(_) => 0,
        }
    }
}
