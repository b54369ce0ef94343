//! `plumbline init`: a starting config for a pipeline plumbline has never seen. It scans the config's
//! directory ([`scan`]: Python constants, YAML/TOML/JSON keys, checkpoints with their sidecars and
//! MLflow `MLmodel`), picks the facts ([`guess`]) and writes a commented `plumbline.toml` that says for
//! each fact where it was found, or that it was not and what that costs. It never overwrites a file
//! without `force`. The command line then writes the docs and runs `check` (docs/init.md).

mod arch;
mod guess;
mod scan;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::keypath::Kind;
use crate::paths::display_path;
use scan::{Found, Place};

/// Where the docs go unless the repository already has them elsewhere.
pub const DOCS_JSON: &str = "docs/PIPELINE_CONTRACT.json";
pub const DOCS_MD: &str = "docs/PIPELINE_CONTRACT.md";

/// What `init` wrote and what it could not find.
pub struct Report {
    pub config: PathBuf,
    /// One line per fact: `features.columns  configs/train.yaml: features`.
    pub found: Vec<String>,
    /// What is not configured, each with the line that would configure it.
    pub missing: Vec<String>,
    /// Files the scan could not parse.
    pub skipped: Vec<(String, String)>,
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The source pointer for a found value, as an inline TOML table.
fn source(f: &Found) -> String {
    match &f.place {
        Place::Python(file, name) => format!("{{ python = {}, name = {} }}", q(file), q(name)),
        Place::Key(file, kind, key) => {
            let k = match kind {
                Kind::Toml => "toml",
                Kind::Json => "json",
                Kind::Yaml => "yaml",
            };
            format!("{{ {k} = {}, key = {} }}", q(file), q(key))
        }
    }
}

fn shown(f: &Found) -> String {
    match &f.place {
        Place::Python(file, name) => format!("{file}: {name}"),
        Place::Key(file, _, key) => format!("{file}: {key}"),
    }
}

/// Writes the config text, collecting the report's lines.
struct Writer<'r> {
    text: String,
    report: &'r mut Report,
}

impl Writer<'_> {
    /// `field = <source>` with a comment saying where it was found, or the commented line to add and
    /// what holds meanwhile.
    fn fact(&mut self, section: &str, field: &str, chosen: Option<&guess::Chosen>, absent: &str) {
        let full = format!("{section}.{field}");
        match chosen {
            Some(c) => {
                let mut also = String::new();
                if !c.others.is_empty() {
                    let others: Vec<String> = c.others.iter().map(|o| shown(o)).collect();
                    also = format!("; also looked like it: {}", others.join(", "));
                }
                let _ = writeln!(self.text, "# found in {}{also}", shown(c.found));
                let _ = writeln!(self.text, "{field} = {}", source(c.found));
                self.report
                    .found
                    .push(format!("{full:<34} {}", shown(c.found)));
            }
            None => {
                let _ = writeln!(self.text, "# not found: {absent}");
                let line = format!("{field} = {{ yaml = \"<file>\", key = \"<key>\" }}");
                let _ = writeln!(self.text, "# {line}");
                self.report
                    .missing
                    .push(format!("{full}: {absent}; add under [{section}]: {line}"));
            }
        }
    }
}

/// Scan the config's directory and write the config. Fails (nothing written) when the config exists
/// and `force` is not set, or when no checkpoint plumbline can read is found.
pub fn write_config(config: &Path, force: bool) -> Result<Report> {
    if config.exists() && !force {
        return Err(Error::msg(format!(
            "{}: already exists; `plumbline init` never overwrites a file (pass --force to replace it)",
            display_path(config)
        )));
    }
    let root = match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let config_name = config
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let exclude = vec![config_name, DOCS_JSON.to_owned()];
    let found = scan::scan(&root, &exclude);
    let production = production(&found, &root)?;
    let trained_on = guess::checkpoint_features(production);
    let stated_version = production
        .info
        .as_ref()
        .and_then(|i| i.get("model_version"))
        .and_then(crate::facts::version);
    let code = guess::code(&found, trained_on.as_deref(), stated_version.as_deref());
    let n = code
        .columns
        .as_ref()
        .and_then(|c| guess::feature_list(&c.found.value))
        .or(trained_on.clone())
        .map(|l| l.len());
    let mut keys = guess::checkpoint_keys(production, n);
    if let Some(info) = &production.info {
        let default = crate::config::CheckpointKeys::default().state_dict;
        if let Some(k) = arch::state_dict_key(info, &default) {
            keys.push(("state-dict", k));
        }
    }
    let mut report = Report {
        config: config.to_path_buf(),
        found: Vec::new(),
        missing: Vec::new(),
        skipped: found.skipped.clone(),
    };
    if found.truncated {
        report.skipped.push((
            display_path(&root),
            "the scan stopped after 20000 files; facts in the rest were not looked for".to_owned(),
        ));
    }
    let name = std::fs::canonicalize(&root)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "pipeline".to_owned());
    let features: Vec<String> = code
        .columns
        .as_ref()
        .and_then(|c| guess::feature_list(&c.found.value))
        .or(trained_on)
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let later = Later {
        slice: guess::slice_file(&found, &features),
        reference: guess::reference_file(&found),
    };
    let text = config_text(&name, &code, production, &keys, &later, &mut report);
    // The one gap that stops a gate comes first.
    if let Some(line) = n
        .and_then(|n| arch_line(production, n as u64))
        .or_else(|| helper_line(production))
    {
        report.missing.insert(0, line);
    }
    crate::paths::atomic_write(config, &text)?;
    Ok(report)
}

/// When the production checkpoint's `arch` is not one the native engine builds (a bare state dict, or
/// a team's own description), the keys to add beside it, read off its tensors.
fn arch_line(production: &scan::Checkpoint, n: u64) -> Option<String> {
    let info = production.info.as_ref()?;
    let keys = crate::config::CheckpointKeys::default();
    if crate::engine::arch::Arch::read(info, &keys).is_ok() {
        return None;
    }
    let chain = arch::chain(info, &keys.state_dict, n)?;
    let sidecar = sidecar(production, info);
    let layers: Vec<String> = chain.layers.iter().map(|l| format!("\"{l}\"")).collect();
    let widths: Vec<String> = chain.widths.iter().map(u64::to_string).collect();
    Some(format!(
        "arch: the native engine (forward-contract) needs the layers by their state-dict names; read off the tensors ({} Linear layers, widths {}), add to `arch` in {sidecar}: \"type\": \"mlp\", \"input_dim\": {}, \"layers\": [{}], \"heads\": [{{\"name\": \"output\", \"layer\": \"{}\"}}], \"hidden\": [{}], \"activation\": the one between the layers (relu, tanh, …: tensors cannot show it)",
        chain.widths.len() - 1,
        widths.join(" → "),
        chain.widths[0],
        layers.join(", "),
        chain.head,
        widths[1..widths.len() - 1].join(", "),
    ))
}

/// When the production checkpoint's `arch` is missing or unreadable and its tensors are not a plain
/// Linear chain (a BatchNorm, a LayerNorm): where to write `arch` from, since the tensors cannot
/// show the order of layers without tensors (activations, Dropout).
fn helper_line(production: &scan::Checkpoint) -> Option<String> {
    let info = production.info.as_ref()?;
    let keys = crate::config::CheckpointKeys::default();
    if info.format == crate::checkpoint::Format::Pickle
        || crate::engine::arch::Arch::read(info, &keys).is_ok()
    {
        return None;
    }
    let sidecar = sidecar(production, info);
    Some(format!(
        "arch: the native engine (forward-contract) needs the model's layers in order; write them from the module with python/plumbline_torch.py (`pt.arch(model, trunk=\"<the nn.Sequential>\", heads={{...}})`) into {} (docs/checkpoint-metadata.md#the-arch-format); `plumbline inventory --tensors` lists the state dict's modules",
        sidecar
    ))
}

/// Where `arch` goes beside the production checkpoint: its sidecar, else `{stem}.json`.
fn sidecar(production: &scan::Checkpoint, info: &crate::checkpoint::CheckpointInfo) -> String {
    info.metadata
        .iter()
        .find(|l| l.what == "sidecar")
        .map_or_else(
            || display_path(&Path::new(&production.rel).with_extension("json")),
            |l| l.display.clone(),
        )
}

/// The production checkpoint: of those plumbline reads (not ONNX), the one whose metadata states the
/// most facts; the first path breaks ties.
fn production<'s>(found: &'s scan::Scan, root: &Path) -> Result<&'s scan::Checkpoint> {
    found
        .checkpoints
        .iter()
        .filter(|c| c.info.is_some() && !c.rel.ends_with(".onnx"))
        .max_by_key(|c| {
            // A test fixture or an example is never the production model, however complete.
            let aside = c.rel.split('/').any(|d| {
                matches!(
                    d,
                    "tests" | "test" | "fixtures" | "examples" | "example" | "docs"
                )
            });
            (
                !aside,
                guess::checkpoint_keys(c, None).len(),
                std::cmp::Reverse(c.rel.clone()),
            )
        })
        .ok_or_else(|| {
            let unreadable: Vec<String> = found
                .checkpoints
                .iter()
                .filter_map(|c| c.unreadable.as_ref().map(|u| format!("{}: {u}", c.rel)))
                .collect();
            Error::msg(format!(
                "{}: no checkpoint plumbline can read was found (looked for {}){}; `plumbline init` needs the production checkpoint",
                match display_path(root) {
                    d if d.is_empty() => ".".to_owned(),
                    d => d,
                },
                scan::CHECKPOINT_EXTS
                    .iter()
                    .map(|e| format!("*.{e}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                if unreadable.is_empty() {
                    String::new()
                } else {
                    format!("; unreadable: {}", unreadable.join("; "))
                }
            ))
        })
}

/// How a fact the code does not have is written: required ones fall back to the checkpoint's key (the
/// `[checkpoints.keys]` field named here), optional ones say their default.
enum Absent {
    FromCheckpoint(&'static str),
    Default(&'static str),
}

/// Every fact of the code in the order the config lists them: (section, field, where it was found,
/// what holds when it was not).
type FactRow<'c> = (
    &'static str,
    &'static str,
    Option<&'c guess::Chosen<'c>>,
    Absent,
);

fn fact_table<'c>(code: &'c guess::Code<'c>) -> [FactRow<'c>; 12] {
    use Absent::{Default, FromCheckpoint};
    [
        (
            "model",
            "version",
            code.version.as_ref(),
            FromCheckpoint("model-version"),
        ),
        (
            "model",
            "heads-version",
            code.heads_version.as_ref(),
            Default("heads version \"not stated\""),
        ),
        (
            "model",
            "heads",
            code.heads.as_ref(),
            Default("one regression output (`output`, size 1)"),
        ),
        (
            "features",
            "columns",
            code.columns.as_ref(),
            FromCheckpoint("feature-cols"),
        ),
        (
            "features",
            "dtypes",
            code.dtypes.as_ref(),
            Default("float32 for every feature"),
        ),
        (
            "features",
            "nan-policy",
            code.nan_policy.as_ref(),
            Default("NaN policy \"not stated\""),
        ),
        (
            "targets",
            "horizon",
            code.horizon.as_ref(),
            FromCheckpoint("horizon"),
        ),
        (
            "targets",
            "thresholds",
            code.thresholds.as_ref(),
            Default("no thresholds (a regression target)"),
        ),
        (
            "scaler",
            "kind",
            code.scaler_kind.as_ref(),
            Default("the kind the checkpoint states (or robust)"),
        ),
        (
            "scaler",
            "factor",
            code.factor.as_ref(),
            Default("the checkpoint's factor, else 1"),
        ),
        (
            "scaler",
            "epsilon",
            code.epsilon.as_ref(),
            Default("the checkpoint's epsilon, else 0"),
        ),
        (
            "scaler",
            "clip",
            code.clip.as_ref(),
            Default("the checkpoint's clip, else none"),
        ),
    ]
}

/// The config file's text.
fn config_text(
    name: &str,
    code: &guess::Code,
    production: &scan::Checkpoint,
    keys: &[(&'static str, String)],
    later: &Later,
    report: &mut Report,
) -> String {
    let mut w = Writer {
        text: String::new(),
        report,
    };
    let _ = writeln!(
        w.text,
        "# Written by `plumbline init`: every fact is a pointer to where it lives (docs/config.md).\n# Each line says where plumbline found the fact, or that it did not and what holds meanwhile.\n\n[pipeline]\nname = {}",
        q(name)
    );
    let from_checkpoint = |field: &str| {
        keys.iter()
            .find(|(f, _)| *f == field)
            .map(|(_, k)| format!("{{ checkpoint = \"production\", key = {} }}", q(k)))
    };
    use Absent::{Default, FromCheckpoint};
    let facts = fact_table(code);
    let mut section = "";
    for (sec, field, chosen, absent) in &facts {
        if *sec != section {
            section = sec;
            let _ = writeln!(w.text, "\n[{sec}]");
        }
        match absent {
            FromCheckpoint(key) => required(&mut w, sec, field, *chosen, from_checkpoint(key)),
            Default(means) => w.fact(sec, field, *chosen, means),
        }
    }
    checkpoints_text(&mut w, production, keys);
    let _ = writeln!(
        w.text,
        "\n[docs]\njson = {}\nmarkdown = [{}]",
        q(DOCS_JSON),
        q(DOCS_MD)
    );
    later.write(&mut w);
    w.text
}

/// The model gates' inputs `init` found: a CSV holding every feature column (the slice), a JSON of
/// reference outputs (`rows` of `scaled` and `outputs`).
struct Later {
    slice: Option<String>,
    reference: Option<String>,
}

impl Later {
    fn write(&self, w: &mut Writer) {
        if let Some(slice) = &self.slice {
            let _ = writeln!(
                w.text,
                "\n# Found by init: a table with every feature column. The model gates run on its rows.\n[slice]\nfeatures = {}",
                q(slice)
            );
            w.report.found.push(format!("slice.features  {slice}"));
        }
        if let Some(reference) = &self.reference {
            let _ = writeln!(
                w.text,
                "\n# Found by init: PyTorch's outputs on scaled rows (python/plumbline_torch.py writes them).\n[gates.forward-contract]\nreference = {}",
                q(reference)
            );
            w.report
                .found
                .push(format!("gates.forward-contract.reference  {reference}"));
        }
        let later: String = LATER
            .lines()
            .filter(|l| self.slice.is_none() || !l.starts_with("# [slice]"))
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = write!(w.text, "{later}");
        let mut missing: Vec<String> = LATER_MISSING
            .iter()
            .filter(|l| self.slice.is_none() || !l.starts_with("[slice]"))
            .map(|s| (*s).to_owned())
            .collect();
        if self.reference.is_none() {
            missing.push(REFERENCE_MISSING.to_owned());
        }
        w.report.missing.extend(missing);
    }
}

const REFERENCE_MISSING: &str = "[gates.forward-contract] reference = \"<outputs.json>\": PyTorch's outputs on scaled rows, which `check --profile pre-live` requires for the native engine (an activation or a slope leaves the tensors unchanged); python/plumbline_torch.py `write_reference` writes them (docs/gates/forward-contract.md)";

/// A fact the config requires: the code's, else the checkpoint's (with the warning that costs), else
/// a placeholder the user must fill (`check` then names the file it cannot find).
fn required(
    w: &mut Writer,
    section: &str,
    field: &str,
    chosen: Option<&guess::Chosen>,
    checkpoint: Option<String>,
) {
    if chosen.is_some() {
        w.fact(section, field, chosen, "");
        return;
    }
    let full = format!("{section}.{field}");
    let (line, why) = match checkpoint {
        Some(src) => (
            format!("{field} = {src}"),
            "not found in the code: read from the checkpoint, so the code ↔ checkpoint comparison of it means nothing (fact-from-checkpoint); point it at the code",
        ),
        None => (
            format!("{field} = {{ yaml = \"<file>\", key = \"<key>\" }}"),
            "not found anywhere: required; replace the placeholder",
        ),
    };
    let _ = writeln!(w.text, "# {why}\n{line}");
    w.report.missing.push(format!("{full}: {why}: {line}"));
}

fn checkpoints_text(
    w: &mut Writer,
    production: &scan::Checkpoint,
    keys: &[(&'static str, String)],
) {
    let rel = &production.rel;
    // Glob metacharacters in a directory name match themselves only in brackets.
    let escape = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '[' | ']' | '*' | '?' => format!("[{c}]"),
                c => c.to_string(),
            })
            .collect()
    };
    let ext = rel.rsplit('.').next().unwrap_or("pt");
    let glob = match rel.rsplit_once('/') {
        Some((dir, _)) => format!("{}/*.{}", escape(dir), escape(ext)),
        None => format!("*.{}", escape(ext)),
    };
    let info = production.info.as_ref().expect("production is readable");
    let beside: Vec<&str> = info.metadata.iter().map(|l| l.display.as_str()).collect();
    let _ = writeln!(
        w.text,
        "\n[checkpoints]\n# {} ({}){}\nglobs = [{}]\nproduction = {}",
        rel,
        info.format.as_str(),
        if beside.is_empty() {
            " with no metadata beside it".to_owned()
        } else {
            format!(", metadata in {}", beside.join(", "))
        },
        q(&glob),
        q(rel)
    );
    let defaults =
        serde_json::to_value(crate::config::CheckpointKeys::default()).unwrap_or_default();
    let differ: Vec<&(&str, String)> = keys
        .iter()
        .filter(|(f, k)| defaults.get(*f).and_then(|d| d.as_str()) != Some(k.as_str()))
        .collect();
    if !differ.is_empty() {
        let _ = writeln!(
            w.text,
            "\n# Where the checkpoint's metadata keeps each fact (docs/checkpoint-metadata.md).\n[checkpoints.keys]"
        );
        for (f, k) in differ {
            let _ = writeln!(w.text, "{f} = {}", q(k));
            w.report
                .found
                .push(format!("{:<34} {k}", format!("checkpoints.keys.{f}")));
        }
    }
}

/// The sections `init` cannot find: they name the pipeline's own commands and data.
const LATER: &str = r#"
# Not configured yet: each runs more gates (docs/config.md, docs/commands.md).
# [slice]          the reference rows the model gates run on: features = "<file.csv|parquet>"
# [data]           the raw prices the builders and label-definition read: prices = "<file.csv>"
# [builders]       the feature builders (training, backtest, live) as commands: feature-parity, leakage
# [inference]      the backtest and live inference paths as commands: inference-parity
# [ruleset]        the trading rules: ruleset-smoke, interpretation-parity
"#;

const LATER_MISSING: &[&str] = &[
    "[slice]: features = \"<rows.csv>\" (reference feature rows) runs output-distribution and forward-contract on real rows; with it, [gates.norm-stats] recompute = true recomputes the scaler's statistics (without it a wrong but positive MAD passes)",
    "[builders] and [data]: the feature builders as commands run feature-parity and leakage (docs/commands.md)",
    "[inference]: the backtest and live inference paths as commands run inference-parity",
];
