//! Reading an `arch` value: the layer list, the first format, the heads. Every problem is an error
//! naming the checkpoint key and the field (`arch.layers.2.negative_slope`).

use super::{Activation, Arch, ArchHead, Cell, Given, Layer, Recurrent, SeqOutput};
use crate::checkpoint::Tree;
use crate::error::{Error, Result};
use crate::finding::Location;

/// The layer types the native engine runs (PyTorch's class names).
pub const TYPES: &[&str] = &[
    "Linear",
    "BatchNorm1d",
    "LayerNorm",
    "Dropout",
    "Flatten",
    "LSTM",
    "GRU",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Tanh",
    "Sigmoid",
    "Softplus",
    "Identity",
];

/// The activations of the first format (`"activation": "relu"`).
const FIRST_FORMAT_ACTIVATIONS: &[&str] = &["relu", "tanh", "sigmoid", "gelu", "silu", "identity"];

/// The fields a layer of each type may have besides `type` and `name` (PyTorch's constructor
/// arguments; `inplace`, `p` and `momentum` change nothing at inference).
fn allowed(ty: &str) -> &'static [&'static str] {
    match ty {
        "Linear" => &["in_features", "out_features", "bias"],
        "BatchNorm1d" => &[
            "num_features",
            "eps",
            "affine",
            "track_running_stats",
            "momentum",
        ],
        "LayerNorm" => &["normalized_shape", "eps", "elementwise_affine", "bias"],
        "Dropout" => &["p", "inplace"],
        "Flatten" => &["start_dim", "end_dim"],
        "LSTM" | "GRU" => &[
            "input_size",
            "hidden_size",
            "num_layers",
            "bias",
            "batch_first",
            "dropout",
            "bidirectional",
            "proj_size",
            "output",
        ],
        "LeakyReLU" => &["negative_slope", "inplace"],
        "ELU" => &["alpha", "inplace"],
        "GELU" => &["approximate"],
        "Softplus" => &["beta", "threshold"],
        _ => &["inplace"],
    }
}

/// The fields of a checkpoint's `arch` (at checkpoint key `key`), each read with an error that names
/// the key and the field.
pub(super) struct Fields<'a> {
    pub arch: &'a Tree,
    pub key: &'a str,
    /// Where `arch` is written (the checkpoint, or a sidecar's line).
    pub at: Location,
    /// Where a field below `arch` is written (`layers.2.alpah`), where the file keeps lines.
    pub locate: &'a dyn Fn(&str) -> Option<Location>,
}

impl Fields<'_> {
    /// The error for field `key`: `` `arch.key` msg ``, at the field's line (or its nearest parent's),
    /// else where `arch` is.
    fn err(&self, key: &str, msg: impl Into<String>) -> Error {
        let mut path = key;
        let at = loop {
            if let Some(at) = (self.locate)(path) {
                break at;
            }
            match path.rsplit_once('.') {
                Some((parent, _)) => path = parent,
                None => {
                    break self
                        .at
                        .clone()
                        .with_label(format!("checkpoint key `{}.{key}`", self.key));
                }
            }
        };
        Error::at(at, format!("`{}.{key}` {}", self.key, msg.into()))
    }

    /// The field `k`, which must be there.
    fn get(&self, k: &str) -> Result<&Tree> {
        self.arch.get(k).ok_or_else(|| self.err(k, "is missing"))
    }

    /// The value `v` of field `k` as a positive integer.
    fn positive(&self, v: &Tree, k: &str) -> Result<usize> {
        v.as_u64()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| self.err(k, "must be a positive integer"))
    }

    /// The whole architecture. `given`: the checkpoint's own input width and window, for an `arch`
    /// that leaves them out.
    pub fn arch(&self, given: Given) -> Result<Arch> {
        let width = given.width;
        match self.get("type")?.as_str() {
            Some("mlp") => {}
            Some(other) => {
                return Err(self.err(
                    "type",
                    format!(
                        "is `{other}`; the native engine runs `mlp` (use the command engine for other models)"
                    ),
                ));
            }
            None => return Err(self.err("type", "must be a string")),
        }
        let stated = match (self.arch.get("input_dim"), width) {
            (Some(v), _) | (None, Some((v, _))) => Some(self.positive(v, "input_dim")?),
            (None, None) => None,
        };
        let items = self
            .get("layers")?
            .as_array()
            .ok_or_else(|| self.err("layers", "must be a list of layers"))?;
        let layers = if !items.is_empty() && items.iter().all(Tree::is_string) {
            self.first_format(items, stated, width.map(|w| w.1))?
        } else {
            items
                .iter()
                .enumerate()
                .map(|(i, v)| self.layer(i, v))
                .collect::<Result<Vec<_>>>()?
        };
        let window = self.window(given.window)?;
        let input_dim = stated
            .or_else(|| first_width(&layers, window))
            .ok_or_else(|| {
                self.err(
                    "input_dim",
                    "is missing, and no layer states its input width",
                )
            })?;
        self.chain(&layers, input_dim, window)?;
        let heads = self.heads()?;
        if heads.is_empty() {
            return Err(self.err("heads", "is empty: a model needs at least one head"));
        }
        Ok(Arch {
            input_dim,
            window,
            layers,
            heads,
        })
    }

    /// `window`: the bars per window, from `arch` or else the checkpoint (`given`); both stated must
    /// agree. `None` for a model that takes rows.
    fn window(&self, given: Option<&Tree>) -> Result<Option<usize>> {
        let read = |v: &Tree| match v {
            Tree::Null => Ok(None),
            v => self.positive(v, "window").map(Some),
        };
        let ours = self.arch.get("window").map(read).transpose()?.flatten();
        let theirs = match given.map(crate::facts::window_value) {
            None => None,
            Some(Some(w)) => w.map(|n| n as usize),
            Some(None) => {
                return Err(self.err(
                    "window",
                    "the checkpoint's window is not a positive number of bars",
                ));
            }
        };
        match (ours, theirs) {
            (Some(a), Some(b)) if a != b => Err(self.err(
                "window",
                format!("is {a}, but the checkpoint's window is {b}"),
            )),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// Each layer takes the width the one before gives (the first, `input_dim`). A window runs bar by
    /// bar (Linear, LayerNorm and activations act on each bar) until a `Flatten` puts its bars side by
    /// side or a recurrent layer passes on its last or final step; the heads take flat rows.
    fn chain(&self, layers: &[Layer], input_dim: usize, window: Option<usize>) -> Result<()> {
        let mut shape = Shape {
            width: input_dim,
            bars: window,
            from: format!("input_dim is {input_dim}"),
        };
        for (i, layer) in layers.iter().enumerate() {
            self.through(&mut shape, i, layer)?;
        }
        match shape.bars {
            Some(n) => Err(self.err(
                "layers",
                format!(
                    "take windows of {n} bars, and nothing puts the bars together before the heads: a window model's layers need an `nn.Flatten()` (layers before it act on each bar, layers after it on the row) or a recurrent layer whose `output` is `last` or `final`"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Layer `i` on `shape`: an error when it cannot take it, else the shape it gives.
    fn through(&self, shape: &mut Shape, i: usize, layer: &Layer) -> Result<()> {
        let (field, takes) = match layer {
            Layer::Linear { inputs, .. } => ("in_features", *inputs),
            Layer::BatchNorm1d { .. } if shape.bars.is_some() => {
                return Err(self.err(
                    &format!("layers.{i}"),
                    "is a BatchNorm1d on a window of bars: on `[batch, window, width]` PyTorch normalises over the window's axis; put it after the `Flatten`",
                ));
            }
            Layer::BatchNorm1d { features, .. } => ("num_features", *features),
            Layer::LayerNorm { features, .. } => ("normalized_shape", *features),
            Layer::Recurrent(r) if shape.bars.is_none() => {
                return Err(self.err(
                    &format!("layers.{i}"),
                    format!(
                        "is an {} on rows: a recurrent layer runs over a window of bars (`arch.window`, or the checkpoint's `window`)",
                        r.cell.name()
                    ),
                ));
            }
            Layer::Recurrent(r) => ("input_size", r.inputs),
            Layer::Flatten => {
                shape.flatten(i);
                return Ok(());
            }
            Layer::Dropout | Layer::Activation(_) => return Ok(()),
        };
        if takes != shape.width {
            return Err(self.err(
                &format!("layers.{i}.{field}"),
                format!("is {takes}, but {}", shape.from),
            ));
        }
        match layer {
            Layer::Linear {
                module, outputs, ..
            } => {
                shape.width = *outputs;
                shape.from = format!("`{module}` (layers.{i}) gives {}", shape.width);
            }
            Layer::Recurrent(r) => {
                shape.width = r.width();
                if r.output != SeqOutput::Sequence {
                    shape.bars = None;
                }
                shape.from = format!("`{}` (layers.{i}) gives {}", r.module, shape.width);
            }
            _ => {}
        }
        Ok(())
    }

    /// The first format: `hidden` widths, one `activation` after each, `layers` the Linear modules.
    fn first_format(
        &self,
        items: &[Tree],
        input_dim: Option<usize>,
        width_key: Option<&str>,
    ) -> Result<Vec<Layer>> {
        let input_dim = input_dim.ok_or_else(|| {
            self.err(
                "input_dim",
                format!(
                    "is missing (and the checkpoint states no `{}`, `[checkpoints.keys] input-dim`)",
                    width_key.unwrap_or("input_dim")
                ),
            )
        })?;
        let hidden = self
            .get("hidden")?
            .as_array()
            .ok_or_else(|| self.err("hidden", "must be a list of layer widths"))?
            .iter()
            .enumerate()
            .map(|(i, v)| self.positive(v, &format!("hidden.{i}")))
            .collect::<Result<Vec<_>>>()?;
        let act = self
            .get("activation")?
            .as_str()
            .ok_or_else(|| self.err("activation", "must be a string"))?;
        let activation = first_format_activation(act).ok_or_else(|| {
            self.err(
                "activation",
                format!(
                    "is `{act}`; supported: {}",
                    FIRST_FORMAT_ACTIVATIONS.join(", ")
                ),
            )
        })?;
        if items.len() != hidden.len() {
            return Err(self.err(
                "layers",
                format!(
                    "names {} layers but `hidden` has {} widths",
                    items.len(),
                    hidden.len()
                ),
            ));
        }
        let mut layers = Vec::new();
        let mut width = input_dim;
        for (i, (v, &h)) in items.iter().zip(&hidden).enumerate() {
            let module =
                module_name(v).ok_or_else(|| self.err(&format!("layers.{i}"), NAME_RULE))?;
            layers.push(Layer::Linear {
                module,
                inputs: width,
                outputs: h,
                bias: true,
            });
            layers.push(Layer::Activation(activation));
            width = h;
        }
        Ok(layers)
    }

    /// Layer `i` of the layer list: `{"type": <PyTorch class>, "name": <module>, <its arguments>}`.
    fn layer(&self, i: usize, v: &Tree) -> Result<Layer> {
        let f = LayerFields { of: self, i, v };
        let ty = v.get("type").and_then(Tree::as_str).ok_or_else(|| {
            f.err(
                "type",
                "must be a PyTorch module class (`Linear`, `BatchNorm1d`, …)",
            )
        })?;
        if !TYPES.contains(&ty) {
            return Err(f.err(
                "type",
                format!(
                    "is `{ty}`; the native engine runs {} (use the command engine for other models)",
                    TYPES.join(", ")
                ),
            ));
        }
        f.known_fields(ty)?;
        f.build(ty)
    }

    /// `heads`: each head's name and module name.
    fn heads(&self) -> Result<Vec<ArchHead>> {
        self.get("heads")?
            .as_array()
            .ok_or_else(|| self.err("heads", "must be a list of {name, layer}"))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = h
                    .get("name")
                    .and_then(Tree::as_str)
                    .ok_or_else(|| self.err(&format!("heads.{i}.name"), "must be a string"))?;
                let layer = h
                    .get("layer")
                    .and_then(module_name)
                    .ok_or_else(|| self.err(&format!("heads.{i}.layer"), NAME_RULE))?;
                Ok(ArchHead {
                    name: name.to_owned(),
                    layer,
                })
            })
            .collect()
    }
}

/// What a layer receives while `arch` is read in order: its width, the bars of a window not yet put
/// together, and where that width comes from (for messages).
struct Shape {
    width: usize,
    bars: Option<usize>,
    from: String,
}

impl Shape {
    /// A Flatten: the window's bars side by side (on rows, the identity).
    fn flatten(&mut self, i: usize) {
        match self.bars.take() {
            Some(n) => {
                self.width *= n;
                self.from = format!(
                    "the Flatten (layers.{i}) gives {n} bars × {} = {}",
                    self.width / n,
                    self.width
                );
            }
            None => {
                self.from = format!(
                    "{}, and the Flatten (layers.{i}) has no window to flatten (none is stated in `arch.window` or the checkpoint's `window`, or a layer before it already put the bars together)",
                    self.from
                );
            }
        }
    }
}

/// The fields of layer `i` (the value `v`) of the layer list.
struct LayerFields<'a> {
    of: &'a Fields<'a>,
    i: usize,
    v: &'a Tree,
}

impl LayerFields<'_> {
    fn err(&self, field: &str, msg: impl Into<String>) -> Error {
        self.of.err(&format!("layers.{}.{field}", self.i), msg)
    }

    /// Every field is one PyTorch's constructor of `ty` takes: a misspelt `negativ_slope` would
    /// otherwise silently run the default.
    fn known_fields(&self, ty: &str) -> Result<()> {
        let Some(obj) = self.v.as_object() else {
            return Err(self.of.err(
                &format!("layers.{}", self.i),
                "must be a {type, name, …} dict",
            ));
        };
        let ok = allowed(ty);
        match obj
            .keys()
            .find(|k| !["type", "name"].contains(&k.as_str()) && !ok.contains(&k.as_str()))
        {
            Some(k) => Err(self.err(
                k,
                format!(
                    "is not an argument of {ty} (it takes {})",
                    if ok.is_empty() {
                        "none".to_owned()
                    } else {
                        ok.join(", ")
                    }
                ),
            )),
            None => Ok(()),
        }
    }

    fn module(&self) -> Result<String> {
        self.v
            .get("name")
            .and_then(module_name)
            .ok_or_else(|| self.err("name", NAME_RULE))
    }

    fn count(&self, field: &str) -> Result<usize> {
        let v = self
            .v
            .get(field)
            .ok_or_else(|| self.err(field, "is missing"))?;
        self.of.positive(v, &format!("layers.{}.{field}", self.i))
    }

    /// A finite number, PyTorch's `default` when left out.
    fn number(&self, field: &str, default: f64) -> Result<f64> {
        match self.v.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.err(field, "must be a finite number")),
        }
    }

    /// A norm layer's `eps`: positive, PyTorch's 1e-5 when left out.
    fn eps(&self) -> Result<f64> {
        let eps = self.number("eps", 1e-5)?;
        if eps > 0.0 {
            Ok(eps)
        } else {
            Err(self.err("eps", "must be positive"))
        }
    }

    fn flag(&self, field: &str, default: bool) -> Result<bool> {
        match self.v.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.err(field, "must be true or false")),
        }
    }

    /// The layer of type `ty` (one of [`TYPES`]).
    fn build(&self, ty: &str) -> Result<Layer> {
        let act = |a| Ok(Layer::Activation(a));
        match ty {
            "Linear" => Ok(Layer::Linear {
                module: self.module()?,
                inputs: self.count("in_features")?,
                outputs: self.count("out_features")?,
                bias: self.flag("bias", true)?,
            }),
            "BatchNorm1d" => {
                if !self.flag("track_running_stats", true)? {
                    return Err(self.err(
                        "track_running_stats",
                        "is false: such a BatchNorm1d normalises each batch by its own statistics, so a row's output depends on its batch; the native engine runs BatchNorm1d in eval mode, with running statistics",
                    ));
                }
                Ok(Layer::BatchNorm1d {
                    module: self.module()?,
                    features: self.count("num_features")?,
                    eps: self.eps()?,
                    affine: self.flag("affine", true)?,
                })
            }
            "LayerNorm" => {
                // Without elementwise_affine there is no bias either (PyTorch leaves both `None`).
                let affine = self.flag("elementwise_affine", true)?;
                Ok(Layer::LayerNorm {
                    module: self.module()?,
                    features: self.normalized_shape()?,
                    eps: self.eps()?,
                    affine,
                    bias: affine && self.flag("bias", true)?,
                })
            }
            "Dropout" => Ok(Layer::Dropout),
            "Flatten" => {
                for (field, default) in [("start_dim", 1), ("end_dim", -1)] {
                    if let Some(v) = self.v.get(field)
                        && v.as_i64() != Some(default)
                    {
                        return Err(self.err(
                            field,
                            format!("must be {default}: the native engine flattens each row's window (`nn.Flatten()`'s defaults)"),
                        ));
                    }
                }
                Ok(Layer::Flatten)
            }
            "LSTM" => self.recurrent(Cell::Lstm),
            "GRU" => self.recurrent(Cell::Gru),
            "ReLU" => act(Activation::Relu),
            "LeakyReLU" => act(Activation::LeakyRelu {
                slope: self.number("negative_slope", 0.01)?,
            }),
            "ELU" => act(Activation::Elu {
                alpha: self.number("alpha", 1.0)?,
            }),
            "GELU" => act(Activation::Gelu {
                tanh: self.approximate()?,
            }),
            "SiLU" => act(Activation::Silu),
            "Tanh" => act(Activation::Tanh),
            "Sigmoid" => act(Activation::Sigmoid),
            "Softplus" => act(Activation::Softplus {
                beta: self.number("beta", 1.0)?,
                threshold: self.number("threshold", 20.0)?,
            }),
            _ => act(Activation::Identity),
        }
    }

    /// An `nn.LSTM` or `nn.GRU`: PyTorch's arguments and plumbline's `output` (which of the module's
    /// outputs the model's `forward` passes on, which the module tree does not record).
    fn recurrent(&self, cell: Cell) -> Result<Layer> {
        if let Some(v) = self.v.get("proj_size")
            && v.as_u64() != Some(0)
        {
            return Err(self.err(
                "proj_size",
                "must be 0: the native engine runs LSTMs without projections",
            ));
        }
        let output = match self.v.get("output").map(Tree::as_str) {
            Some(Some("last")) => SeqOutput::Last,
            Some(Some("sequence")) => SeqOutput::Sequence,
            Some(Some("final")) => SeqOutput::Final,
            _ => {
                return Err(self.err(
                    "output",
                    "must say what the model's forward passes on: `last` (out[:, -1]), `final` (each direction's final hidden state, h_n) or `sequence` (every step)",
                ));
            }
        };
        Ok(Layer::Recurrent(Recurrent {
            cell,
            module: self.module()?,
            inputs: self.count("input_size")?,
            hidden: self.count("hidden_size")?,
            layers: match self.v.get("num_layers") {
                None => 1,
                Some(_) => self.count("num_layers")?,
            },
            bias: self.flag("bias", true)?,
            bidirectional: self.flag("bidirectional", false)?,
            output,
        }))
    }

    /// LayerNorm's `normalized_shape`: one width (`32` or `[32]`), normalised over the last axis.
    fn normalized_shape(&self) -> Result<usize> {
        let field = "normalized_shape";
        let v = self
            .v
            .get(field)
            .ok_or_else(|| self.err(field, "is missing"))?;
        let n = match v.as_array() {
            Some(a) if a.len() == 1 => &a[0],
            Some(_) => {
                return Err(self.err(
                    field,
                    "must be one width: the native engine normalises over the last axis only",
                ));
            }
            None => v,
        };
        self.of.positive(n, &format!("layers.{}.{field}", self.i))
    }

    /// GELU's `approximate`: `none` (erf) or `tanh`.
    fn approximate(&self) -> Result<bool> {
        match self.v.get("approximate").map(Tree::as_str) {
            None | Some(Some("none")) => Ok(false),
            Some(Some("tanh")) => Ok(true),
            _ => Err(self.err("approximate", "must be `none` or `tanh`")),
        }
    }
}

/// The input width (per bar of a window) the first sized layer states.
fn first_width(layers: &[Layer], window: Option<usize>) -> Option<usize> {
    let mut bars = 1;
    for l in layers {
        let takes = match l {
            Layer::Linear { inputs, .. } => *inputs,
            Layer::BatchNorm1d { features, .. } | Layer::LayerNorm { features, .. } => *features,
            Layer::Flatten => {
                bars = window.unwrap_or(1);
                continue;
            }
            Layer::Recurrent(r) => r.inputs,
            Layer::Dropout | Layer::Activation(_) => continue,
        };
        // A width the window does not divide is the chain's error, named at that layer.
        return Some(if takes.is_multiple_of(bars) {
            takes / bars
        } else {
            takes
        });
    }
    None
}

fn first_format_activation(s: &str) -> Option<Activation> {
    Some(match s {
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "gelu" => Activation::Gelu { tanh: false },
        "silu" => Activation::Silu,
        "identity" | "linear" => Activation::Identity,
        _ => return None,
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Activation, Arch, Given, Layer};
    use crate::finding::Location;

    fn parse(v: serde_json::Value) -> Result<Arch, String> {
        Arch::parse(
            &v,
            "arch",
            Location::file("m.json"),
            Given::default(),
            &|_| None,
        )
        .map_err(|e| e.to_string())
    }

    fn with_layers(layers: serde_json::Value) -> serde_json::Value {
        json!({"type": "mlp", "layers": layers, "heads": [{"name": "y", "layer": "head"}]})
    }

    #[test]
    fn the_first_format_is_the_layer_list_it_stands_for() {
        let first = parse(
            json!({"type": "mlp", "input_dim": 3, "hidden": [4], "activation": "relu",
            "layers": ["net.0"], "heads": [{"name": "y", "layer": "head"}]}),
        )
        .unwrap();
        let list = parse(with_layers(json!([
            {"type": "Linear", "name": "net.0", "in_features": 3, "out_features": 4},
            {"type": "ReLU", "inplace": true},
        ])))
        .unwrap();
        assert_eq!(first, list);
        assert_eq!(list.width(), 4);
        assert!(super::super::differences(&first, &list).is_empty());
    }

    #[test]
    fn a_window_runs_bar_by_bar_until_its_flatten() {
        let win = |window: serde_json::Value, layers| {
            let mut v = with_layers(layers);
            v["window"] = window;
            parse(v)
        };
        let layers = json!([
            {"type": "Linear", "name": "bar", "in_features": 3, "out_features": 2},
            {"type": "Tanh"},
            {"type": "Flatten"},
            {"type": "Linear", "name": "mlp", "in_features": 8, "out_features": 5},
        ]);
        let a = win(json!(4), layers.clone()).unwrap();
        assert_eq!(
            (a.input_dim, a.window, a.inputs(), a.width()),
            (3, Some(4), 12, 5)
        );
        // From the checkpoint's own `window` when `arch` leaves it out; both stated must agree.
        let mut v = with_layers(layers.clone());
        let (four, eight) = (json!(4), json!(8));
        let given = |w| Given {
            width: None,
            window: Some(w),
        };
        let a = Arch::parse(&v, "arch", Location::file("m.json"), given(&four), &|_| {
            None
        });
        assert_eq!(a.unwrap().window, Some(4));
        v["window"] = json!(4);
        let e = Arch::parse(&v, "arch", Location::file("m.json"), given(&eight), &|_| {
            None
        });
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("`arch.window` is 4, but the checkpoint's window is 8")
        );
        // A window of the wrong length shows in the first flat layer's width.
        let e = win(json!(8), layers.clone()).unwrap_err();
        assert!(
            e.contains(
                "`arch.layers.3.in_features` is 8, but the Flatten (layers.2) gives 8 bars × 2 = 16"
            ),
            "{e}"
        );
        // Without a Flatten the heads would get bars, not rows.
        let e = win(
            json!(4),
            json!([{"type": "Linear", "name": "bar", "in_features": 3, "out_features": 2}]),
        )
        .unwrap_err();
        assert!(e.contains("nothing puts the bars together"), "{e}");
        // BatchNorm1d on `[batch, window, width]` normalises over the window's axis.
        let e = win(
            json!(4),
            json!([{"type": "BatchNorm1d", "name": "bn", "num_features": 3}, {"type": "Flatten"}]),
        )
        .unwrap_err();
        assert!(
            e.contains("`arch.layers.0` is a BatchNorm1d on a window"),
            "{e}"
        );
        // Only nn.Flatten()'s defaults; on rows, a Flatten is the identity.
        let e = win(json!(4), json!([{"type": "Flatten", "start_dim": 0}])).unwrap_err();
        assert!(e.contains("`arch.layers.0.start_dim` must be 1"), "{e}");
        let rows = parse(with_layers(json!([
            {"type": "Flatten"},
            {"type": "Linear", "name": "l", "in_features": 3, "out_features": 2},
        ])))
        .unwrap();
        assert_eq!((rows.input_dim, rows.window, rows.width()), (3, None, 2));
    }

    #[test]
    fn pytorch_defaults_apply_to_arguments_left_out() {
        let a = parse(with_layers(json!([
            {"type": "BatchNorm1d", "name": "bn", "num_features": 3},
            {"type": "Linear", "name": "l", "in_features": 3, "out_features": 2, "bias": false},
            {"type": "LeakyReLU"},
            {"type": "GELU", "approximate": "tanh"},
            {"type": "Softplus"},
            {"type": "LayerNorm", "name": "ln", "normalized_shape": [2], "elementwise_affine": false},
        ])))
        .unwrap();
        assert_eq!(a.input_dim, 3, "the first sized layer's width");
        assert_eq!(
            a.layers[0],
            Layer::BatchNorm1d {
                module: "bn".into(),
                features: 3,
                eps: 1e-5,
                affine: true
            }
        );
        assert_eq!(
            a.layers[2],
            Layer::Activation(Activation::LeakyRelu { slope: 0.01 })
        );
        assert_eq!(
            a.layers[3],
            Layer::Activation(Activation::Gelu { tanh: true })
        );
        assert_eq!(
            a.layers[4],
            Layer::Activation(Activation::Softplus {
                beta: 1.0,
                threshold: 20.0
            })
        );
        let names: Vec<String> = a.params().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "bn.weight",
                "bn.bias",
                "bn.running_mean",
                "bn.running_var",
                "bn.num_batches_tracked",
                "l.weight",
                "head.weight",
                "head.bias"
            ]
        );
    }

    #[test]
    fn each_mistake_names_the_field() {
        let cases = [
            (
                json!([{"type": "Linear", "name": "l", "in_features": 3, "out_features": 4},
                       {"type": "LeakyReLU", "negativ_slope": 0.1}]),
                "`arch.layers.1.negativ_slope` is not an argument of LeakyReLU (it takes negative_slope, inplace)",
            ),
            (
                json!([{"type": "Linear", "name": "l", "in_features": 3, "out_features": 4},
                       {"type": "BatchNorm1d", "name": "bn", "num_features": 5}]),
                "`arch.layers.1.num_features` is 5, but `l` (layers.0) gives 4",
            ),
            (
                json!([{"type": "Conv1d", "name": "c"}]),
                "`arch.layers.0.type` is `Conv1d`; the native engine runs Linear, BatchNorm1d",
            ),
            (
                json!([{"type": "BatchNorm1d", "name": "bn", "num_features": 3, "track_running_stats": false}]),
                "`arch.layers.0.track_running_stats` is false",
            ),
            (
                json!([{"type": "Linear", "name": "l", "in_features": 3, "out_features": 4},
                       {"type": "GELU", "approximate": "fast"}]),
                "`arch.layers.1.approximate` must be `none` or `tanh`",
            ),
            (
                json!([{"type": "Linear", "name": "bad name", "in_features": 3, "out_features": 4}]),
                "`arch.layers.0.name` must be a state-dict module name",
            ),
            (
                json!([{"type": "LayerNorm", "name": "ln", "normalized_shape": [2, 3]}]),
                "`arch.layers.0.normalized_shape` must be one width",
            ),
        ];
        for (layers, want) in cases {
            let err = parse(with_layers(layers)).unwrap_err();
            assert!(err.contains(want), "{err}\n  wanted: {want}");
        }
    }

    #[test]
    fn inference_no_ops_and_pytorch_s_own_spelling_compare_equal() {
        // The helper writes `bias: false` for a LayerNorm without elementwise_affine (PyTorch has no
        // bias then); a hand-written one leaves it out. Dropout and Identity do nothing at inference.
        let helper = parse(with_layers(json!([
            {"type": "Linear", "name": "n.0", "in_features": 3, "out_features": 4},
            {"type": "Dropout", "p": 0.2},
            {"type": "LayerNorm", "name": "n.2", "normalized_shape": [4], "elementwise_affine": false, "bias": false},
            {"type": "Identity"},
        ])))
        .unwrap();
        let by_hand = parse(with_layers(json!([
            {"type": "Linear", "name": "n.0", "in_features": 3, "out_features": 4},
            {"type": "LayerNorm", "name": "n.2", "normalized_shape": 4, "elementwise_affine": false},
        ])))
        .unwrap();
        assert!(super::super::differences(&by_hand, &helper).is_empty());
        // Indices are the `arch`'s own, Dropout counted.
        let slope = parse(with_layers(json!([
            {"type": "Linear", "name": "n.0", "in_features": 3, "out_features": 4},
            {"type": "Dropout"},
            {"type": "LeakyReLU", "negative_slope": 0.2},
        ])))
        .unwrap();
        let model = parse(with_layers(json!([
            {"type": "Linear", "name": "n.0", "in_features": 3, "out_features": 4},
            {"type": "Dropout"},
            {"type": "LeakyReLU", "negative_slope": 0.1},
        ])))
        .unwrap();
        let d = super::super::differences(&slope, &model);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].layer, Some(2));
        assert!(
            d[0].what
                .starts_with("layers.2: `arch` has LeakyReLU(negative_slope=0.2)")
        );
    }

    #[test]
    fn tensors_give_the_layer_entries_they_can_show() {
        let t = |n: &str, s: &[u64]| (n.to_owned(), "float32".to_owned(), s.to_vec());
        let entries = super::super::layer_entries(&[
            t("net.10.weight", &[2, 4]),
            t("net.10.bias", &[2]),
            t("net.2.running_mean", &[4]),
            t("net.2.running_var", &[4]),
            t("net.2.num_batches_tracked", &[]),
            t("net.0.weight", &[4, 3]),
            t("net.3.weight", &[4]),
            t("net.4.weight", &[4, 4, 3]),
        ]);
        assert_eq!(
            entries,
            [
                r#"{"type": "Linear", "name": "net.0", "in_features": 3, "out_features": 4, "bias": false}"#,
                r#"{"type": "BatchNorm1d", "name": "net.2", "num_features": 4, "affine": false}"#,
                r#"{"type": "LayerNorm", "name": "net.3", "normalized_shape": [4], "bias": false}"#,
                "# `net.4` (weight): not a layer the native engine runs",
                r#"{"type": "Linear", "name": "net.10", "in_features": 4, "out_features": 2, "bias": true}"#,
            ]
        );
        // Each entry parses as a layer of the list (the comment line aside).
        for e in entries.iter().filter(|e| !e.starts_with('#')) {
            serde_json::from_str::<serde_json::Value>(e).unwrap();
        }
    }

    #[test]
    fn differences_name_the_layer() {
        let model = parse(with_layers(json!([
            {"type": "Linear", "name": "n.0", "in_features": 3, "out_features": 4},
            {"type": "BatchNorm1d", "name": "n.1", "num_features": 4},
            {"type": "LeakyReLU", "negative_slope": 0.1},
        ])))
        .unwrap();
        let written = parse(with_layers(json!([
            {"type": "Linear", "name": "n.0", "in_features": 3, "out_features": 4},
            {"type": "ReLU"},
        ])))
        .unwrap();
        let d: Vec<String> = super::super::differences(&written, &model)
            .into_iter()
            .map(|d| d.what)
            .collect();
        assert_eq!(
            d,
            [
                "layers.1: `arch` has ReLU, which the model does not",
                "`arch` leaves out the model's layers.1: `n.1` BatchNorm1d(4, eps=1e-5, affine=True)",
                "`arch` leaves out the model's layers.2: LeakyReLU(negative_slope=0.1)",
            ]
        );
    }
}
