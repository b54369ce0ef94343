//! `plumbline audit packet` (plan §3.2 `generate_audit_packet.py`, §7): one PDF for a release candidate
//! with everything a reviewer signs off on — the run (from its run manifest), the contract, the gate
//! results, the checkpoint inventory, output distributions against the reference, attribution per head,
//! the surrogate rules, the contract changes against the base, and the manifest's hashes (docs/packet.md).
//!
//! The packet is a view of one pre-live run: it reads that run's manifest (gate verdicts and timings, the
//! commit, the date) and refuses a manifest whose config, contract or checkpoints no longer match the
//! files, so the PDF never pairs one run's verdict with another state's model. Everything else it shows
//! is recomputed from the same inputs, deterministically; the document date is the manifest's, so the
//! same inputs give the same bytes.

pub mod command;
#[cfg(feature = "pdf")]
pub mod helvetica;
#[cfg(feature = "pdf")]
pub mod layout;
#[cfg(feature = "pdf")]
pub mod render;

use std::path::Path;

use crate::audit::conditions::{self, Attribution};
use crate::audit::surrogate::Surrogate;
use crate::changes::Changes;
use crate::config::Loaded;
use crate::contract::PipelineContract;
use crate::distribution as od;
use crate::error::{Error, Result};
use crate::inventory;
use crate::manifest::RunManifest;
use crate::paths::display_path;

pub const FILE: &str = "artifacts/audit/audit_packet.pdf";

/// Everything the packet shows.
pub struct Packet {
    pub manifest: RunManifest,
    /// The manifest file as shown, and the sha256 of its bytes.
    pub manifest_path: String,
    pub manifest_sha256: String,
    pub contract: PipelineContract,
    pub inventory: Vec<inventory::Row>,
    pub distributions: Vec<HeadDistribution>,
    /// Why there are no distribution plots, when there are none.
    pub distribution_note: Option<String>,
    pub attribution_method: &'static str,
    pub attribution: Vec<HeadAttribution>,
    pub surrogate: Surrogate,
    pub surrogate_target: String,
    /// Against `--base`, when given.
    pub changes: Option<Changes>,
    pub slice: String,
    pub rows: usize,
}

pub struct HeadDistribution {
    pub head: String,
    pub kind: String,
    pub units: Vec<UnitDistribution>,
}

/// One output unit's histogram on the slice against the reference baseline's (same bins).
pub struct UnitDistribution {
    pub label: String,
    /// Inner bin edges.
    pub edges: Vec<f64>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
    pub psi: f64,
}

/// Mean importance per feature over a head's outputs, largest first.
pub struct HeadAttribution {
    pub head: String,
    pub outputs: usize,
    pub bars: Vec<(String, f64)>,
}

/// Where the packet goes by default.
pub fn default_path(loaded: &Loaded) -> std::path::PathBuf {
    loaded.resolve(FILE)
}

/// Read the manifest and check that it describes the files as they are now.
type Checked = (RunManifest, String, Vec<crate::manifest::Hashed>);

fn manifest(loaded: &Loaded, path: &Path, contract: &PipelineContract) -> Result<Checked> {
    let shown = display_path(path);
    let bytes = std::fs::read(path).map_err(|e| {
        Error::msg(format!(
            "{shown}: {e}: the packet describes a pre-live run; run `plumbline check --profile pre-live` first (or pass --manifest PATH)"
        ))
    })?;
    let m: RunManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::msg(format!("{shown}: not a run manifest: {e}")))?;
    let refuse = |why: String| Error::msg(format!("{shown}: {why}"));
    if m.manifest_format != crate::manifest::MANIFEST_FORMAT {
        return Err(refuse(format!(
            "manifest-format {} (this plumbline reads {})",
            m.manifest_format,
            crate::manifest::MANIFEST_FORMAT
        )));
    }
    if crate::manifest::run_sha256(&m.run) != m.run_sha256 {
        return Err(refuse(
            "`run-sha256` does not match its `run`: the manifest was edited after it was written"
                .into(),
        ));
    }
    if m.run.profile.as_deref() != Some("pre-live") {
        return Err(refuse(format!(
            "the packet describes a pre-live run, and this manifest is of {}; run `plumbline check --profile pre-live`",
            m.run
                .profile
                .as_deref()
                .map_or("a run without a profile".into(), |p| format!("profile {p}"))
        )));
    }
    let stale = |what: String| {
        refuse(format!(
            "the manifest is stale: {what} since it was written; run `plumbline check --profile pre-live` again"
        ))
    };
    let config_now = crate::checkpoint::sha256_file(&loaded.path)?;
    if m.run.config.sha256 != config_now {
        return Err(stale(format!("the config ({}) changed", m.run.config.path)));
    }
    if m.run.contract_sha256.as_deref() != Some(crate::manifest::contract_sha256(contract).as_str())
    {
        return Err(stale("the derived contract changed".into()));
    }
    // Checkpoints and data files by path (as shown from here) and hash: a changed, added, removed or
    // swapped file is stale.
    let now = crate::manifest::checkpoint_hashes(loaded)?;
    for (what, then, current) in [
        ("checkpoint", &m.run.checkpoints, &now),
        (
            "data file",
            &m.run.data,
            &crate::manifest::data_hashes(loaded)?,
        ),
    ] {
        let pairs = |v: &[crate::manifest::Hashed]| -> std::collections::BTreeMap<String, String> {
            v.iter()
                .map(|h| (h.path.clone(), h.sha256.clone()))
                .collect()
        };
        let (a, b) = (pairs(then), pairs(current));
        if let Some(path) = a.keys().chain(b.keys()).find(|p| a.get(*p) != b.get(*p)) {
            return Err(stale(format!(
                "{what} {path} changed, appeared or went away"
            )));
        }
    }
    Ok((m, crate::checkpoint::sha256_bytes(&bytes), now))
}

/// Gather the packet's content.
pub fn gather(
    loaded: &Loaded,
    manifest_path: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Packet> {
    // One read of the facts and the production checkpoint serves the contract, the inventory and the
    // audit.
    let inputs = crate::audit::prepare(loaded)?;
    let contract = crate::contract::derive(
        &loaded.config.pipeline.name,
        &loaded.config.checkpoints.production,
        &inputs.facts,
    )?;
    let (manifest, manifest_sha256, now) = manifest(loaded, manifest_path, &contract)?;
    let (mut inventory, _) = inventory::inventory(
        loaded,
        false,
        Some(&inputs.facts),
        inventory::Covered::default(),
    )?;
    let hashes: std::collections::BTreeMap<&str, &str> = now
        .iter()
        .map(|h| (h.path.as_str(), h.sha256.as_str()))
        .collect();
    for row in &mut inventory {
        row.sha256 = hashes.get(row.path.as_str()).map(|s| s.to_string());
    }

    let (distributions, distribution_note) = distributions(loaded, &inputs)?;
    let c = conditions::compute(loaded, &inputs, progress)?;
    if c.not_converged() > 0 {
        return Err(Error::msg(format!(
            "integrated gradients did not converge on {} rows within `audit.max-steps` ({}): the packet would show attributions that are off; raise `audit.max-steps` or `audit.tolerance` (`plumbline audit conditions` lists the rows)",
            c.not_converged(),
            loaded.config.audit.max_steps
        )));
    }
    let (attribution_method, attribution) = attribution(&inputs, &c);
    let changes = match &loaded.run.base {
        Some(rev) => crate::check::changes_against(loaded, rev, &contract, &inputs.facts)?,
        None => None,
    };
    Ok(Packet {
        manifest_path: display_path(manifest_path),
        manifest,
        manifest_sha256,
        contract,
        inventory,
        distributions,
        distribution_note,
        attribution_method,
        attribution,
        surrogate_target: c.target.clone(),
        surrogate: c.surrogate,
        changes,
        slice: inputs.slice_file.clone(),
        rows: inputs.slice.len(),
    })
}

/// Each head's unit histograms on the slice in the committed baseline's bins.
fn distributions(
    loaded: &Loaded,
    inputs: &crate::audit::Inputs,
) -> Result<(Vec<HeadDistribution>, Option<String>)> {
    let Some(rel) = &loaded.config.gates.output_distribution.baseline else {
        return Ok((
            Vec::new(),
            Some("no reference: `gates.output-distribution.baseline` is not set".into()),
        ));
    };
    let (baseline, _) = od::read_baseline(loaded, rel)?;
    let mut out = Vec::new();
    for h in &inputs.heads {
        let Some(b) = baseline.heads.get(&h.name) else {
            continue;
        };
        let values = od::head_values(h, &inputs.outputs[&h.name]);
        let units = b
            .units
            .iter()
            .enumerate()
            .filter(|(k, _)| *k < values.cols)
            .map(|(k, hist)| {
                let current = od::bin_shares(&hist.edges, &values.column(k));
                let label = match inputs.unit_label(&h.name, k) {
                    l if l.is_empty() => format!("{}.{k}", h.name),
                    l => format!("{}.{k} p({l})", h.name),
                };
                UnitDistribution {
                    label,
                    psi: od::psi(&hist.shares, &current),
                    edges: hist.edges.clone(),
                    reference: hist.shares.clone(),
                    current,
                }
            })
            .collect();
        out.push(HeadDistribution {
            head: h.name.clone(),
            kind: h.kind.clone(),
            units,
        });
    }
    Ok((out, None))
}

fn attribution(
    inputs: &crate::audit::Inputs,
    c: &conditions::Conditions,
) -> (&'static str, Vec<HeadAttribution>) {
    let method = match &c.attribution {
        Attribution::Integrated { .. } => {
            "integrated gradients (mean |attribution| over the slice rows)"
        }
        Attribution::Permutation(_) => "permutation importance (mean |change| of the output)",
    };
    // For windows, a feature's bar sums its importance at every lag.
    let f = inputs.features.len();
    let lags = inputs.inputs.len() / f;
    let mut out: Vec<HeadAttribution> = Vec::new();
    for h in &inputs.heads {
        let idx: Vec<usize> = (0..c.units.len())
            .filter(|&u| c.units[u].head == h.name)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let mut bars: Vec<(String, f64)> = (0..f)
            .map(|j| {
                let sum: f64 = idx
                    .iter()
                    .map(|&u| (0..lags).map(|l| c.importance(u, l * f + j)).sum::<f64>())
                    .sum();
                (inputs.features[j].clone(), sum / idx.len() as f64)
            })
            .collect();
        bars.sort_by(|a, b| b.1.total_cmp(&a.1));
        out.push(HeadAttribution {
            head: h.name.clone(),
            outputs: idx.len(),
            bars,
        });
    }
    (method, out)
}
