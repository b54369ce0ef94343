//! Gates: the plan's smoke tests. Each gate is a module with one entry point and its finding codes beside
//! it; it reads the contract and facts and returns findings. A gate never prints and never knows about
//! terminals or GitHub. Adding a gate touches its file, one line in [`GATES`], and its docs page.

pub mod checkpoint_inventory;
pub mod docs_drift;
pub mod feature_schema;

use crate::config::Loaded;
use crate::contract::PipelineContract;
use crate::error::Result;
use crate::facts::Facts;
use crate::finding::{Code, Finding};

/// What a gate reads.
pub struct Context<'a> {
    pub loaded: &'a Loaded,
    pub facts: &'a Facts,
    /// `None` when the contract could not be derived (a required checkpoint fact is missing); gates that
    /// need it must say so with a finding, never pass silently.
    pub contract: Option<&'a PipelineContract>,
}

/// What a gate returns: its findings and a one-line summary for the verdict table.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: String,
}

pub struct Gate {
    pub name: &'static str,
    /// The plan's script this gate implements, if any (docs/gates.md maps them).
    pub plan_script: Option<&'static str>,
    pub codes: &'static [Code],
    pub run: fn(&Context) -> Result<Report>,
}

/// Every gate, in the order `check` runs them.
pub const GATES: &[Gate] = &[
    checkpoint_inventory::GATE,
    feature_schema::GATE,
    docs_drift::GATE,
];

/// Every finding code of every gate.
pub fn all_codes() -> impl Iterator<Item = &'static Code> {
    GATES.iter().flat_map(|g| g.codes.iter())
}

pub fn find(name: &str) -> Option<&'static Gate> {
    GATES.iter().find(|g| g.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

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
