//! Classifying the contract changes between the base revision and this one, the way buf and oasdiff
//! classify API changes: each change gets a stable rule id and a verdict from the version rules
//! (docs/versions.md). A breaking change — a feature removed, reordered, added or retyped, the head map
//! changed — is an error unless its version was bumped, and then it is an accepted breaking change,
//! listed for the reviewer. Threshold and horizon changes are warnings; docs prose alone is a note.
//! The list is data: the contract-changes gate turns it into findings, the renderers into a table.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::contract::{CONTRACT_FORMAT, Committed, PipelineContract};
use crate::facts::Facts;
use crate::finding::{Location, Severity};
use crate::source::Fact;

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
pub const WINDOW_CHANGED: &str = "window-changed";
pub const VERSION_BUMPED: &str = "version-bumped";
pub const DOCS_ONLY: &str = "docs-only-change";
/// The code a breaking change reports under when its version was bumped.
pub const BREAKING_ACCEPTED: &str = "breaking-change-accepted";
pub const CONTRACT_CHANGED: &str = "contract-changed";
pub const FORMAT_UPGRADED: &str = "contract-format-upgraded";

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
    let pair = Pair::new(base, head, facts);
    let (b, h) = (feature_names(base), feature_names(head));
    let mut out = pair.removed(&b, &h);
    out.extend(pair.reordered(&b, &h));
    out.extend(pair.added(&b, &h));
    out.extend(pair.retyped());
    out.extend(pair.nan_policy());
    out.extend(pair.window());
    out.extend(pair.head_map());
    out.extend(pair.horizon());
    out.extend(pair.thresholds());
    // Version bumps are what a reviewer approves, listed even with nothing else.
    out.extend(pair.version_bumps());
    // Anything else that differs (the production checkpoint's path, scaler or schema hash, the format,
    // the pipeline's name) is listed too: a table that says "no changes" must mean it.
    out.extend(contract_changed(base, head));
    out.extend(pair.version_went_back());
    if out.is_empty() && base == head && !docs_changed.is_empty() {
        out.push(docs_only(docs_changed));
    }
    out
}

/// The two contracts compared, this revision's facts (for lines) and the version bumps between them.
struct Pair<'a> {
    base: &'a PipelineContract,
    head: &'a PipelineContract,
    facts: Option<&'a Facts>,
    model_bump: Option<String>,
    heads_bump: Option<String>,
}

/// The feature names of a contract, in order.
fn feature_names(c: &PipelineContract) -> Vec<&str> {
    c.features.columns.iter().map(|c| c.name.as_str()).collect()
}

impl<'a> Pair<'a> {
    fn new(
        base: &'a PipelineContract,
        head: &'a PipelineContract,
        facts: Option<&'a Facts>,
    ) -> Self {
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
        Pair {
            base,
            head,
            facts,
            model_bump,
            heads_bump,
        }
    }

    /// The location of the code fact `pick` chooses, when the facts are there.
    fn origin(&self, pick: fn(&Facts) -> &Fact) -> Option<Location> {
        self.facts.map(|f| pick(f).origin.clone())
    }

    /// The line of feature `i` in this revision's list, else the list's own line.
    fn feature_at(&self, i: usize) -> Option<Location> {
        item(self.facts, i).or_else(|| self.origin(|f| &f.code.columns))
    }

    /// A breaking feature change, accepted by a model-version bump.
    fn feature_change(&self, rule: &'static str, what: String, at: Option<Location>) -> Change {
        breaking(rule, what, self.model_bump.as_deref(), at)
    }

    /// Each base feature that is gone.
    fn removed(&self, b: &[&str], h: &[&str]) -> Vec<Change> {
        b.iter()
            .enumerate()
            .filter(|(_, name)| !h.contains(name))
            .map(|(i, name)| {
                self.feature_change(
                    FEATURE_REMOVED,
                    format!("`{name}` removed (was at index {i})"),
                    self.origin(|f| &f.code.columns),
                )
            })
            .collect()
    }

    /// The first shared feature out of its base order, with how many shared features moved.
    fn reordered(&self, b: &[&str], h: &[&str]) -> Option<Change> {
        let common_b: Vec<&str> = b.iter().copied().filter(|n| h.contains(n)).collect();
        let common_h: Vec<&str> = h.iter().copied().filter(|n| b.contains(n)).collect();
        let k = common_b.iter().zip(&common_h).position(|(x, y)| x != y)?;
        let moved = common_h[k];
        let at = h.iter().position(|n| *n == moved).expect("common");
        let out_of_order = common_b
            .iter()
            .zip(&common_h)
            .filter(|(x, y)| x != y)
            .count();
        Some(self.feature_change(
            FEATURE_REORDERED,
            format!(
                "`{moved}` now where `{}` was; {out_of_order} of {} shared features in another order",
                common_b[k],
                common_b.len()
            ),
            self.feature_at(at),
        ))
    }

    /// Each head feature the base did not have.
    fn added(&self, b: &[&str], h: &[&str]) -> Vec<Change> {
        h.iter()
            .enumerate()
            .filter(|(_, name)| !b.contains(name))
            .map(|(i, name)| {
                self.feature_change(
                    FEATURE_ADDED,
                    format!("`{name}` added at index {i}"),
                    self.feature_at(i),
                )
            })
            .collect()
    }

    /// Each shared feature whose dtype changed.
    fn retyped(&self) -> Vec<Change> {
        let old = &self.base.features.columns;
        self.head
            .features
            .columns
            .iter()
            .filter_map(|c| {
                let o = old.iter().find(|o| o.name == c.name)?;
                (o.dtype != c.dtype).then(|| {
                    self.feature_change(
                        FEATURE_DTYPE_CHANGED,
                        format!("`{}` {} → {}", c.name, o.dtype, c.dtype),
                        self.origin(|f| &f.code.dtypes),
                    )
                })
            })
            .collect()
    }

    /// A changed NaN policy.
    fn nan_policy(&self) -> Option<Change> {
        let (old, new) = (
            &self.base.features.nan_policy,
            &self.head.features.nan_policy,
        );
        (old != new).then(|| {
            self.feature_change(
                NAN_POLICY_CHANGED,
                format!("NaN policy `{old}` → `{new}`"),
                self.origin(|f| &f.code.nan_policy),
            )
        })
    }

    /// A changed input window (or rows to windows), accepted by a model-version bump.
    fn window(&self) -> Option<Change> {
        let (old, new) = (self.base.window, self.head.window);
        let show = crate::facts::window_text;
        (old != new).then(|| {
            self.feature_change(
                WINDOW_CHANGED,
                format!("input {} → {}", show(old), show(new)),
                self.origin(|f| &f.code.window),
            )
        })
    }

    /// A changed head map, accepted by a heads-version bump.
    fn head_map(&self) -> Option<Change> {
        (self.base.heads != self.head.heads).then(|| {
            breaking(
                HEAD_MAP_CHANGED,
                format!("[{}] → [{}]", show_heads(self.base), show_heads(self.head)),
                self.heads_bump.as_deref(),
                self.origin(|f| &f.code.heads),
            )
        })
    }

    /// A changed label horizon.
    fn horizon(&self) -> Option<Change> {
        let (old, new) = (self.base.targets.horizon, self.head.targets.horizon);
        (old != new).then(|| {
            change(
                HORIZON_CHANGED,
                Severity::Warning,
                format!("horizon {old} → {new} bars"),
                self.origin(|f| &f.code.horizon),
            )
        })
    }

    /// Each label threshold added, removed or changed, by name.
    fn thresholds(&self) -> Vec<Change> {
        let (old, new) = (&self.base.targets.thresholds, &self.head.targets.thresholds);
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        let show = |v: Option<&f64>| v.map_or("—".to_owned(), |v| v.to_string());
        keys.into_iter()
            .filter(|k| old.get(*k) != new.get(*k))
            .map(|k| {
                change(
                    THRESHOLD_CHANGED,
                    Severity::Warning,
                    format!("`{k}` {} → {}", show(old.get(k)), show(new.get(k))),
                    self.origin(|f| &f.code.thresholds),
                )
            })
            .collect()
    }

    /// The model and heads version bumps, each a note.
    fn version_bumps(&self) -> Vec<Change> {
        let model = self.model_bump.as_ref().map(|b| {
            change(
                VERSION_BUMPED,
                Severity::Note,
                b.clone(),
                self.origin(|f| &f.code.model_version),
            )
        });
        let heads = self.heads_bump.as_ref().map(|b| {
            change(
                VERSION_BUMPED,
                Severity::Note,
                b.clone(),
                self.origin(|f| &f.code.heads_version),
            )
        });
        model.into_iter().chain(heads).collect()
    }

    /// A version that changed without going up.
    fn version_went_back(&self) -> Option<Change> {
        let (base, head) = (self.base, self.head);
        let model_back = base.model_version != head.model_version && self.model_bump.is_none();
        let heads_back = base.heads_version != head.heads_version && self.heads_bump.is_none();
        (model_back || heads_back).then(|| {
            change(
                CONTRACT_CHANGED,
                Severity::Warning,
                format!(
                    "version went back: model {} → {}, heads {} → {}",
                    base.model_version, head.model_version, base.heads_version, head.heads_version
                ),
                self.origin(|f| &f.code.model_version),
            )
        })
    }
}

/// A contract's heads as `name:kind[shape]`, comma-separated.
fn show_heads(c: &PipelineContract) -> String {
    c.heads
        .iter()
        .map(|h| format!("{}:{}{:?}", h.name, h.kind, h.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The other top-level differences, in one warning.
fn contract_changed(base: &PipelineContract, head: &PipelineContract) -> Option<Change> {
    let others = other_differences(base, head);
    (!others.is_empty())
        .then(|| change(CONTRACT_CHANGED, Severity::Warning, others.join("; "), None))
}

/// The changes against a committed contract: a base written in an earlier contract format is read in
/// today's (a note says so), then classified like any other.
pub fn classify_committed(
    base: &Committed,
    head: &PipelineContract,
    facts: Option<&Facts>,
    docs_changed: &[String],
) -> Vec<Change> {
    let mut out = Vec::new();
    if base.format < CONTRACT_FORMAT {
        out.push(change(
            FORMAT_UPGRADED,
            Severity::Note,
            format!(
                "the base's contract is in format {} and was read as format {CONTRACT_FORMAT}; `plumbline docs --write` commits it in the new format",
                base.format
            ),
            None,
        ));
    }
    out.extend(classify(&base.contract, head, facts, docs_changed));
    out
}

/// Docs prose changed while the contract did not.
fn docs_only(docs_changed: &[String]) -> Change {
    change(
        DOCS_ONLY,
        Severity::Note,
        format!(
            "docs prose changed ({}); the contract did not",
            docs_changed.join(", ")
        ),
        None,
    )
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
        head.production_checkpoint.input_dim = head.production_checkpoint.input_dim.map(|d| d + 1);
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
