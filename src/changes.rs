//! Classifying the contract changes between the base revision and this one, the way buf and oasdiff
//! classify API changes: each change gets a stable rule id and a verdict from the version rules
//! (docs/versions.md). A breaking change — a feature removed, reordered, added or retyped, the head map
//! changed — is an error unless its version was bumped, and then it is an accepted breaking change,
//! listed for the reviewer. Threshold and horizon changes are warnings; docs prose alone is a note.
//! The list is data: the contract-changes gate turns it into findings, the renderers into a table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::contract::PipelineContract;
use crate::facts::Facts;
use crate::finding::{Location, Severity};

/// One change between the base contract and this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The rule's stable id (`feature-reordered`), also the finding code.
    pub rule: String,
    /// What changed, for a reviewer.
    pub change: String,
    /// Breaking, with the version bump that accepts it.
    pub accepted: bool,
    pub severity: Severity,
    /// The line of the fact in this revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// The changes against a base revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// The base as shown: `` `main` (1a2b3c4d5e6f) ``.
    pub base: String,
    pub changes: Vec<Change>,
}

pub const FEATURE_REMOVED: &str = "feature-removed";
pub const FEATURE_REORDERED: &str = "feature-reordered";
pub const FEATURE_ADDED: &str = "feature-added";
pub const FEATURE_DTYPE_CHANGED: &str = "feature-dtype-changed";
pub const HEAD_MAP_CHANGED: &str = "head-map-changed";
pub const THRESHOLD_CHANGED: &str = "threshold-changed";
pub const HORIZON_CHANGED: &str = "horizon-changed";
pub const NAN_POLICY_CHANGED: &str = "nan-policy-changed";
pub const VERSION_BUMPED: &str = "version-bumped";
pub const DOCS_ONLY: &str = "docs-only-change";
/// The code a breaking change reports under when its version was bumped.
pub const BREAKING_ACCEPTED: &str = "breaking-change-accepted";
pub const CONTRACT_CHANGED: &str = "contract-changed";

/// Whether `new` is a later version than `old`: numerically, part by part (`3` → `4`, `1.9` → `1.10`),
/// else any difference. A lower number is not a bump (a downgrade cannot accept a breaking change).
pub fn is_bump(old: &str, new: &str) -> bool {
    let parts = |v: &str| -> Option<Vec<u64>> {
        v.trim_start_matches('v')
            .split('.')
            .map(|p| p.parse().ok())
            .collect()
    };
    match (parts(old), parts(new)) {
        (Some(a), Some(b)) => b > a,
        _ => old != new,
    }
}

fn change(rule: &'static str, severity: Severity, change: String, at: Option<Location>) -> Change {
    Change {
        rule: rule.to_owned(),
        change,
        accepted: false,
        severity,
        location: at,
    }
}

/// A breaking change: an error, or accepted (a note) when `bump` names the version bump.
fn breaking(rule: &'static str, what: String, bump: Option<&str>, at: Option<Location>) -> Change {
    match bump {
        Some(b) => Change {
            accepted: true,
            ..change(rule, Severity::Note, format!("{what} ({b})"), at)
        },
        None => change(rule, Severity::Error, what, at),
    }
}

fn item(facts: Option<&Facts>, i: usize) -> Option<Location> {
    let f = &facts?.code.columns;
    let (line, col) = f.items.get(i).copied()?;
    Some(Location {
        line: Some(line),
        column: Some(col),
        ..f.origin.clone()
    })
}

/// Classify `head` against `base`. `facts` (this revision's) give the lines; `docs_changed` lists the
/// Markdown docs that differ, for the docs-only rule.
pub fn classify(
    base: &PipelineContract,
    head: &PipelineContract,
    facts: Option<&Facts>,
    docs_changed: &[String],
) -> Vec<Change> {
    let mut out = Vec::new();
    let origin = |pick: fn(&Facts) -> &crate::source::Fact| facts.map(|f| pick(f).origin.clone());
    let model_bump = is_bump(&base.model_version, &head.model_version).then(|| {
        format!(
            "model-version bumped {} → {}",
            base.model_version, head.model_version
        )
    });
    let heads_bump = is_bump(&base.heads_version, &head.heads_version).then(|| {
        format!(
            "heads-version bumped {} → {}",
            base.heads_version, head.heads_version
        )
    });

    // Features.
    let b: Vec<&str> = base
        .features
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let h: Vec<&str> = head
        .features
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for (i, name) in b.iter().enumerate() {
        if !h.contains(name) {
            out.push(breaking(
                FEATURE_REMOVED,
                format!("`{name}` removed (was at index {i})"),
                model_bump.as_deref(),
                origin(|f| &f.code.columns),
            ));
        }
    }
    let common_b: Vec<&str> = b.iter().copied().filter(|n| h.contains(n)).collect();
    let common_h: Vec<&str> = h.iter().copied().filter(|n| b.contains(n)).collect();
    if let Some(k) = common_b.iter().zip(&common_h).position(|(x, y)| x != y) {
        let moved = common_h[k];
        let at = h.iter().position(|n| *n == moved).expect("common");
        out.push(breaking(
            FEATURE_REORDERED,
            format!(
                "`{moved}` now where `{}` was; {} of {} shared features in another order",
                common_b[k],
                common_b
                    .iter()
                    .zip(&common_h)
                    .filter(|(x, y)| x != y)
                    .count(),
                common_b.len()
            ),
            model_bump.as_deref(),
            item(facts, at).or_else(|| origin(|f| &f.code.columns)),
        ));
    }
    for (i, name) in h.iter().enumerate() {
        if !b.contains(name) {
            out.push(breaking(
                FEATURE_ADDED,
                format!("`{name}` added at index {i}"),
                model_bump.as_deref(),
                item(facts, i).or_else(|| origin(|f| &f.code.columns)),
            ));
        }
    }
    for c in &head.features.columns {
        if let Some(old) = base.features.columns.iter().find(|o| o.name == c.name)
            && old.dtype != c.dtype
        {
            out.push(breaking(
                FEATURE_DTYPE_CHANGED,
                format!("`{}` {} → {}", c.name, old.dtype, c.dtype),
                model_bump.as_deref(),
                origin(|f| &f.code.dtypes),
            ));
        }
    }
    if base.features.nan_policy != head.features.nan_policy {
        out.push(breaking(
            NAN_POLICY_CHANGED,
            format!(
                "NaN policy `{}` → `{}`",
                base.features.nan_policy, head.features.nan_policy
            ),
            model_bump.as_deref(),
            origin(|f| &f.code.nan_policy),
        ));
    }

    // Heads.
    if base.heads != head.heads {
        let show = |c: &PipelineContract| {
            c.heads
                .iter()
                .map(|h| format!("{}:{}{:?}", h.name, h.kind, h.shape))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(breaking(
            HEAD_MAP_CHANGED,
            format!("[{}] → [{}]", show(base), show(head)),
            heads_bump.as_deref(),
            origin(|f| &f.code.heads),
        ));
    }

    // Labels.
    if base.targets.horizon != head.targets.horizon {
        out.push(change(
            HORIZON_CHANGED,
            Severity::Warning,
            format!(
                "horizon {} → {} bars",
                base.targets.horizon, head.targets.horizon
            ),
            origin(|f| &f.code.horizon),
        ));
    }
    let keys: std::collections::BTreeSet<&String> = base
        .targets
        .thresholds
        .keys()
        .chain(head.targets.thresholds.keys())
        .collect();
    for k in keys {
        let (old, new) = (
            base.targets.thresholds.get(k),
            head.targets.thresholds.get(k),
        );
        if old != new {
            let show = |v: Option<&f64>| v.map_or("—".to_owned(), |v| v.to_string());
            out.push(change(
                THRESHOLD_CHANGED,
                Severity::Warning,
                format!("`{k}` {} → {}", show(old), show(new)),
                origin(|f| &f.code.thresholds),
            ));
        }
    }

    // Version bumps are what a reviewer approves, listed even with nothing else.
    if let Some(b) = &model_bump {
        out.push(change(
            VERSION_BUMPED,
            Severity::Note,
            b.clone(),
            origin(|f| &f.code.model_version),
        ));
    }
    if let Some(b) = &heads_bump {
        out.push(change(
            VERSION_BUMPED,
            Severity::Note,
            b.clone(),
            origin(|f| &f.code.heads_version),
        ));
    }
    // Anything else that differs (the production checkpoint's path, scaler or schema hash, the format,
    // the pipeline's name) is listed too: a table that says "no changes" must mean it.
    let others = other_differences(base, head);
    if !others.is_empty() {
        out.push(change(
            CONTRACT_CHANGED,
            Severity::Warning,
            others.join("; "),
            None,
        ));
    }
    if (base.model_version != head.model_version && model_bump.is_none())
        || (base.heads_version != head.heads_version && heads_bump.is_none())
    {
        out.push(change(
            CONTRACT_CHANGED,
            Severity::Warning,
            format!(
                "version went back: model {} → {}, heads {} → {}",
                base.model_version, head.model_version, base.heads_version, head.heads_version
            ),
            origin(|f| &f.code.model_version),
        ));
    }
    if out.is_empty() && base == head && !docs_changed.is_empty() {
        out.push(change(
            DOCS_ONLY,
            Severity::Note,
            format!(
                "docs prose changed ({}); the contract did not",
                docs_changed.join(", ")
            ),
            None,
        ));
    }
    out
}

/// Top-level contract parts outside the rules above that differ, as `key: old → new` where short.
fn other_differences(base: &PipelineContract, head: &PipelineContract) -> Vec<String> {
    let mut out = Vec::new();
    if base.contract_format != head.contract_format {
        out.push(format!(
            "contract-format {} → {}",
            base.contract_format, head.contract_format
        ));
    }
    if base.pipeline != head.pipeline {
        out.push(format!(
            "pipeline `{}` → `{}`",
            base.pipeline, head.pipeline
        ));
    }
    let (b, h) = (&base.production_checkpoint, &head.production_checkpoint);
    if b != h {
        let bv = serde_json::to_value(b).unwrap_or_default();
        let hv = serde_json::to_value(h).unwrap_or_default();
        let keys: Vec<String> = bv
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| hv.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        out.push(format!("production-checkpoint {} changed", keys.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> PipelineContract {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/momentum/docs/PIPELINE_CONTRACT.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn rules(c: &[Change]) -> Vec<(&str, bool, Severity)> {
        c.iter()
            .map(|c| (c.rule.as_str(), c.accepted, c.severity))
            .collect()
    }

    #[test]
    fn bumps_go_up() {
        assert!(is_bump("3", "4"));
        assert!(is_bump("1.9", "1.10"));
        assert!(is_bump("v2", "v3"));
        assert!(!is_bump("4", "3"));
        assert!(!is_bump("3", "3"));
        assert!(is_bump("alpha", "beta"), "not numbers: any change");
    }

    #[test]
    fn each_rule_fires_once_with_its_verdict() {
        let base = contract();
        let mut head = base.clone();
        assert!(classify(&base, &head, None, &[]).is_empty());
        // Removed, added and retyped at once, no bump: three errors, no reorder of what is shared.
        head.features.columns.remove(0);
        head.features.columns.push(crate::contract::Feature {
            name: "new_1".into(),
            dtype: "float32".into(),
        });
        head.features.columns[0].dtype = "float64".into();
        let c = classify(&base, &head, None, &[]);
        assert_eq!(
            rules(&c),
            [
                (FEATURE_REMOVED, false, Severity::Error),
                (FEATURE_ADDED, false, Severity::Error),
                (FEATURE_DTYPE_CHANGED, false, Severity::Error)
            ]
        );
        // A downgrade accepts nothing and is said.
        head.model_version = "2".into();
        let c = classify(&base, &head, None, &[]);
        assert!(c.iter().all(|c| !c.accepted));
        assert_eq!(c.last().unwrap().rule, CONTRACT_CHANGED);
        // Heads, thresholds, horizon, the production checkpoint.
        let mut head = base.clone();
        head.heads.swap(0, 1);
        head.targets.horizon += 1;
        head.targets.thresholds.insert("long".into(), 0.01);
        head.production_checkpoint.input_dim += 1;
        let c = classify(&base, &head, None, &[]);
        assert_eq!(
            rules(&c),
            [
                (HEAD_MAP_CHANGED, false, Severity::Error),
                (HORIZON_CHANGED, false, Severity::Warning),
                (THRESHOLD_CHANGED, false, Severity::Warning),
                (CONTRACT_CHANGED, false, Severity::Warning)
            ]
        );
        assert_eq!(c[3].change, "production-checkpoint input-dim changed");
        head.heads_version = format!("{}1", base.heads_version);
        let c = classify(&base, &head, None, &[]);
        assert_eq!(rules(&c)[0], (HEAD_MAP_CHANGED, true, Severity::Note));
    }
}
