//! SARIF 2.1.0 (OASIS), the format code-scanning tools read (GitHub code scanning, IDE viewers): one run,
//! plumbline as the tool with every finding code as a rule, one result per finding at its line, the
//! other lines of the same fact as related locations. Types from `serde-sarif` (generated from the
//! OASIS schema). No timestamps, no durations: the same inputs give the same bytes.
//!
//! A finding without a file (e.g. a model that could not be built) is a result without a location, which
//! SARIF allows; GitHub code scanning drops such results, so they stay visible in the other formats.

use std::collections::BTreeMap;

use serde_sarif::sarif::{
    ArtifactLocation, Location as SarifLocation, Message, MultiformatMessageString,
    PhysicalLocation, PropertyBag, Region, ReportingConfiguration, ReportingDescriptor,
    Result as SarifResult, ResultLevel, Run, Sarif, Tool, ToolComponent,
};

use crate::check::Outcome;
use crate::finding::{Code, Location, Severity};

/// The schema URI SARIF files name (OASIS's published location).
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn level(s: Severity) -> ResultLevel {
    match s {
        Severity::Error => ResultLevel::Error,
        Severity::Warning => ResultLevel::Warning,
        Severity::Note => ResultLevel::Note,
    }
}

/// A relative path as a URI reference (RFC 3986): every byte outside the unreserved set and `/`
/// percent-encoded, so `data/my slice#2.csv` is `data/my%20slice%232.csv` (SARIF §3.10.2).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn location(loc: &Location, id: Option<i64>) -> SarifLocation {
    let mut physical = PhysicalLocation::builder()
        .artifact_location(ArtifactLocation::builder().uri(uri(&loc.path)).build())
        .build();
    if let Some(line) = loc.line {
        let mut region = Region::builder().start_line(i64::from(line)).build();
        region.start_column = loc.column.map(i64::from);
        physical.region = Some(region);
    }
    let mut out = SarifLocation::builder().physical_location(physical).build();
    out.id = id;
    out.message = loc
        .label
        .as_ref()
        .map(|l| Message::builder().text(l.clone()).build());
    out
}

fn properties(pairs: Vec<(&str, serde_json::Value)>) -> PropertyBag {
    PropertyBag::builder()
        .additional_properties(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<BTreeMap<_, _>>(),
        )
        .build()
}

fn text(s: &str) -> MultiformatMessageString {
    MultiformatMessageString::builder()
        .text(s.to_owned())
        .build()
}

/// Rule `id` described by its code: summary, default level, docs page, gate and contract.
fn descriptor(id: &str, c: &Code) -> ReportingDescriptor {
    ReportingDescriptor::builder()
        .id(id.to_owned())
        .short_description(text(c.summary))
        .default_configuration(
            ReportingConfiguration::builder()
                .level(serde_json::to_value(level(c.severity)).expect("an enum"))
                .build(),
        )
        .help_uri(format!(
            "https://github.com/plumbline-dev/plumbline/blob/main/docs/gates/{}.md",
            c.gate
        ))
        .properties(properties(vec![
            ("gate", c.gate.into()),
            ("contract", c.contract.as_str().into()),
        ]))
        .build()
}

/// The SARIF log of an outcome. `codes` are the rules (every code plumbline has); a finding whose code
/// is not among them still gets a rule, without a description.
pub fn sarif(outcome: &Outcome, codes: &[Code]) -> Sarif {
    let mut rules: Vec<ReportingDescriptor> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut rule = |id: &str, code: Option<&Code>| -> i64 {
        if let Some(i) = ids.iter().position(|x| x == id) {
            return i as i64;
        }
        let descriptor = match code {
            Some(c) => descriptor(id, c),
            None => ReportingDescriptor::builder().id(id.to_owned()).build(),
        };
        ids.push(id.to_owned());
        rules.push(descriptor);
        (ids.len() - 1) as i64
    };
    for c in codes {
        rule(c.id, Some(c));
    }
    let results: Vec<SarifResult> = outcome
        .findings
        .iter()
        .map(|f| {
            let index = rule(f.code.id, None);
            let message = crate::render::full_message(f);
            let mut props = vec![
                ("gate", f.gate().into()),
                ("contract", f.contract().as_str().into()),
            ];
            if let Some(d) = &f.diff {
                props.push(("diff", d.clone().into()));
            }
            let related: Vec<SarifLocation> = f
                .related
                .iter()
                .enumerate()
                .map(|(i, l)| location(l, Some(i as i64 + 1)))
                .collect();
            let mut result = SarifResult::builder()
                .rule_id(f.code.id)
                .rule_index(index)
                .level(level(f.severity))
                .message(Message::builder().text(message).build())
                .properties(properties(props))
                .build();
            result.locations = f.location.as_ref().map(|l| vec![location(l, None)]);
            if !related.is_empty() {
                result.related_locations = Some(related);
            }
            result
        })
        .collect();
    let driver = ToolComponent::builder()
        .name("plumbline")
        .version(env!("CARGO_PKG_VERSION"))
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://github.com/plumbline-dev/plumbline")
        .rules(rules)
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .results(results)
        .build();
    Sarif::builder()
        .schema(SCHEMA_URI)
        .version(serde_json::Value::from("2.1.0"))
        .runs(vec![run])
        .build()
}

pub fn render(outcome: &Outcome, codes: &[Code]) -> String {
    let value = serde_json::to_value(sarif(outcome, codes)).expect("SARIF is plain JSON");
    crate::canonical::to_string(&value).expect("SARIF holds no non-finite numbers")
}

/// `--format sarif`.
pub struct Renderer;

impl crate::render::Render for Renderer {
    /// (SARIF carries levels, not a verdict: `fail_on` does not change it.)
    fn render(&self, outcome: &Outcome, _fail_on: Severity) -> String {
        let codes: Vec<Code> = crate::gates::all_codes().copied().collect();
        render(outcome, &codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_are_percent_encoded() {
        assert_eq!(uri("pipeline/features.py"), "pipeline/features.py");
        assert_eq!(uri("data/my slice#2.csv"), "data/my%20slice%232.csv");
        assert_eq!(uri("données/é.csv"), "donn%C3%A9es/%C3%A9.csv");
        assert_eq!(uri("a%b?c"), "a%25b%3Fc");
    }

    #[test]
    fn results_rules_and_locations() {
        let o = crate::render::sample_outcome();
        let codes = crate::render::sample_codes().map(|c| *c);
        let text = render(&o, &codes[..1]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], "2.1.0");
        let run = &v["runs"][0];
        assert_eq!(run["tool"]["driver"]["name"], "plumbline");
        // The code passed in is rule 0; the other finding's code was added after it.
        assert_eq!(
            run["tool"]["driver"]["rules"][0]["id"],
            "feature-order-mismatch"
        );
        assert_eq!(
            run["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"],
            "error"
        );
        assert_eq!(run["tool"]["driver"]["rules"][1]["id"], "docs-drift");
        let r0 = &run["results"][0];
        assert_eq!(r0["ruleId"], "feature-order-mismatch");
        assert_eq!(r0["ruleIndex"], 0);
        assert_eq!(r0["level"], "error");
        assert_eq!(
            r0["locations"][0]["physicalLocation"],
            serde_json::json!({"artifactLocation": {"uri": "no/such/features.py"}, "region": {"startLine": 9}})
        );
        assert_eq!(
            r0["relatedLocations"][0]["message"]["text"],
            "checkpoint key `feature_cols`"
        );
        assert!(
            r0["message"]["text"]
                .as_str()
                .unwrap()
                .ends_with("2 of 14 positions differ\nhelp: build rows by name")
        );
        assert_eq!(run["results"][1]["ruleIndex"], 1);
        assert_eq!(run["results"][1]["level"], "warning");
        assert_eq!(text, render(&o, &codes[..1]), "deterministic");
        assert!(!text.contains("duration") && !text.contains("Time"));
    }
}
