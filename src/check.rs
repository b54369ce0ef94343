//! Running gates: derive the contract, load what the selected gates need (the slice, the model), run
//! each gate, apply the config's severity overrides. The result is plain data for the renderers.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::changes::{self, Changes};
use crate::config::Loaded;
use crate::contract::{self, PipelineContract};
use crate::engine::{self, EngineKind};
use crate::error::{Error, Result};
use crate::facts::{self, Facts};
use crate::finding::{Counts, Finding, Severity};
pub use crate::gates::Profile;
use crate::gates::{self, Context, Gate, Model};

/// What to run.
#[derive(Clone, Copy)]
pub enum Selection {
    /// Every gate.
    All,
    Profile(Profile),
    /// One gate, asked for by name: a gate that cannot run here is an error, not a skip.
    Gate(&'static Gate),
}

impl Selection {
    fn gates(self) -> Vec<&'static Gate> {
        match self {
            Selection::All => gates::GATES.iter().collect(),
            Selection::Profile(p) => p.gates(),
            Selection::Gate(g) => vec![g],
        }
    }
}

/// One gate's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateResult {
    pub gate: String,
    pub summary: String,
    pub counts: Counts,
    /// Why the gate did not run (not configured, disabled, or not available in this build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Wall time; shown in the terminal, left out of JSON output so it stays byte-identical.
    #[serde(skip)]
    pub duration: Duration,
}

/// Everything a check produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub pipeline: String,
    pub profile: Option<&'static str>,
    pub contract: Option<PipelineContract>,
    pub gates: Vec<GateResult>,
    pub findings: Vec<Finding>,
    /// The contract changes against the base revision, when the run had one.
    pub changes: Option<Changes>,
    /// Whether a command from the config was refused (`plumbline ci` under `pull_request_target`).
    pub commands_refused: bool,
    /// How many of the config's commands ran on the staged tree (`hook pre-commit`) and how long
    /// checking it out took; shown in the terminal's last line, left out of JSON.
    pub staged_commands: Option<(usize, Duration)>,
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

/// Derive the contract (missing or wrongly typed checkpoint facts are left out of it and reported by
/// feature-schema). A code fact that cannot be used is an error.
pub fn derive_for_check(loaded: &Loaded, facts: &Facts) -> Result<PipelineContract> {
    contract::derive(
        &loaded.config.pipeline.name,
        &loaded.config.checkpoints.production,
        facts,
    )
}

enum Plan {
    Run(&'static Gate),
    Skip(&'static str, String),
}

impl Plan {
    /// The gate's name, run or skipped.
    fn name(&self) -> &'static str {
        match self {
            Plan::Run(g) => g.name,
            Plan::Skip(n, _) => n,
        }
    }

    /// The gate, when it runs.
    fn gate(&self) -> Option<&'static Gate> {
        match self {
            Plan::Run(g) => Some(*g),
            Plan::Skip(..) => None,
        }
    }
}

/// What a run reports while it works, for a progress display the caller owns (the library draws
/// nothing: the binary shows a bar on a terminal, docs/cli.md#progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// Gate `index` (0-based) of `total` is starting.
    Gate {
        name: &'a str,
        index: usize,
        total: usize,
    },
    /// Every gate has run.
    Done,
}

/// Load the config and check the gate names and finding codes it names against the registry.
pub fn load(path: &std::path::Path) -> Result<Loaded> {
    load_in(
        path,
        std::sync::Arc::new(crate::snapshot::Snapshot::WorkTree),
    )
}

/// [`load`] as `snapshot` has the files (the staged version for `hook pre-commit`).
pub fn load_in(
    path: &std::path::Path,
    snapshot: std::sync::Arc<crate::snapshot::Snapshot>,
) -> Result<Loaded> {
    let loaded = crate::config::load_in(path, snapshot)?;
    gates::validate(&loaded)?;
    Ok(loaded)
}

pub fn run(loaded: &Loaded, selection: Selection) -> Result<Outcome> {
    run_with(loaded, selection, &mut |_| {})
}

/// [`run`], telling `progress` which gate it is at.
pub fn run_with(
    loaded: &Loaded,
    selection: Selection,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome> {
    let start = Instant::now();
    let plan = plan(loaded, selection);
    if let Selection::Gate(g) = selection
        && let Some(Plan::Skip(_, why)) = plan.first()
    {
        return Err(cannot_run(g, why));
    }
    let running: Vec<&'static Gate> = plan.iter().filter_map(Plan::gate).collect();
    let selected: Vec<gates::Id> = running.iter().map(|g| g.id).collect();
    let inputs = Inputs::prepare(loaded, &running)?;
    let profile = match selection {
        Selection::Profile(p) => Some(p),
        Selection::All | Selection::Gate(_) => None,
    };
    let cx = inputs.context(loaded, &selected, profile);
    let (results, findings) = run_plan(&cx, plan, selection, progress)?;
    Ok(Outcome {
        pipeline: loaded.config.pipeline.name.clone(),
        profile: match selection {
            Selection::Profile(p) => Some(p.name()),
            _ => None,
        },
        contract: Some(inputs.contract),
        gates: results,
        findings,
        changes: inputs.changes.map(|c| with_severities(loaded, c)),
        commands_refused: loaded
            .run
            .commands_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        staged_commands: loaded.run.snapshot.staged_commands(),
        duration: start.elapsed(),
    })
}

/// The error of a gate asked for by name that cannot run.
fn cannot_run(gate: &Gate, why: &str) -> Error {
    Error::msg(format!("gate `{}` cannot run: {why}", gate.name))
}

/// Each selected gate, to run or to skip with the reason.
fn plan(loaded: &Loaded, selection: Selection) -> Vec<Plan> {
    // A gate asked for by name runs even when disabled or outside `--changed-from`.
    let by_name = matches!(selection, Selection::Gate(_));
    selection
        .gates()
        .into_iter()
        .map(|g| plan_gate(loaded, g, by_name))
        .collect()
}

/// Whether `gate` runs: not when disabled, outside the gates a change affects, or without its engine.
fn plan_gate(loaded: &Loaded, gate: &'static Gate, by_name: bool) -> Plan {
    if !by_name && loaded.config.gates.disable.iter().any(|d| d == gate.name) {
        return Plan::Skip(
            gate.name,
            "disabled in plumbline.toml (`gates.disable`)".into(),
        );
    }
    if !by_name
        && let Some((only, why)) = &loaded.run.only
        && !only.contains(gate.name)
    {
        return Plan::Skip(gate.name, why.clone());
    }
    match engine::unavailable(EngineKind::of(loaded)) {
        Some(reason) if gate.needs.engine => Plan::Skip(gate.name, reason.into()),
        _ => Plan::Run(gate),
    }
}

/// Run the plan in order: each gate's result, and its findings after the severity overrides.
fn run_plan(
    cx: &Context,
    plan: Vec<Plan>,
    selection: Selection,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<GateResult>, Vec<Finding>)> {
    let mut results = Vec::new();
    let mut findings = Vec::new();
    let total = plan.len();
    for (index, p) in plan.into_iter().enumerate() {
        progress(Progress::Gate {
            name: p.name(),
            index,
            total,
        });
        let (result, mut fs) = run_gate(cx, p, selection)?;
        results.push(result);
        findings.append(&mut fs);
    }
    progress(Progress::Done);
    Ok((results, findings))
}

/// One planned gate's result and findings; a gate asked for by name that skips is an error.
fn run_gate(cx: &Context, p: Plan, selection: Selection) -> Result<(GateResult, Vec<Finding>)> {
    let t = Instant::now();
    let (name, report) = match p {
        Plan::Run(gate) => (gate.name, (gate.run)(cx)?),
        Plan::Skip(name, why) => (name, gates::Report::skipped(why)),
    };
    if let (Selection::Gate(g), Some(why)) = (selection, &report.skipped) {
        return Err(cannot_run(g, why));
    }
    let fs: Vec<Finding> = report
        .findings
        .into_iter()
        .filter_map(|f| apply_override(cx.loaded, f))
        .collect();
    let result = GateResult {
        gate: name.to_owned(),
        summary: report.summary,
        counts: Counts::of(&fs),
        skipped: report.skipped,
        duration: t.elapsed(),
    };
    Ok((result, fs))
}

/// What the running gates read, prepared once before the first of them.
struct Inputs {
    facts: Facts,
    contract: PipelineContract,
    model: Model,
    slice: Option<crate::slice::Slice>,
    base: Option<std::result::Result<crate::base::Base, String>>,
    changes: Option<Changes>,
}

impl Inputs {
    /// The facts and contract, and the model, slice and base only when a running gate needs them.
    fn prepare(loaded: &Loaded, running: &[&'static Gate]) -> Result<Inputs> {
        let facts = facts::collect(loaded)?;
        let contract = derive_for_check(loaded, &facts)?;
        let model = if running.iter().any(|g| g.needs.engine) {
            match engine::for_check(loaded, &facts) {
                Ok(e) => Model::Ready(e),
                Err(e) => Model::Failed(e.to_string()),
            }
        } else {
            Model::NotNeeded
        };
        let slice = match &loaded.config.slice {
            Some(section) if running.iter().any(|g| g.needs.slice) => {
                Some(crate::slice::load(loaded, section, &facts)?)
            }
            _ => None,
        };
        // A base that cannot be read is the contract-changes gate's finding, not the end of the run:
        // the other gates still report.
        let base = match &loaded.run.base {
            Some(rev) if running.iter().any(|g| g.needs.base) => {
                Some(crate::base::read(loaded, rev).map_err(|e| e.to_string()))
            }
            _ => None,
        };
        let changes = match &base {
            Some(Ok(b)) => classify(b, &contract, &facts),
            _ => None,
        };
        Ok(Inputs {
            facts,
            contract,
            model,
            slice,
            base,
            changes,
        })
    }

    /// The gates' view of these inputs, for the gates in `selected`.
    fn context<'a>(
        &'a self,
        loaded: &'a Loaded,
        selected: &'a [gates::Id],
        profile: Option<Profile>,
    ) -> Context<'a> {
        Context {
            loaded,
            profile,
            facts: &self.facts,
            contract: &self.contract,
            slice: self.slice.as_ref(),
            model: &self.model,
            selected,
            cache: gates::Cache::default(),
            base: self.base.as_ref(),
            changes: self.changes.as_ref(),
        }
    }
}

/// The contract changes of `head` against the base's committed contract, when the base has one.
fn classify(b: &crate::base::Base, head: &PipelineContract, facts: &Facts) -> Option<Changes> {
    match &b.contract {
        Some(Ok(at_base)) => Some(Changes {
            base: b.label(),
            changes: changes::classify_committed(at_base, head, Some(facts), &b.docs_changed),
        }),
        _ => None,
    }
}

/// The config's severity for a rule applies to the table as to the findings.
fn with_severities(loaded: &Loaded, mut c: Changes) -> Changes {
    c.changes.retain_mut(|ch| {
        let code = if ch.accepted {
            changes::BREAKING_ACCEPTED
        } else {
            ch.rule.as_str()
        };
        severity(loaded, code, ch.severity)
            .map(|s| ch.severity = s)
            .is_some()
    });
    c
}

/// The contract changes table against `rev` as `check --base` shows it (the audit packet's section).
/// `None` when the base has no readable docs contract.
pub fn changes_against(
    loaded: &Loaded,
    rev: &str,
    head: &PipelineContract,
    facts: &facts::Facts,
) -> Result<Option<Changes>> {
    let b = crate::base::read(loaded, rev)?;
    Ok(classify(&b, head, facts).map(|c| with_severities(loaded, c)))
}

/// The output-distribution baseline of the current model on the configured slice, as canonical JSON.
pub fn baseline(loaded: &Loaded) -> Result<String> {
    let section = loaded.config.slice.as_ref().ok_or_else(|| {
        Error::msg(format!(
            "{}: a baseline needs a `[slice]` to run the model on",
            crate::paths::display_path(&loaded.path)
        ))
    })?;
    if let Some(why) = engine::unavailable(EngineKind::of(loaded)) {
        return Err(Error::msg(format!("`baseline` {why}")));
    }
    let facts = facts::collect(loaded)?;
    let contract = derive_for_check(loaded, &facts)?;
    let engine = engine::for_check(loaded, &facts)?;
    let slice = crate::slice::load(loaded, section, &facts)?;
    let model = Model::NotNeeded;
    let cx = Context {
        loaded,
        facts: &facts,
        contract: &contract,
        slice: Some(&slice),
        model: &model,
        profile: None,
        selected: &[],
        cache: gates::Cache::default(),
        base: None,
        changes: None,
    };
    let eval = crate::distribution::evaluate(
        cx.slice_outputs(engine.as_ref(), &slice)?,
        facts.heads()?.to_vec(),
    );
    let model_version = contract.model_version.clone();
    let b = crate::distribution::baseline(
        eval,
        &slice,
        &loaded.resolve(&section.features),
        &section.features,
        model_version,
    )?;
    Ok(crate::canonical::to_string(&b).expect("plain JSON"))
}

/// The severity `[severity]` gives a code (`None`: "off", dropped), else its own.
fn severity(loaded: &Loaded, code: &str, default: Severity) -> Option<Severity> {
    match loaded.config.severity.get(code) {
        None => Some(default),
        Some(o) => o.severity(),
    }
}

fn apply_override(loaded: &Loaded, mut f: Finding) -> Option<Finding> {
    f.severity = severity(loaded, f.code.id, f.severity)?;
    Some(f)
}
