//! # contract-changes (versions, against the base branch)
//!
//! **What it does.** Compares this revision's contract with the docs contract committed at the base
//! revision (`--base REF`, or the pull request's base in `plumbline ci`; the merge base with HEAD where
//! the history has it) and classifies every change with a stable rule id: a feature removed, reordered,
//! added or retyped, or the NaN policy changed, without a model-version bump, and the head map changed
//! without a heads-version bump, are errors; with the bump each is an accepted breaking change, listed as
//! a note; threshold and horizon changes are warnings; docs prose alone is a note. Each finding is at
//! the code line of the fact. The changes also go to the pull-request summary as a table.
//!
//! **Why is this bad?** A checkpoint trained on the old feature order, loaded by code with the new one,
//! runs without an error and trades on shuffled inputs. The version numbers are how a team says "this
//! needs a new model"; a breaking change without the bump means nobody decided that.
//!
//! **Example.** Swapping `ret_5` and `ret_10` in `FEATURE_COLS` without changing `MODEL_VERSION`:
//! `feature-reordered` at the line of `ret_10` in `pipeline/features.py`, exit 1. With `MODEL_VERSION`
//! bumped: an accepted breaking change (note), exit 0.

use super::{Context, Gate, Id, Needs, Parts, Profile, Report};
use crate::changes;
use crate::error::Result;
use crate::finding::{Code, ContractKind, Finding, Location, Severity};

const fn code(
    id: &'static str,
    contract: ContractKind,
    severity: Severity,
    summary: &'static str,
) -> Code {
    Code {
        id,
        gate: "contract-changes",
        contract,
        severity,
        summary,
    }
}

use ContractKind::{Docs, FeatureVector, HeadMapping, TargetLabel};
use Severity::{Error, Note, Warning};

pub const FEATURE_REMOVED: Code = code(
    changes::FEATURE_REMOVED,
    FeatureVector,
    Error,
    "a feature was removed without a model-version bump",
);
pub const FEATURE_REORDERED: Code = code(
    changes::FEATURE_REORDERED,
    FeatureVector,
    Error,
    "features were reordered without a model-version bump",
);
pub const FEATURE_ADDED: Code = code(
    changes::FEATURE_ADDED,
    FeatureVector,
    Error,
    "a feature was added without a model-version bump",
);
pub const FEATURE_DTYPE_CHANGED: Code = code(
    changes::FEATURE_DTYPE_CHANGED,
    FeatureVector,
    Error,
    "a feature's dtype changed without a model-version bump",
);
pub const NAN_POLICY_CHANGED: Code = code(
    changes::NAN_POLICY_CHANGED,
    FeatureVector,
    Error,
    "the NaN policy changed without a model-version bump",
);
pub const WINDOW_CHANGED: Code = code(
    changes::WINDOW_CHANGED,
    FeatureVector,
    Error,
    "the model's input window changed without a model-version bump",
);
pub const HEAD_MAP_CHANGED: Code = code(
    changes::HEAD_MAP_CHANGED,
    HeadMapping,
    Error,
    "the head map changed without a heads-version bump",
);
pub const THRESHOLD_CHANGED: Code = code(
    changes::THRESHOLD_CHANGED,
    TargetLabel,
    Warning,
    "a label threshold changed",
);
pub const HORIZON_CHANGED: Code = code(
    changes::HORIZON_CHANGED,
    TargetLabel,
    Warning,
    "the label horizon changed",
);
pub const VERSION_BUMPED: Code = code(
    changes::VERSION_BUMPED,
    Docs,
    Note,
    "a model or heads version was bumped",
);
pub const DOCS_ONLY: Code = code(
    changes::DOCS_ONLY,
    Docs,
    Note,
    "only docs prose changed against the base",
);
pub const ACCEPTED: Code = code(
    changes::BREAKING_ACCEPTED,
    Docs,
    Note,
    "a breaking change that comes with its version bump",
);
pub const BASE_UNAVAILABLE: Code = code(
    "base-unavailable",
    Docs,
    Error,
    "the base revision cannot be read (not in this clone, not a git repository)",
);
pub const OTHER_CHANGED: Code = code(
    changes::CONTRACT_CHANGED,
    Docs,
    Warning,
    "other contract fields changed (production checkpoint, format, pipeline name)",
);
pub const FORMAT_UPGRADED: Code = code(
    changes::FORMAT_UPGRADED,
    Docs,
    Note,
    "the base's contract is in an earlier contract format, read in today's",
);
pub const BASE_CONTRACT_INVALID: Code = code(
    "base-contract-unreadable",
    Docs,
    Error,
    "the docs contract at the base revision does not parse",
);

const CODES: &[Code] = &[
    FEATURE_REMOVED,
    FEATURE_REORDERED,
    FEATURE_ADDED,
    FEATURE_DTYPE_CHANGED,
    NAN_POLICY_CHANGED,
    WINDOW_CHANGED,
    HEAD_MAP_CHANGED,
    THRESHOLD_CHANGED,
    HORIZON_CHANGED,
    VERSION_BUMPED,
    DOCS_ONLY,
    OTHER_CHANGED,
    ACCEPTED,
    FORMAT_UPGRADED,
    BASE_UNAVAILABLE,
    BASE_CONTRACT_INVALID,
];

pub const GATE: Gate = Gate {
    id: Id::ContractChanges,
    name: "contract-changes",
    plan_script: None,
    codes: CODES,
    needs: Needs {
        base: true,
        ..Needs::NOTHING
    },
    parts: Parts::Whole,
    profiles: &[Profile::PreLive],
    run,
};

/// The code of a change: its rule's, or "accepted" for a breaking change that came with its bump.
pub fn code_of(c: &changes::Change) -> &'static Code {
    if c.accepted {
        return &ACCEPTED;
    }
    CODES
        .iter()
        .find(|k| k.id == c.rule)
        .expect("every rule has a code")
}

pub fn run(cx: &Context) -> Result<Report> {
    let base = match cx.base {
        None => {
            return Ok(Report::skipped(
                "no base revision: pass --base REF (`plumbline ci` uses the pull request's base)",
            ));
        }
        Some(Err(e)) => {
            return Ok(Report::stopped(
                Finding::new(&BASE_UNAVAILABLE, e.clone()).help(
                    "fetch the base commit, or pass --base REF with a revision this clone has",
                ),
                "base unavailable",
            ));
        }
        Some(Ok(base)) => base,
    };
    let at_base = Location::file(format!("{}:{}", base.commit, base.json_path))
        .with_label(format!("the docs contract at the base {}", base.label()));
    match &base.contract {
        None => {
            return Ok(Report {
                summary: format!(
                    "no contract at the base {}: nothing to compare",
                    base.label()
                ),
                ..Report::default()
            });
        }
        Some(Err(e)) => {
            return Ok(Report::stopped(
                Finding::new(
                    &BASE_CONTRACT_INVALID,
                    format!("the docs contract at the base does not parse: {e}"),
                )
                .at(at_base),
                "base contract unreadable",
            ));
        }
        Some(Ok(_)) => {}
    }
    let Some(classified) = cx.changes else {
        // `check` classifies every readable base contract; a run without its changes has nothing to
        // compare, and says so.
        return Ok(Report::skipped("the base's contract was not classified"));
    };
    let list = &classified.changes;
    let findings: Vec<Finding> = list
        .iter()
        .map(|c| {
            let code = code_of(c);
            let message = if c.accepted {
                format!("accepted breaking change ({}): {}", c.rule, c.change)
            } else {
                c.change.clone()
            };
            Finding::new(code, message)
                .at_opt(c.location.clone())
                .related(at_base.clone())
        })
        .collect();
    let breaking = list.iter().filter(|c| c.accepted).count();
    Ok(Report {
        summary: format!(
            "{} against {}{}",
            crate::text::plural(list.len(), "change"),
            base.label(),
            if breaking > 0 {
                format!(" · {breaking} accepted breaking")
            } else {
                String::new()
            }
        ),
        findings,
        skipped: None,
    })
}
