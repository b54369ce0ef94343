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
        let found = info.find(&keys.arch);
        let at = found.as_ref().map(|f| f.location.clone());
        let arch = found.map(|f| f.value).ok_or_else(|| {
            Error::at(
                Location::file(&display).with_label(format!("checkpoint key `{}`", keys.arch)),
                format!(
                    "the checkpoint has no `{}`: the native engine builds the model from it (docs/checkpoint-metadata.md)",
                    keys.arch
                ),
            )
        })?;
        let fields = Fields {
            arch,
            key: &keys.arch,
            at: at.unwrap_or_else(|| Location::file(&display)),
        };
        fields.mlp_type()?;
        // The width may be stated once for the whole checkpoint (`[checkpoints.keys] input-dim`).
        let input_dim = match (arch.get("input_dim"), info.get(&keys.input_dim)) {
            (Some(v), _) => fields.positive(v, "input_dim")?,
            (None, Some(v)) => fields.positive(v, "input_dim")?,
            (None, None) => {
                return Err(fields.err(
                    "input_dim",
                    format!(
                        "is missing (and the checkpoint states no `{}`, `[checkpoints.keys] input-dim`)",
                        keys.input_dim
                    ),
                ));
            }
        };
        let hidden = fields.hidden()?;
        let activation = fields.activation()?;
        let layers = fields.layers()?;
        if layers.len() != hidden.len() {
            return Err(fields.err(
                "layers",
                format!(
                    "names {} layers but `hidden` has {} widths",
                    layers.len(),
                    hidden.len()
                ),
            ));
        }
        let heads = fields.heads()?;
        if heads.is_empty() {
            return Err(fields.err("heads", "is empty: a model needs at least one head".into()));
        }
        Ok(Arch {
            input_dim,
            hidden,
            activation,
            layers,
            heads,
        })
    }
}

/// The fields of a checkpoint's `arch` (at checkpoint key `key` of the file shown as `display`),
/// each read with an error that names the checkpoint and the key.
struct Fields<'a> {
    arch: &'a Tree,
    key: &'a str,
    /// Where `arch` is written (the checkpoint, or a sidecar's line).
    at: Location,
}

impl Fields<'_> {
    /// The error for field `key`: `` `arch.key` msg ``, at the checkpoint.
    fn err(&self, key: &str, msg: String) -> Error {
        Error::at(
            self.at
                .clone()
                .with_label(format!("checkpoint key `{}.{key}`", self.key)),
            format!("`{}.{key}` {msg}", self.key),
        )
    }

    /// The field `k`, which must be there.
    fn get(&self, k: &str) -> Result<&Tree> {
        self.arch
            .get(k)
            .ok_or_else(|| self.err(k, "is missing".into()))
    }

    /// `type`, which must be `mlp`.
    fn mlp_type(&self) -> Result<()> {
        match self.get("type")?.as_str() {
            Some("mlp") => Ok(()),
            Some(other) => Err(self.err(
                "type",
                format!(
                    "is `{other}`; the native engine runs `mlp` (use the command engine for other models)"
                ),
            )),
            None => Err(self.err("type", "must be a string".into())),
        }
    }

    /// The value `v` of field `k` as a positive integer.
    fn positive(&self, v: &Tree, k: &str) -> Result<usize> {
        v.as_u64()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| self.err(k, "must be a positive integer".into()))
    }

    /// `hidden`: the trunk's layer widths.
    fn hidden(&self) -> Result<Vec<usize>> {
        self.get("hidden")?
            .as_array()
            .ok_or_else(|| self.err("hidden", "must be a list of layer widths".into()))?
            .iter()
            .enumerate()
            .map(|(i, v)| self.positive(v, &format!("hidden.{i}")))
            .collect()
    }

    /// `activation`, one of [`Activation::NAMES`].
    fn activation(&self) -> Result<Activation> {
        let act = self
            .get("activation")?
            .as_str()
            .ok_or_else(|| self.err("activation", "must be a string".into()))?;
        Activation::parse(act).ok_or_else(|| {
            self.err(
                "activation",
                format!("is `{act}`; supported: {}", Activation::NAMES.join(", ")),
            )
        })
    }

    /// `layers`: the trunk's module names.
    fn layers(&self) -> Result<Vec<String>> {
        self.get("layers")?
            .as_array()
            .ok_or_else(|| self.err("layers", "must be a list of module names".into()))?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                module_name(v).ok_or_else(|| self.err(&format!("layers.{i}"), NAME_RULE.into()))
            })
            .collect()
    }

    /// `heads`: each head's name and module name.
    fn heads(&self) -> Result<Vec<ArchHead>> {
        self.get("heads")?
            .as_array()
            .ok_or_else(|| self.err("heads", "must be a list of {name, layer}".into()))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = h.get("name").and_then(Tree::as_str).ok_or_else(|| {
                    self.err(&format!("heads.{i}.name"), "must be a string".into())
                })?;
                let layer = h
                    .get("layer")
                    .and_then(module_name)
                    .ok_or_else(|| self.err(&format!("heads.{i}.layer"), NAME_RULE.into()))?;
                Ok(ArchHead {
                    name: name.to_owned(),
                    layer,
                })
            })
            .collect()
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

/// A tensor the architecture uses: its state-dict name, the layer that uses it, and its shape where the
/// architecture fixes it (`None`: a head's output width, which `heads` checks against the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub layer: String,
    pub shape: Vec<Option<u64>>,
}

/// How a state dict and its architecture fail to account for each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// Tensors of one module the architecture never uses (a BatchNorm left out of `arch`).
    Unused {
        module: String,
        tensors: Vec<String>,
    },
    /// A parameter the architecture needs that the state dict does not have.
    Missing(Param),
    /// A parameter whose tensor has another shape.
    Shape { param: Param, found: Vec<u64> },
}

impl Arch {
    /// Every tensor the model this `arch` describes uses, in layer order.
    pub fn params(&self) -> Vec<Param> {
        let mut out = Vec::new();
        let mut width = self.input_dim as u64;
        let mut linear = |layer: &str, out_dim: Option<u64>, in_dim: u64| {
            out.push(Param {
                name: format!("{layer}.weight"),
                layer: layer.to_owned(),
                shape: vec![out_dim, Some(in_dim)],
            });
            out.push(Param {
                name: format!("{layer}.bias"),
                layer: layer.to_owned(),
                shape: vec![out_dim],
            });
        };
        for (layer, &h) in self.layers.iter().zip(&self.hidden) {
            linear(layer, Some(h as u64), width);
            width = h as u64;
        }
        for head in &self.heads {
            linear(&head.layer, None, width);
        }
        out
    }

    /// Map every tensor of the state dict (`tensors`: name, dtype, shape) to a parameter of this
    /// architecture: what is left over on either side, and shapes that differ. A head's bias must be as
    /// long as its weight is wide.
    pub fn account(&self, tensors: &[(String, String, Vec<u64>)]) -> Vec<Gap> {
        let params = self.params();
        let shape_of = |name: &str| tensors.iter().find(|t| t.0 == name).map(|t| &t.2);
        let mut gaps = Vec::new();
        for p in &params {
            let Some(found) = shape_of(&p.name) else {
                gaps.push(Gap::Missing(p.clone()));
                continue;
            };
            let mut expected = p.shape.clone();
            // A head's output width is its weight's: the bias must match it.
            if expected == [None] {
                let w = shape_of(&format!("{}.weight", p.layer));
                expected = vec![w.and_then(|w| w.first().copied())];
            }
            let fits = found.len() == expected.len()
                && found
                    .iter()
                    .zip(&expected)
                    .all(|(f, e)| e.is_none_or(|e| e == *f));
            if !fits {
                gaps.push(Gap::Shape {
                    param: Param {
                        shape: expected,
                        ..p.clone()
                    },
                    found: found.clone(),
                });
            }
        }
        let mut unused: Vec<(String, Vec<String>)> = Vec::new();
        for (name, _, _) in tensors {
            if params.iter().any(|p| p.name == *name) {
                continue;
            }
            let module = name.rsplit_once('.').map_or("", |(m, _)| m).to_owned();
            match unused.iter_mut().find(|u| u.0 == module) {
                Some(u) => u.1.push(name.clone()),
                None => unused.push((module, vec![name.clone()])),
            }
        }
        gaps.extend(
            unused
                .into_iter()
                .map(|(module, tensors)| Gap::Unused { module, tensors }),
        );
        gaps
    }
}

#[cfg(test)]
mod accounting {
    use super::*;

    fn mlp() -> Arch {
        Arch {
            input_dim: 3,
            hidden: vec![4],
            activation: Activation::Relu,
            layers: vec!["net.0".into()],
            heads: vec![ArchHead {
                name: "out".into(),
                layer: "net.2".into(),
            }],
        }
    }

    fn t(name: &str, shape: &[u64]) -> (String, String, Vec<u64>) {
        (name.to_owned(), "float32".to_owned(), shape.to_vec())
    }

    #[test]
    fn every_tensor_is_a_parameter_and_every_parameter_a_tensor() {
        let ok = [
            t("net.0.bias", &[4]),
            t("net.0.weight", &[4, 3]),
            t("net.2.bias", &[2]),
            t("net.2.weight", &[2, 4]),
        ];
        assert!(mlp().account(&ok).is_empty());
        // A BatchNorm the arch leaves out, a bias missing, a head bias of the wrong width, a trunk of
        // another width.
        let bad = [
            t("net.0.weight", &[5, 3]),
            t("net.1.bias", &[4]),
            t("net.1.num_batches_tracked", &[]),
            t("net.1.running_mean", &[4]),
            t("net.1.running_var", &[4]),
            t("net.1.weight", &[4]),
            t("net.2.bias", &[3]),
            t("net.2.weight", &[2, 4]),
        ];
        let gaps = mlp().account(&bad);
        assert_eq!(gaps.len(), 4, "{gaps:?}");
        assert!(
            matches!(&gaps[0], Gap::Shape { param, found } if param.name == "net.0.weight" && *found == [5, 3])
        );
        assert!(matches!(&gaps[1], Gap::Missing(p) if p.name == "net.0.bias"));
        assert!(
            matches!(&gaps[2], Gap::Shape { param, .. } if param.name == "net.2.bias" && param.shape == [Some(2)])
        );
        assert_eq!(
            gaps[3],
            Gap::Unused {
                module: "net.1".into(),
                tensors: vec![
                    "net.1.bias".into(),
                    "net.1.num_batches_tracked".into(),
                    "net.1.running_mean".into(),
                    "net.1.running_var".into(),
                    "net.1.weight".into()
                ]
            }
        );
    }
}
