//! Gates: the plan's smoke tests. Each gate is a module with one entry point and its finding codes beside
//! it; it reads the contract and facts and returns findings. A gate never prints and never knows about
//! terminals or GitHub. Adding a gate touches its file, one line in [`GATES`], and its docs page.

pub mod checkpoint_inventory;
pub mod contract_changes;
pub mod docs_drift;
pub mod feature_parity;
pub mod feature_schema;
pub mod forward_contract;
pub mod heads;
pub mod inference_parity;
pub mod interpretation_parity;
pub mod label_definition;
pub mod labels;
pub mod leakage;
pub mod norm_stats;
pub mod output_distribution;
pub mod ruleset_smoke;

use crate::config::Loaded;
use crate::contract::PipelineContract;
use crate::engine::{Engine, Outputs};
use crate::error::{Error, Result};
use crate::facts::Facts;
use crate::finding::{Code, Finding, Location};
use crate::slice::Slice;

/// The model, when a selected gate runs it.
pub enum Model {
    /// No selected gate runs the model.
    NotNeeded,
    /// Building it from the production checkpoint failed (the message names the file and key).
    Failed(String),
    Ready(Box<dyn Engine>),
}

/// What a gate reads.
pub struct Context<'a> {
    pub loaded: &'a Loaded,
    pub facts: &'a Facts,
    /// The contract, derived from the code's facts (the checkpoint's where it states them).
    pub contract: &'a PipelineContract,
    /// The reference slice, when the config has one.
    pub slice: Option<&'a Slice>,
    pub model: &'a Model,
    /// The base revision (`--base`), when the run compares against one, or why it could not be read.
    pub base: Option<&'a std::result::Result<crate::base::Base, String>>,
    /// The contract changes against the base, when both contracts are there.
    pub changes: Option<&'a crate::changes::Changes>,
    /// The workflow this run checks (`--profile`), when it checks one.
    pub profile: Option<Profile>,
    /// The gates in this run (a gate that shares an input with another can leave reporting a
    /// broken input to the gate that owns it).
    pub selected: &'a [Id],
    /// What several gates derive from the same inputs, computed once per run.
    pub cache: Cache,
}

/// Inputs several gates share, computed on first use.
#[derive(Default)]
pub struct Cache {
    slice_outputs: std::cell::OnceCell<std::result::Result<Outputs, String>>,
    ruleset: std::cell::OnceCell<std::result::Result<Option<crate::ruleset::Loaded>, String>>,
}

impl Context<'_> {
    pub fn runs(&self, gate: Id) -> bool {
        self.selected.contains(&gate)
    }

    /// The model's raw outputs on every slice row (scaled with the checkpoint's scaler and the code's
    /// NaN policy; for a model that takes windows, on each row's window), computed once for every gate
    /// that reads them.
    pub fn slice_outputs(&self, engine: &dyn Engine, slice: &Slice) -> Result<&Outputs> {
        self.cache
            .slice_outputs
            .get_or_init(|| {
                let scaler = self.facts.scaler().map_err(|u| u.message)?;
                let policy = self.facts.nan_policy();
                engine
                    .forward(&slice.model_inputs(&scaler, &policy))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| crate::error::Error::msg(e.clone()))
    }

    /// The `[ruleset]` file, parsed once (`None` without a `[ruleset]`).
    pub fn ruleset(&self) -> Result<Option<&crate::ruleset::Loaded>> {
        self.cache
            .ruleset
            .get_or_init(|| match &self.loaded.config.ruleset {
                None => Ok(None),
                Some(section) => self
                    .loaded
                    .input("ruleset.path", &section.path)
                    .and_then(|p| crate::ruleset::load(&p))
                    .map(Some)
                    .map_err(|e| e.to_string()),
            })
            .as_ref()
            .map(Option::as_ref)
            .map_err(|e| crate::error::Error::msg(e.clone()))
    }

    /// The skip reason of a gate whose config section is absent: `not configured: no `[slice]` in
    /// plumbline.mlp.toml`, naming the config file in use.
    pub fn not_configured(&self, what: &str) -> String {
        format!(
            "not configured: no {what} in {}",
            crate::paths::display_path(&self.loaded.path)
        )
    }

    /// Where findings about the model point: the production checkpoint.
    pub fn production_location(&self) -> Location {
        Location::file(crate::paths::display_path(&self.facts.production.path))
            .with_label("production checkpoint")
    }
}

/// What a gate returns: its findings and a one-line summary for the verdict table, or why it skipped.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: String,
    pub skipped: Option<String>,
}

impl Report {
    /// A gate that could not get past its first step: one finding, and a summary saying which step.
    pub fn stopped(finding: Finding, summary: &str) -> Report {
        Report {
            findings: vec![finding],
            summary: summary.to_owned(),
            skipped: None,
        }
    }

    pub fn skipped(reason: impl Into<String>) -> Report {
        Report {
            skipped: Some(reason.into()),
            ..Report::default()
        }
    }
}

/// What a gate needs before it runs: `check` loads the model, the slice and the base only when a
/// selected gate needs them; `commands` marks the gates that run the pipeline's own commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Runs the model (skipped, saying why, in a build without an engine).
    pub engine: bool,
    /// Reads the reference slice (`[slice]`).
    pub slice: bool,
    /// Compares against the base revision (`--base`, or the pull request's base).
    pub base: bool,
    /// Runs the pipeline's own commands (builders, inference paths, interpreters): refused, with a
    /// finding, where the config's commands must not run (`plumbline ci` under `pull_request_target`).
    pub commands: bool,
}

impl Needs {
    /// Nothing beyond the facts and the contract; a gate names what it needs on top
    /// (`Needs { slice: true, ..Needs::NOTHING }`).
    pub const NOTHING: Needs = Needs {
        engine: false,
        slice: false,
        base: false,
        commands: false,
    };
}

/// Whether a gate's work splits into parts whose findings merge into the whole run's: work that grows
/// with the data relies on it (parts run apart, on threads or machines, and their findings are joined in
/// part order). Only what is true today is declared (docs/decisions.md: which gates row parts need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// One piece: a finding or the summary depends on all of the input at once (a median, a share over
    /// the slice, a first difference, an order, a version).
    Whole,
    /// One part per file it reads, each with its own findings (docs drift: each docs file on its own).
    Files,
}

impl Parts {
    pub fn as_str(self) -> &'static str {
        match self {
            Parts::Whole => "whole",
            Parts::Files => "files",
        }
    }
}

/// Which gate: what code compares and matches on. Names (`forward-contract`) are for people, configs
/// and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Id {
    CheckpointInventory,
    FeatureSchema,
    NormStats,
    Labels,
    Heads,
    ForwardContract,
    OutputDistribution,
    FeatureParity,
    Leakage,
    LabelDefinition,
    RulesetSmoke,
    InferenceParity,
    InterpretationParity,
    DocsDrift,
    ContractChanges,
}

pub struct Gate {
    pub id: Id,
    pub name: &'static str,
    /// The plan's script this gate implements, if any (docs/gates/README.md maps them).
    pub plan_script: Option<&'static str>,
    pub codes: &'static [Code],
    pub needs: Needs,
    /// Whether its work splits into parts and merges.
    pub parts: Parts,
    /// The profiles that run it (`pre-live` runs every gate).
    pub profiles: &'static [Profile],
    pub run: fn(&Context) -> Result<Report>,
}

/// The plan's workflows (docs/gates.md): which gates run before what. Each gate names the profiles it
/// belongs to (`Gate::profiles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// After a training run: the new checkpoint's metadata against the contract.
    PostTrain,
    /// Before a backtest: inventory, feature schema, norm stats, forward contract, ruleset smoke.
    PreBacktest,
    /// Before demo/live: every gate.
    PreLive,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::PostTrain => "post-train",
            Profile::PreBacktest => "pre-backtest",
            Profile::PreLive => "pre-live",
        }
    }

    /// The gates of this profile, in run order.
    pub fn gates(self) -> Vec<&'static Gate> {
        GATES
            .iter()
            .filter(|g| g.profiles.contains(&self))
            .collect()
    }
}

/// Every gate, in the order `check` runs them.
pub const GATES: &[Gate] = &[
    checkpoint_inventory::GATE,
    feature_schema::GATE,
    norm_stats::GATE,
    labels::GATE,
    heads::GATE,
    forward_contract::GATE,
    output_distribution::GATE,
    feature_parity::GATE,
    leakage::GATE,
    label_definition::GATE,
    ruleset_smoke::GATE,
    inference_parity::GATE,
    interpretation_parity::GATE,
    docs_drift::GATE,
    contract_changes::GATE,
];

/// The gate names and finding codes a loaded config names (`[severity]`, `paths[i].gates`,
/// `gates.disable`) exist: the registry is the one place that knows them, so config loading does not.
pub fn validate(loaded: &Loaded) -> Result<()> {
    let at = || Location::file(crate::paths::display_path(&loaded.path));
    let config = &loaded.config;
    for code in config.severity.keys() {
        if !all_codes().any(|c| c.id == code) {
            return Err(Error::at(
                at(),
                format!("[severity] names unknown finding code `{code}` (see docs/codes.md)"),
            ));
        }
    }
    for (i, rule) in config.paths.iter().enumerate() {
        for g in &rule.gates {
            if find(g).is_none() {
                return Err(Error::at(
                    at(),
                    format!("paths[{i}]: unknown gate `{g}` (see docs/gates/README.md)"),
                ));
            }
        }
    }
    for name in &config.gates.disable {
        if find(name).is_none() {
            return Err(Error::at(
                at(),
                format!("`gates.disable` names unknown gate `{name}` (see docs/gates/README.md)"),
            ));
        }
    }
    Ok(())
}

/// The docs-drift gate, which `docs --check` and the pre-commit hook run on their own.
pub const DOCS_DRIFT: &Gate = &docs_drift::GATE;

/// Every finding code of every gate.
pub fn all_codes() -> impl Iterator<Item = &'static Code> {
    GATES.iter().flat_map(|g| g.codes.iter())
}

/// The declared code with this id: how a finding read back from JSON gets its code.
pub fn code(id: &str) -> Option<&'static Code> {
    all_codes().find(|c| c.id == id)
}

pub fn find(name: &str) -> Option<&'static Gate> {
    GATES.iter().find(|g| g.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_has_its_own_id() {
        let ids: std::collections::HashSet<Id> = GATES.iter().map(|g| g.id).collect();
        assert_eq!(ids.len(), GATES.len());
    }

    #[test]
    fn codes_are_unique_kebab_case_and_belong_to_their_gate() {
        let mut seen = std::collections::HashSet::new();
        for g in GATES {
            for c in g.codes {
                assert!(seen.insert(c.id), "duplicate code {}", c.id);
                assert_eq!(c.gate, g.name, "{} declared in the wrong gate", c.id);
                assert!(
                    c.id.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{}",
                    c.id
                );
            }
        }
    }
}
