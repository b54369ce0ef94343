//! The model architecture a checkpoint describes in its `arch` key (docs/checkpoint-metadata.md). Read
//! without burn, so the static gates can check it in every build; the native engine builds from it.

use crate::checkpoint::{CheckpointInfo, TensorInfo, Tree};
use crate::config::CheckpointKeys;
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;

/// The activation between trunk layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    Gelu,
    Silu,
    Identity,
}

impl Activation {
    pub const NAMES: &'static [&'static str] =
        &["relu", "tanh", "sigmoid", "gelu", "silu", "identity"];

    pub fn parse(s: &str) -> Option<Activation> {
        Some(match s {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "gelu" => Activation::Gelu,
            "silu" => Activation::Silu,
            "identity" | "linear" => Activation::Identity,
            _ => return None,
        })
    }
}

/// A head's output layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchHead {
    pub name: String,
    /// State-dict module name of the head's Linear layer (`heads.direction`).
    pub layer: String,
}

/// An MLP: `layers` (Linear, activation after each) then one Linear per head on the last hidden layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch {
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// State-dict module names of the trunk's Linear layers, in order (`trunk.0`, `trunk.2`).
    pub layers: Vec<String>,
    pub heads: Vec<ArchHead>,
}

impl Arch {
    /// Parse the checkpoint's `arch`. Every problem is an error naming the checkpoint and the key.
    pub fn read(info: &CheckpointInfo, keys: &CheckpointKeys) -> Result<Arch> {
        let display = display_path(&info.path);
        let err = |key: &str, msg: String| {
            Error::at(
                Location::file(&display)
                    .with_label(format!("checkpoint key `{}.{key}`", keys.arch)),
                format!("`{}.{key}` {msg}", keys.arch),
            )
        };
        let arch = info.get(&keys.arch).ok_or_else(|| {
            Error::at(
                Location::file(&display).with_label(format!("checkpoint key `{}`", keys.arch)),
                format!(
                    "the checkpoint has no `{}`: the native engine builds the model from it (docs/checkpoint-metadata.md)",
                    keys.arch
                ),
            )
        })?;
        let field = |k: &str| arch.get(k).ok_or_else(|| err(k, "is missing".into()));
        match field("type")?.as_str() {
            Some("mlp") => {}
            Some(other) => {
                return Err(err(
                    "type",
                    format!(
                        "is `{other}`; the native engine runs `mlp` (use the command engine for other models)"
                    ),
                ));
            }
            None => return Err(err("type", "must be a string".into())),
        }
        let usize_of = |v: &Tree, k: &str| -> Result<usize> {
            v.as_u64()
                .filter(|n| *n > 0)
                .map(|n| n as usize)
                .ok_or_else(|| err(k, "must be a positive integer".into()))
        };
        let input_dim = usize_of(field("input_dim")?, "input_dim")?;
        let hidden = field("hidden")?
            .as_array()
            .ok_or_else(|| err("hidden", "must be a list of layer widths".into()))?
            .iter()
            .enumerate()
            .map(|(i, v)| usize_of(v, &format!("hidden.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let act = field("activation")?
            .as_str()
            .ok_or_else(|| err("activation", "must be a string".into()))?;
        let activation = Activation::parse(act).ok_or_else(|| {
            err(
                "activation",
                format!("is `{act}`; supported: {}", Activation::NAMES.join(", ")),
            )
        })?;
        let layers = field("layers")?
            .as_array()
            .ok_or_else(|| err("layers", "must be a list of module names".into()))?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                module_name(v).ok_or_else(|| err(&format!("layers.{i}"), NAME_RULE.into()))
            })
            .collect::<Result<Vec<_>>>()?;
        if layers.len() != hidden.len() {
            return Err(err(
                "layers",
                format!(
                    "names {} layers but `hidden` has {} widths",
                    layers.len(),
                    hidden.len()
                ),
            ));
        }
        let heads = field("heads")?
            .as_array()
            .ok_or_else(|| err("heads", "must be a list of {name, layer}".into()))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = h
                    .get("name")
                    .and_then(Tree::as_str)
                    .ok_or_else(|| err(&format!("heads.{i}.name"), "must be a string".into()))?;
                let layer = h
                    .get("layer")
                    .and_then(module_name)
                    .ok_or_else(|| err(&format!("heads.{i}.layer"), NAME_RULE.into()))?;
                Ok(ArchHead {
                    name: name.to_owned(),
                    layer,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if heads.is_empty() {
            return Err(err(
                "heads",
                "is empty: a model needs at least one head".into(),
            ));
        }
        Ok(Arch {
            input_dim,
            hidden,
            activation,
            layers,
            heads,
        })
    }

    /// Width of the trunk's output (the heads' input).
    pub fn trunk_width(&self) -> usize {
        self.hidden.last().copied().unwrap_or(self.input_dim)
    }
}

const NAME_RULE: &str = "must be a state-dict module name (letters, digits, `_`, `.`)";

fn module_name(v: &Tree) -> Option<String> {
    let s = v.as_str()?;
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    ok.then(|| s.to_owned())
}

/// The weight tensor of a Linear layer (`{layer}.weight`), shaped `[out, in]` as torch stores it.
pub fn weight<'a>(
    info: &'a CheckpointInfo,
    keys: &CheckpointKeys,
    layer: &str,
) -> Option<&'a TensorInfo> {
    info.weight(&keys.state_dict, &format!("{layer}.weight"))
}
