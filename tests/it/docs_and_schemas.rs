//! Committed schemas equal the derived ones; committed docs and configs validate; every finding code
//! and every gate is documented.

use crate::util::{example, repo};

#[test]
fn committed_schemas_match_the_types() {
    use plumbline::cli::{SchemaName, schema};
    for (name, file) in [
        (SchemaName::Config, "plumbline.schema.json"),
        (SchemaName::Contract, "pipeline-contract.schema.json"),
        (SchemaName::Report, "report.schema.json"),
        (SchemaName::Ruleset, "ruleset.schema.json"),
        (SchemaName::RunManifest, "run-manifest.schema.json"),
        (SchemaName::AuditSummary, "audit-summary.schema.json"),
        (SchemaName::SurrogateRules, "surrogate-rules.schema.json"),
    ] {
        let committed = std::fs::read_to_string(repo().join("schemas").join(file)).unwrap();
        assert_eq!(
            committed,
            schema(name),
            "schemas/{file} is stale: run `cargo run -- schema {name:?}` (lowercase) > schemas/{file}"
        );
    }
}

#[test]
fn example_ruleset_validates_against_its_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/ruleset.schema.json")).unwrap(),
    )
    .unwrap();
    let text = std::fs::read_to_string(repo().join("examples/momentum/ruleset.toml")).unwrap();
    let value: serde_json::Value =
        serde_json::to_value(toml::from_str::<toml::Value>(&text).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(
        v.is_valid(&value),
        "{:?}",
        v.iter_errors(&value)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut bad = value.clone();
    bad["risk-gates"][0]["reads"] = serde_json::json!("model.vol_20");
    assert!(!v.is_valid(&bad), "`reads` has a pattern");
    bad = value.clone();
    bad["signal"]["enter-longg"] = serde_json::json!(0.5);
    assert!(!v.is_valid(&bad), "unknown keys are refused");
}

#[test]
fn example_config_validates_against_its_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/plumbline.schema.json")).unwrap(),
    )
    .unwrap();
    let toml_text = std::fs::read_to_string(example().join("plumbline.toml")).unwrap();
    let doc: serde_json::Value = toml::from_str(&toml_text).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // The schema rejects what the loader rejects.
    let bad: serde_json::Value =
        toml::from_str(&toml_text.replace("[docs]", "[docs]\nhtml = 1")).unwrap();
    assert!(!v.is_valid(&bad));
    let two_kinds: serde_json::Value = toml::from_str(&toml_text.replace(
        "name = \"MODEL_VERSION\"",
        "name = \"MODEL_VERSION\", toml = \"x\"",
    ))
    .unwrap();
    assert!(!v.is_valid(&two_kinds));
}

#[test]
fn every_code_is_in_docs_codes_md() {
    let text = std::fs::read_to_string(repo().join("docs/codes.md")).unwrap();
    for c in plumbline::gates::all_codes() {
        let row = format!(
            "| `{}` | {} | {} | {} |",
            c.id,
            c.gate,
            c.contract.as_str(),
            c.severity.as_str()
        );
        assert!(text.contains(&row), "docs/codes.md lacks the row {row}");
    }
}

/// The table of what each gate needs (docs/gates/README.md) is the registry's declarations, row for row.
#[test]
fn the_needs_table_is_the_registry() {
    let index = std::fs::read_to_string(repo().join("docs/gates/README.md")).unwrap();
    let table = index
        .split("<!-- needs:start -->\n")
        .nth(1)
        .and_then(|t| t.split("<!-- needs:end -->").next())
        .expect("docs/gates/README.md has no needs:start/needs:end markers");
    let mark = |b: bool| if b { "yes" } else { "—" };
    let mut want = String::from(
        "| gate | model | slice | base | commands | parts |\n|---|---|---|---|---|---|\n",
    );
    for g in plumbline::gates::GATES {
        want.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            g.name,
            mark(g.needs.engine),
            mark(g.needs.slice),
            mark(g.needs.base),
            mark(g.needs.commands),
            g.parts.as_str()
        ));
    }
    assert_eq!(
        table, want,
        "docs/gates/README.md: the needs table differs from the registry"
    );
}

#[test]
fn every_gate_is_documented_in_the_ruff_shape() {
    let index = std::fs::read_to_string(repo().join("docs/gates/README.md")).unwrap();
    for g in plumbline::gates::GATES {
        let page = format!("docs/gates/{}.md", g.name);
        let text =
            std::fs::read_to_string(repo().join(&page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(&format!("# {}", g.name)), "{page}: title");
        for heading in ["**What it does.**", "**Why is this bad?**", "**Example.**"] {
            assert!(text.contains(heading), "{page}: no {heading}");
        }
        for c in g.codes {
            assert!(
                text.contains(&format!("`{}`", c.id)),
                "{page}: code {} not mentioned",
                c.id
            );
        }
        assert!(
            index.contains(&format!("({}.md)", g.name)),
            "docs/gates/README.md does not link {page}"
        );
        if let Some(script) = g.plan_script {
            assert!(
                index.contains(script),
                "docs/gates/README.md does not map {script}"
            );
        }
    }
}
