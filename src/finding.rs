//! Findings are data: a stable code, the contract it belongs to, a severity, a message and the lines it is
//! about. Gates push them; renderers and publishers read them and know nothing about gates.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Note < Warning < Error`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The six contracts of the pipeline (docs/codes.md names the contract of each code); every finding belongs to one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ContractKind {
    FeatureVector,
    TargetLabel,
    HeadMapping,
    Checkpoint,
    Interpretation,
    Docs,
}

impl ContractKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContractKind::FeatureVector => "feature-vector",
            ContractKind::TargetLabel => "target-label",
            ContractKind::HeadMapping => "head-mapping",
            ContractKind::Checkpoint => "checkpoint",
            ContractKind::Interpretation => "interpretation",
            ContractKind::Docs => "docs",
        }
    }
}

/// A finding code: a stable kebab-case id with its gate, contract and default severity. Each gate declares
/// its codes beside its entry point; [`crate::gates::all_codes`] lists them all (and `docs/codes.md` is
/// checked against that list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub id: &'static str,
    pub gate: &'static str,
    pub contract: ContractKind,
    pub severity: Severity,
    pub summary: &'static str,
}

/// A place in a file. Paths are as the user would type them from the working directory the tool ran in
/// (the config's directory joined with the config-relative path), with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// What this location is in the finding, e.g. "contract source: FEATURE_COLS".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl Location {
    pub fn file(path: impl Into<String>) -> Self {
        Location {
            path: path.into(),
            line: None,
            column: None,
            label: None,
        }
    }

    pub fn at(path: impl Into<String>, line: u32) -> Self {
        Location {
            path: path.into(),
            line: Some(line),
            column: None,
            label: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        Ok(())
    }
}

/// One thing a gate found. It holds the declared [`Code`] itself, so its gate and contract cannot disagree
/// with the code; the severity starts at the code's default and may be overridden by the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: &'static Code,
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    pub related: Vec<Location>,
    pub help: Option<String>,
    pub notes: Vec<String>,
    pub diff: Option<String>,
}

// A finding as JSON carries it: the code by its id, with its gate and contract spelled out for readers.
// [`Finding::from_wire`] reads it back by id. (The doc line below is the schema's description.)
/// One thing a gate found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Finding")]
pub struct Wire {
    pub code: String,
    pub gate: String,
    pub contract: ContractKind,
    pub severity: Severity,
    pub message: String,
    /// The line that must change, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Other lines of the same fact (the contract's source, the docs line, the checkpoint key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Location>,
    /// How to fix it, often the exact command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Extra lines shown verbatim after the message (e.g. "first differing index: 3").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A unified diff, for drift findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            code: self.code.id.to_owned(),
            gate: self.code.gate.to_owned(),
            contract: self.code.contract,
            severity: self.severity,
            message: self.message.clone(),
            location: self.location.clone(),
            related: self.related.clone(),
            help: self.help.clone(),
            notes: self.notes.clone(),
            diff: self.diff.clone(),
        }
        .serialize(s)
    }
}

impl JsonSchema for Finding {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Wire::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Wire::json_schema(generator)
    }
}

impl Code {
    /// The stable id, as findings carry it in every output format.
    pub fn as_str(&self) -> &'static str {
        self.id
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

/// `f.code == "docs-drift"`: a code compares equal to its id.
impl PartialEq<&str> for &Code {
    fn eq(&self, id: &&str) -> bool {
        self.id == *id
    }
}

impl Finding {
    pub fn new(code: &'static Code, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: code.severity,
            message: message.into(),
            location: None,
            related: Vec::new(),
            help: None,
            notes: Vec::new(),
            diff: None,
        }
    }

    /// Reads a finding back from its JSON form, looking its code up by id (`lookup` is the registry's,
    /// [`crate::gates::code`]); an unknown id, or a gate or contract that is not the code's, is an error.
    pub fn from_wire(
        w: Wire,
        lookup: impl Fn(&str) -> Option<&'static Code>,
    ) -> Result<Self, String> {
        let code = lookup(&w.code).ok_or_else(|| format!("unknown finding code `{}`", w.code))?;
        if code.gate != w.gate || code.contract != w.contract {
            return Err(format!(
                "finding code `{}` belongs to gate `{}` ({} contract), not `{}` ({})",
                code.id,
                code.gate,
                code.contract.as_str(),
                w.gate,
                w.contract.as_str()
            ));
        }
        Ok(Finding {
            code,
            severity: w.severity,
            message: w.message,
            location: w.location,
            related: w.related,
            help: w.help,
            notes: w.notes,
            diff: w.diff,
        })
    }

    pub fn gate(&self) -> &'static str {
        self.code.gate
    }

    pub fn contract(&self) -> ContractKind {
        self.code.contract
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn at_opt(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn related(mut self, location: Location) -> Self {
        self.related.push(location);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn diff(mut self, diff: impl Into<String>) -> Self {
        self.diff = Some(diff.into());
        self
    }
}

/// Counts per severity, for summaries and exit codes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
}

impl Counts {
    pub fn of(findings: &[Finding]) -> Self {
        let mut c = Counts::default();
        for f in findings {
            match f.severity {
                Severity::Error => c.errors += 1,
                Severity::Warning => c.warnings += 1,
                Severity::Note => c.notes += 1,
            }
        }
        c
    }
}
