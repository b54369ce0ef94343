//! Source pointers: where one fact lives (a constant in code, a key in a file or a checkpoint, a command).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a fact lives. Exactly one of `python`, `rust`, `toml`, `json`, `yaml`, `checkpoint`, `command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum Source {
    /// A module-level constant in a Python file, read with a parser (never imported).
    Python { python: String, name: String },
    /// A `const` or `static` item in a Rust file.
    Rust { rust: String, name: String },
    /// A dotted key path in a TOML file.
    Toml { toml: String, key: String },
    /// A dotted key path in a JSON file.
    Json { json: String, key: String },
    /// A dotted key path in a YAML file (one document; anchors, aliases and merge keys resolved; plain
    /// scalars typed as PyYAML's `safe_load` types them).
    Yaml { yaml: String, key: String },
    /// A dotted key path inside a checkpoint: `"production"` or a path.
    Checkpoint { checkpoint: String, key: String },
    /// A command (argv, run in the config's directory) that prints JSON; `key` selects inside it.
    Command {
        command: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default = "default_timeout", rename = "timeout-secs")]
        timeout_secs: u64,
    },
}

fn default_timeout() -> u64 {
    30
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Source::try_from(RawSource::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The permissive shape a source is first read into, so a wrong combination gets a precise message
/// (with the TOML position) instead of serde's "did not match any variant".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSource {
    python: Option<String>,
    rust: Option<String>,
    toml: Option<String>,
    json: Option<String>,
    yaml: Option<String>,
    checkpoint: Option<String>,
    command: Option<Vec<String>>,
    name: Option<String>,
    key: Option<String>,
    timeout_secs: Option<u64>,
}

impl TryFrom<RawSource> for Source {
    type Error = String;

    fn try_from(r: RawSource) -> std::result::Result<Self, String> {
        let kinds = [
            r.python.is_some(),
            r.rust.is_some(),
            r.toml.is_some(),
            r.json.is_some(),
            r.yaml.is_some(),
            r.checkpoint.is_some(),
            r.command.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err("a source needs exactly one of `python`, `rust`, `toml`, `json`, `yaml`, `checkpoint`, `command`".into());
        }
        let need = |field: Option<String>, what: &str, kind: &str| {
            field.ok_or_else(|| format!("a `{kind}` source needs `{what}`"))
        };
        let no = |field: &Option<String>, what: &str, kind: &str| match field {
            Some(_) => Err(format!("a `{kind}` source takes no `{what}`")),
            None => Ok(()),
        };
        if r.timeout_secs.is_some() && r.command.is_none() {
            return Err("`timeout-secs` only applies to `command` sources".into());
        }
        if let Some(python) = r.python {
            no(&r.key, "key", "python")?;
            return Ok(Source::Python {
                python,
                name: need(r.name, "name", "python")?,
            });
        }
        if let Some(rust) = r.rust {
            no(&r.key, "key", "rust")?;
            return Ok(Source::Rust {
                rust,
                name: need(r.name, "name", "rust")?,
            });
        }
        no(&r.name, "name", "toml/json/yaml/checkpoint/command")?;
        if let Some(toml) = r.toml {
            return Ok(Source::Toml {
                toml,
                key: need(r.key, "key", "toml")?,
            });
        }
        if let Some(json) = r.json {
            return Ok(Source::Json {
                json,
                key: need(r.key, "key", "json")?,
            });
        }
        if let Some(yaml) = r.yaml {
            return Ok(Source::Yaml {
                yaml,
                key: need(r.key, "key", "yaml")?,
            });
        }
        if let Some(checkpoint) = r.checkpoint {
            return Ok(Source::Checkpoint {
                checkpoint,
                key: need(r.key, "key", "checkpoint")?,
            });
        }
        let command = r.command.unwrap_or_default();
        if command.is_empty() {
            return Err("a `command` source needs a non-empty argv list".into());
        }
        Ok(Source::Command {
            command,
            key: r.key,
            timeout_secs: r.timeout_secs.unwrap_or_else(default_timeout),
        })
    }
}
