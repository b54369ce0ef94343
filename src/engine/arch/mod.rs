//! The model architecture a checkpoint describes in its `arch` key (docs/checkpoint-metadata.md). Read
//! without burn, so the static gates can check it in every build; the native engine builds from it.
//!
//! Two spellings: the layer list (`layers` of `{"type": "Linear", "name": …}` objects, PyTorch's class
//! and attribute names, what `python/plumbline_torch.py` writes), and the first format (`hidden`,
//! `activation` and `layers` as module names), read as the layer list it stands for.

mod parse;

use std::fmt;

use crate::checkpoint::{CheckpointInfo, TensorInfo, Tree};
use crate::config::CheckpointKeys;
use crate::error::{Error, Result};
use crate::finding::Location;
use crate::paths::display_path;

/// An element-wise activation, with PyTorch's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    LeakyRelu {
        slope: f64,
    },
    Elu {
        alpha: f64,
    },
    /// `tanh`: the tanh approximation (`GELU(approximate="tanh")`), else the exact erf form.
    Gelu {
        tanh: bool,
    },
    Silu,
    Tanh,
    Sigmoid,
    Softplus {
        beta: f64,
        threshold: f64,
    },
    Identity,
}

/// A layer of the trunk, in the order the model applies them.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    Linear {
        module: String,
        inputs: usize,
        outputs: usize,
        bias: bool,
    },
    /// Eval mode: normalised by the running statistics.
    BatchNorm1d {
        module: String,
        features: usize,
        eps: f64,
        affine: bool,
    },
    LayerNorm {
        module: String,
        features: usize,
        eps: f64,
        affine: bool,
        bias: bool,
    },
    /// Identity at inference.
    Dropout,
    /// `nn.Flatten()` (start_dim 1, end_dim −1): a window's bars side by side, `[batch, window,
    /// width]` → `[batch, window·width]`; the identity on rows.
    Flatten,
    /// `nn.LSTM` or `nn.GRU` over a window's bars, and which of its outputs the model passes on.
    Recurrent(Recurrent),
    Activation(Activation),
}

/// A recurrent cell, with PyTorch's gate order in its fused weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Gates `i, f, g, o`.
    Lstm,
    /// Gates `r, z, n`.
    Gru,
}

impl Cell {
    /// Gates stacked in `weight_ih` / `weight_hh`.
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
        }
    }
}

/// What a recurrent layer passes on (the model's `forward` picks it; PyTorch's module returns them
/// all): `last` is `out[:, -1, :]`, `sequence` every step's output (then a `Flatten` or per-bar
/// layers), `final` each direction's final hidden state side by side (`cat(h_n[-2], h_n[-1])` for a
/// bidirectional layer; `last` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutput {
    Last,
    Sequence,
    Final,
}

impl SeqOutput {
    pub fn as_str(self) -> &'static str {
        match self {
            SeqOutput::Last => "last",
            SeqOutput::Sequence => "sequence",
            SeqOutput::Final => "final",
        }
    }
}

/// `nn.LSTM` / `nn.GRU` with PyTorch's arguments (`batch_first` and `dropout` change nothing plumbline
/// computes: it feeds the window in time order, and dropout is off at inference).
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    pub cell: Cell,
    pub module: String,
    pub inputs: usize,
    pub hidden: usize,
    pub layers: usize,
    pub bias: bool,
    pub bidirectional: bool,
    pub output: SeqOutput,
}

impl Recurrent {
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// The width of each step's output: both directions side by side.
    pub fn width(&self) -> usize {
        self.hidden * self.directions()
    }

    /// Every tensor, as PyTorch names it below the module (`weight_ih_l1_reverse`), with its shape and
    /// the cell (layer × direction, in that order) it belongs to.
    pub fn tensors(&self) -> Vec<(String, Vec<u64>, usize)> {
        let gh = (self.cell.gates() * self.hidden) as u64;
        let mut out = Vec::new();
        for k in 0..self.layers {
            let input = if k == 0 { self.inputs } else { self.width() } as u64;
            for d in 0..self.directions() {
                let sfx = if d == 1 { "_reverse" } else { "" };
                let cell = k * self.directions() + d;
                out.push((format!("weight_ih_l{k}{sfx}"), vec![gh, input], cell));
                out.push((
                    format!("weight_hh_l{k}{sfx}"),
                    vec![gh, self.hidden as u64],
                    cell,
                ));
                if self.bias {
                    out.push((format!("bias_ih_l{k}{sfx}"), vec![gh], cell));
                    out.push((format!("bias_hh_l{k}{sfx}"), vec![gh], cell));
                }
            }
        }
        out
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Relu => write!(f, "ReLU"),
            Activation::LeakyRelu { slope } => write!(f, "LeakyReLU(negative_slope={slope})"),
            Activation::Elu { alpha } => write!(f, "ELU(alpha={alpha})"),
            Activation::Gelu { tanh: false } => write!(f, "GELU(approximate='none')"),
            Activation::Gelu { tanh: true } => write!(f, "GELU(approximate='tanh')"),
            Activation::Silu => write!(f, "SiLU"),
            Activation::Tanh => write!(f, "Tanh"),
            Activation::Sigmoid => write!(f, "Sigmoid"),
            Activation::Softplus { beta, threshold } => {
                write!(f, "Softplus(beta={beta}, threshold={threshold})")
            }
            Activation::Identity => write!(f, "Identity"),
        }
    }
}

/// As PyTorch prints the module (`Linear(in_features=14, out_features=32, bias=True)`), prefixed with
/// its state-dict name.
impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let py = |b: bool| if b { "True" } else { "False" };
        match self {
            Layer::Linear {
                module,
                inputs,
                outputs,
                bias,
            } => write!(
                f,
                "`{module}` Linear(in_features={inputs}, out_features={outputs}, bias={})",
                py(*bias)
            ),
            Layer::BatchNorm1d {
                module,
                features,
                eps,
                affine,
            } => write!(
                f,
                "`{module}` BatchNorm1d({features}, eps={eps:e}, affine={})",
                py(*affine)
            ),
            Layer::LayerNorm {
                module,
                features,
                eps,
                affine,
                bias,
            } => write!(
                f,
                "`{module}` LayerNorm(({features},), eps={eps:e}, elementwise_affine={}, bias={})",
                py(*affine),
                py(*bias)
            ),
            Layer::Dropout => write!(f, "Dropout"),
            Layer::Flatten => write!(f, "Flatten(start_dim=1, end_dim=-1)"),
            Layer::Recurrent(r) => write!(
                f,
                "`{}` {}({}, {}, num_layers={}, bias={}, bidirectional={}) → {}",
                r.module,
                r.cell.name(),
                r.inputs,
                r.hidden,
                r.layers,
                py(r.bias),
                py(r.bidirectional),
                r.output.as_str()
            ),
            Layer::Activation(a) => write!(f, "{a}"),
        }
    }
}

/// What a checkpoint states beside `arch`: its input width and its window, each with the value
/// (`None` when it states none), for an `arch` that leaves them out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given<'a> {
    /// The input width and its checkpoint key.
    pub width: Option<(&'a Tree, &'a str)>,
    /// The window in bars (`[checkpoints.keys] window`).
    pub window: Option<&'a Tree>,
}

/// A head's output layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchHead {
    pub name: String,
    /// State-dict module name of the head's Linear layer (`heads.direction`).
    pub layer: String,
}

/// A feed-forward network: the trunk's `layers` in order, then one Linear per head on the trunk's
/// output.
#[derive(Debug, Clone, PartialEq)]
pub struct Arch {
    /// Inputs per row, or per bar of a window.
    pub input_dim: usize,
    /// Bars per window when the model takes windows (`[batch, window, input_dim]`); a `Flatten` puts
    /// them side by side before the heads.
    pub window: Option<usize>,
    pub layers: Vec<Layer>,
    pub heads: Vec<ArchHead>,
}

impl Arch {
    /// Parse the checkpoint's `arch`. Every problem is an error naming the checkpoint and the key.
    pub fn read(info: &CheckpointInfo, keys: &CheckpointKeys) -> Result<Arch> {
        let display = display_path(&info.path);
        let found = info.find(&keys.arch).ok_or_else(|| {
            Error::at(
                Location::file(&display).with_label(format!("checkpoint key `{}`", keys.arch)),
                format!(
                    "the checkpoint has no `{}`: the native engine builds the model from it (docs/checkpoint-metadata.md)",
                    keys.arch
                ),
            )
        })?;
        let width = info
            .get(&keys.input_dim)
            .map(|v| (v, keys.input_dim.as_str()));
        let window = info.get(&keys.window).filter(|v| !v.is_null());
        let locate = |field: &str| {
            info.find(&format!("{}.{field}", keys.arch))
                .map(|f| f.location)
                .filter(|l| l.line.is_some())
        };
        Arch::parse(
            found.value,
            &keys.arch,
            found.location,
            Given { width, window },
            &locate,
        )
    }

    /// Parse an `arch` value written at `at` (checkpoint key `key`). `given`: what the checkpoint
    /// states beside `arch`. `locate`: the line of a field below `arch` (`layers.2.negative_slope`),
    /// where the file keeps lines.
    pub fn parse(
        arch: &Tree,
        key: &str,
        at: Location,
        given: Given,
        locate: &dyn Fn(&str) -> Option<Location>,
    ) -> Result<Arch> {
        parse::Fields {
            arch,
            key,
            at,
            locate,
        }
        .arch(given)
    }

    /// The model's inputs per row: `input_dim`, times the window's bars for a model that takes
    /// windows.
    pub fn inputs(&self) -> usize {
        self.input_dim * self.window.unwrap_or(1)
    }

    /// The tensor of the first layer that takes the inputs: a Linear's `weight` (`[out, in]`), a
    /// recurrent layer's `weight_ih_l0`.
    pub fn first_input(&self) -> Option<String> {
        self.layers.iter().find_map(|l| match l {
            Layer::Linear { module, .. } => Some(format!("{module}.weight")),
            Layer::Recurrent(r) => Some(format!("{}.weight_ih_l0", r.module)),
            _ => None,
        })
    }

    /// The trunk's output width (a window flattened: its bars side by side).
    pub fn width(&self) -> usize {
        self.layers
            .iter()
            .zip(self.open_bars())
            .fold(self.input_dim, |w, (l, bars)| match l {
                Layer::Linear { outputs, .. } => *outputs,
                Layer::Flatten => w * bars.unwrap_or(1),
                Layer::Recurrent(r) => r.width(),
                _ => w,
            })
    }

    /// For each layer, the bars of the window not yet put together when it runs (`None`: rows, or a
    /// window a `Flatten` or a recurrent layer's last/final step has already put together). A
    /// `Flatten` with `None` is the identity.
    pub fn open_bars(&self) -> Vec<Option<usize>> {
        let mut bars = self.window;
        self.layers
            .iter()
            .map(|l| {
                let before = bars;
                match l {
                    Layer::Flatten => bars = None,
                    Layer::Recurrent(r) if r.output != SeqOutput::Sequence => bars = None,
                    _ => {}
                }
                before
            })
            .collect()
    }
}

/// One way a checkpoint's `arch` differs from the architecture of a model: what, and the index of the
/// `arch` layer it is at (for a layer `arch` leaves out, the one it would follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub layer: Option<usize>,
    pub what: String,
}

/// How `ours` (a checkpoint's `arch`) differs from `theirs` (the architecture of the model the
/// reference outputs were written from), naming the layer: what the tensors cannot show (an
/// activation, a slope, a layer without tensors) shows here.
pub fn differences(ours: &Arch, theirs: &Arch) -> Vec<Difference> {
    use similar::{Algorithm, DiffOp, capture_diff_slices};
    let mut out = input_differences(ours, theirs);
    let mut push = |layer: Option<usize>, what: String| out.push(Difference { layer, what });
    // Dropout, Identity and a Flatten with no window left to flatten change nothing at inference: a
    // first-format `arch` cannot write them, and a model that has them is the same function without.
    let kept = |arch: &Arch| -> (Vec<usize>, Vec<String>) {
        arch.layers
            .iter()
            .zip(arch.open_bars())
            .enumerate()
            .filter(|(_, (l, bars))| match l {
                Layer::Dropout | Layer::Activation(Activation::Identity) => false,
                Layer::Flatten => bars.is_some(),
                _ => true,
            })
            .map(|(i, (l, _))| (i, l.to_string()))
            .unzip()
    };
    let (ai, a) = kept(ours);
    let (bi, b) = kept(theirs);
    for op in capture_diff_slices(Algorithm::Myers, &a, &b) {
        let (old, new) = (op.old_range(), op.new_range());
        match op {
            DiffOp::Equal { .. } => {}
            DiffOp::Replace { .. } if old.len() == new.len() => {
                for (i, j) in old.zip(new) {
                    push(
                        Some(ai[i]),
                        format!(
                            "layers.{}: `arch` has {}, the model has {} (its layers.{})",
                            ai[i], a[i], b[j], bi[j]
                        ),
                    );
                }
            }
            _ => {
                let before = old.start.checked_sub(1).map(|i| ai[i]);
                for i in old {
                    push(
                        Some(ai[i]),
                        format!(
                            "layers.{}: `arch` has {}, which the model does not",
                            ai[i], a[i]
                        ),
                    );
                }
                for j in new {
                    push(
                        before,
                        format!("`arch` leaves out the model's layers.{}: {}", bi[j], b[j]),
                    );
                }
            }
        }
    }
    if ours.heads != theirs.heads {
        let names = |h: &[ArchHead]| {
            h.iter()
                .map(|h| format!("{} ({})", h.name, h.layer))
                .collect::<Vec<_>>()
                .join(", ")
        };
        push(
            None,
            format!(
                "heads: `arch` has [{}], the model [{}]",
                names(&ours.heads),
                names(&theirs.heads)
            ),
        );
    }
    out
}

/// How the inputs `ours` and `theirs` take differ: the window, the width per row or bar.
fn input_differences(ours: &Arch, theirs: &Arch) -> Vec<Difference> {
    let mut out = Vec::new();
    if ours.window != theirs.window {
        out.push(Difference {
            layer: None,
            what: format!(
                "window: `arch` takes {}, the model {}",
                crate::facts::window_text(ours.window.map(|n| n as u64)),
                crate::facts::window_text(theirs.window.map(|n| n as u64))
            ),
        });
    }
    if ours.input_dim != theirs.input_dim {
        out.push(Difference {
            layer: None,
            what: format!(
                "input_dim: `arch` says {}, the model takes {}",
                ours.input_dim, theirs.input_dim
            ),
        });
    }
    out
}

/// The tensor of the first layer an `arch` value names (either spelling) that takes the features,
/// without reading the rest: a Linear's `weight`, an LSTM's or GRU's `weight_ih_l0`.
pub fn first_weight(arch: &Tree) -> Option<String> {
    arch.get("layers")?
        .as_array()?
        .iter()
        .find_map(|l| match l {
            Tree::String(s) => Some(format!("{s}.weight")),
            Tree::Object(o) => {
                let name = o.get("name").and_then(Tree::as_str);
                match o.get("type").and_then(Tree::as_str)? {
                    "Linear" => Some(format!("{}.weight", name?)),
                    "LSTM" | "GRU" => Some(format!("{}.weight_ih_l0", name?)),
                    _ => None,
                }
            }
            _ => None,
        })
}

/// Whether an `arch` value's layer list has a `Flatten` before its first Linear: that layer then takes
/// a window's bars side by side.
pub fn flattens_first(arch: &Tree) -> bool {
    let Some(layers) = arch.get("layers").and_then(Tree::as_array) else {
        return false;
    };
    let ty = |l: &Tree| l.get("type").and_then(Tree::as_str).map(str::to_owned);
    layers
        .iter()
        .map(ty)
        .take_while(|t| !matches!(t.as_deref(), Some("Linear" | "LSTM" | "GRU")))
        .any(|t| t.as_deref() == Some("Flatten"))
}

/// `net.10` after `net.9`: digit runs compare as numbers.
pub fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((u64::MAX, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((u64::MAX, text));
    }
    out
}

/// The state dict's modules (`tensors`: name, dtype, shape) as entries of the `arch` layer list, in
/// natural order: what the tensors show (Linear, BatchNorm1d, LayerNorm and their sizes). The order
/// of modules in `forward`, activations and Dropout are not in the tensors: the user adds them.
pub fn layer_entries(tensors: &[(String, String, Vec<u64>)]) -> Vec<String> {
    /// A module's name and its tensors (last name segment, shape).
    type Module<'a> = (&'a str, Vec<(&'a str, &'a [u64])>);
    let mut modules: Vec<Module> = Vec::new();
    for (name, _, shape) in tensors {
        let (module, tensor) = name.rsplit_once('.').unwrap_or(("", name));
        match modules.iter_mut().find(|m| m.0 == module) {
            Some(m) => m.1.push((tensor, shape)),
            None => modules.push((module, vec![(tensor, shape)])),
        }
    }
    modules.sort_by_key(|m| natural_key(m.0));
    modules
        .iter()
        .map(|(module, ts)| {
            let get = |t: &str| ts.iter().find(|x| x.0 == t).map(|x| x.1);
            let py = |b: bool| if b { "true" } else { "false" };
            match (get("weight"), get("running_mean")) {
                (Some([o, i]), _) => format!(
                    r#"{{"type": "Linear", "name": "{module}", "in_features": {i}, "out_features": {o}, "bias": {}}}"#,
                    py(get("bias").is_some())
                ),
                (w, Some([n])) => format!(
                    r#"{{"type": "BatchNorm1d", "name": "{module}", "num_features": {n}, "affine": {}}}"#,
                    py(w.is_some())
                ),
                (Some([n]), None) => format!(
                    r#"{{"type": "LayerNorm", "name": "{module}", "normalized_shape": [{n}], "bias": {}}}"#,
                    py(get("bias").is_some())
                ),
                _ => {
                    let names: Vec<&str> = ts.iter().map(|t| t.0).collect();
                    format!(
                        "# `{module}` ({}): not a layer the native engine runs",
                        names.join(", ")
                    )
                }
            }
        })
        .collect()
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
        let mut push = |module: &str, tensor: &str, shape: Vec<Option<u64>>| {
            out.push(Param {
                name: format!("{module}.{tensor}"),
                layer: module.to_owned(),
                shape,
            });
        };
        for layer in &self.layers {
            match layer {
                Layer::Linear {
                    module,
                    inputs,
                    outputs,
                    bias,
                } => {
                    let (o, i) = (*outputs as u64, *inputs as u64);
                    push(module, "weight", vec![Some(o), Some(i)]);
                    if *bias {
                        push(module, "bias", vec![Some(o)]);
                    }
                }
                Layer::BatchNorm1d {
                    module,
                    features,
                    affine,
                    ..
                } => {
                    let n = vec![Some(*features as u64)];
                    if *affine {
                        push(module, "weight", n.clone());
                        push(module, "bias", n.clone());
                    }
                    push(module, "running_mean", n.clone());
                    push(module, "running_var", n);
                    push(module, "num_batches_tracked", vec![]);
                }
                Layer::LayerNorm {
                    module,
                    features,
                    affine,
                    bias,
                    ..
                } => {
                    let n = vec![Some(*features as u64)];
                    if *affine {
                        push(module, "weight", n.clone());
                        if *bias {
                            push(module, "bias", n);
                        }
                    }
                }
                Layer::Recurrent(r) => {
                    for (name, shape, _) in r.tensors() {
                        push(&r.module, &name, shape.into_iter().map(Some).collect());
                    }
                }
                Layer::Dropout | Layer::Flatten | Layer::Activation(_) => {}
            }
        }
        let width = self.width() as u64;
        for head in &self.heads {
            push(&head.layer, "weight", vec![None, Some(width)]);
            push(&head.layer, "bias", vec![None]);
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
            window: None,
            layers: vec![
                Layer::Linear {
                    module: "net.0".into(),
                    inputs: 3,
                    outputs: 4,
                    bias: true,
                },
                Layer::Activation(Activation::Relu),
            ],
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
