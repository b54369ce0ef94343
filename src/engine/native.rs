//! The native engine: an MLP built from the checkpoint's `arch` with burn (ndarray backend), weights
//! loaded from the `.pt` or `.safetensors` file through burn-store.
//!
//! burn-store reads the file again (the safe reader only read its header); `engine::load` is called only
//! for a checkpoint the safe reader has opened, so a pickle naming a global outside the weights-only
//! allowlist never reaches it. Tensor names come from `arch` (never from dict order) and are remapped
//! one by one onto the module's fields.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::{Device, Tensor, TensorData, activation};

use super::arch::{self, Activation, Arch};
use super::{Engine, Outputs};
use crate::checkpoint::{CheckpointInfo, Format};
use crate::config::CheckpointKeys;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::paths::display_path;

/// Field names are unusual on purpose: remapped names cannot collide with a checkpoint's own names.
#[derive(Module, Debug)]
struct Mlp {
    plumbline_trunk: Vec<Linear>,
    plumbline_heads: Vec<Linear>,
}

pub struct NativeEngine {
    net: Mlp,
    activation: Activation,
    heads: Vec<String>,
    input_dim: usize,
    device: Device,
}

#[allow(deprecated)] // burn 0.22 deprecates ndarray in favour of flex; see docs/decisions.md
fn device() -> Device {
    Device::ndarray()
}

impl NativeEngine {
    pub fn load(info: &CheckpointInfo, keys: &CheckpointKeys, arch: Arch) -> Result<NativeEngine> {
        let file = WeightSource {
            info,
            keys,
            display: display_path(&info.path),
        };
        let device = device();
        let mut net = file.mlp(&arch, &device)?;
        // Where the state dict sits: the top-level key burn opens, and the rest as a name prefix.
        let sd = info.state_dict_key(&keys.state_dict);
        let (top, inner) = match sd.as_deref().map(|k| k.split_once('.').unwrap_or((k, ""))) {
            Some((top, inner)) => (Some(top.to_owned()), inner.to_owned()),
            None => (None, String::new()),
        };
        let result = file.load_into(&mut net, top.as_deref(), &remaps(&arch, &inner))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(file.fail(format!("loading the weights failed:\n{result}")));
        }
        Ok(NativeEngine {
            net,
            activation: arch.activation,
            heads: arch.heads.into_iter().map(|h| h.name).collect(),
            input_dim: arch.input_dim,
            device,
        })
    }
}

/// Where the weights come from: the checkpoint, its configured keys, and its name in errors.
struct WeightSource<'a> {
    info: &'a CheckpointInfo,
    keys: &'a CheckpointKeys,
    display: String,
}

impl WeightSource<'_> {
    /// An error of the native engine, naming the checkpoint.
    fn fail(&self, msg: String) -> Error {
        Error::msg(format!("{}: native engine: {msg}", self.display))
    }

    /// The `[out, in]` shape of `layer`'s weight: layer sizes come from the weights' shapes (torch
    /// stores Linear weights as [out, in]).
    fn shape(&self, layer: &str) -> Result<(usize, usize)> {
        let w = arch::weight(self.info, self.keys, layer)
            .ok_or_else(|| self.fail(format!("no tensor `{layer}.weight` (named by `arch`)")))?;
        match w.shape.as_slice() {
            [o, i] => Ok((*o as usize, *i as usize)),
            other => Err(self.fail(format!(
                "`{layer}.weight` has shape {other:?}, expected [out, in]"
            ))),
        }
    }

    /// The MLP `arch` describes, each layer's shape checked against its weight's (weights not yet
    /// loaded).
    fn mlp(&self, arch: &Arch, device: &Device) -> Result<Mlp> {
        let mut trunk = Vec::new();
        let mut width = arch.input_dim;
        for (layer, &h) in arch.layers.iter().zip(&arch.hidden) {
            let (o, i) = self.shape(layer)?;
            if (o, i) != (h, width) {
                return Err(self.fail(format!(
                    "`{layer}.weight` has shape [{o}, {i}], but `arch` says [{h}, {width}]"
                )));
            }
            trunk.push(LinearConfig::new(i, o).init(device));
            width = h;
        }
        let mut heads = Vec::new();
        for h in &arch.heads {
            let (o, i) = self.shape(&h.layer)?;
            if i != width {
                return Err(self.fail(format!(
                    "head `{}`: `{}.weight` takes {i} inputs, but the trunk gives {width}",
                    h.name, h.layer
                )));
            }
            heads.push(LinearConfig::new(i, o).init(device));
        }
        Ok(Mlp {
            plumbline_trunk: trunk,
            plumbline_heads: heads,
        })
    }

    /// The weights loaded into `net`, each tensor renamed by `remaps` onto the module's fields.
    fn load_into(
        &self,
        net: &mut Mlp,
        top: Option<&str>,
        remaps: &[(String, String)],
    ) -> Result<ApplyResult> {
        let info = self.info;
        Ok(match info.format {
            Format::Torch => {
                let mut store = PytorchStore::from_file(&info.path)
                    .map_indices_contiguous(false)
                    .allow_partial(true);
                if let Some(top) = top {
                    store = store.with_top_level_key(top);
                }
                for (from, to) in remaps {
                    store = store.with_key_remapping(from, to.as_str());
                }
                net.load_from(&mut store)
                    .map_err(|e| self.fail(e.to_string()))?
            }
            Format::Safetensors => {
                let mut store = SafetensorsStore::from_file(&info.path)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .map_indices_contiguous(false)
                    .allow_partial(true);
                for (from, to) in remaps {
                    store = store.with_key_remapping(from, to.as_str());
                }
                net.load_from(&mut store)
                    .map_err(|e| self.fail(e.to_string()))?
            }
            Format::Pickle => {
                return Err(self.fail(
                    "a plain pickle holds no tensor data; point the production checkpoint at the .pt or .safetensors file with the weights".into(),
                ));
            }
        })
    }
}

/// Each module name of `arch`, anchored (see [`anchored`]), with the field of [`Mlp`] it loads
/// into.
/// `inner`: the state dict's key below the top-level key burn opens (`state_dict` of
/// `model.state_dict`), empty when the names start at the module.
fn remaps(arch: &Arch, inner: &str) -> Vec<(String, String)> {
    let name = |l: &str| {
        if inner.is_empty() {
            anchored(l)
        } else {
            anchored(&format!("{inner}.{l}"))
        }
    };
    let mut remaps = Vec::new();
    for (i, l) in arch.layers.iter().enumerate() {
        remaps.push((name(l), format!("plumbline_trunk.{i}.")));
    }
    for (i, h) in arch.heads.iter().enumerate() {
        remaps.push((name(&h.layer), format!("plumbline_heads.{i}.")));
    }
    remaps
}

/// `^name\.` with the dots escaped (module names are checked to hold only `[A-Za-z0-9_.]`).
fn anchored(name: &str) -> String {
    format!("^{}\\.", name.replace('.', "\\."))
}

fn act(a: Activation, x: Tensor<2>) -> Tensor<2> {
    match a {
        Activation::Relu => activation::relu(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Gelu => activation::gelu(x),
        Activation::Silu => activation::silu(x),
        Activation::Identity => x,
    }
}

impl Engine for NativeEngine {
    fn kind(&self) -> &'static str {
        "native"
    }

    fn input_dim(&self) -> usize {
        self.input_dim
    }

    fn forward(&self, inputs: &Matrix) -> Result<Outputs> {
        self.check_width(inputs)?;
        if inputs.rows == 0 {
            // burn's matmul divides by the row count.
            return Err(Error::msg("native engine: no rows to run the model on"));
        }
        // Compute in the weights' own precision (a float64 checkpoint runs in float64).
        guarded("the forward pass", || {
            let mut x = self.input(inputs, &self.device);
            for layer in &self.net.plumbline_trunk {
                x = act(self.activation, layer.forward(x));
            }
            let mut out = Outputs::new();
            for (name, head) in self.heads.iter().zip(&self.net.plumbline_heads) {
                out.insert(name.clone(), to_matrix(head.forward(x.clone()), name)?);
            }
            Ok(out)
        })
    }

    fn gradients(&self, inputs: &Matrix, head: &str, unit: usize) -> Option<Result<Matrix>> {
        let Some(h) = self.heads.iter().position(|n| n == head) else {
            return Some(Err(Error::msg(format!(
                "native engine: the model has no head `{head}`"
            ))));
        };
        if let Err(e) = self.check_width(inputs) {
            return Some(Err(e));
        }
        if inputs.rows == 0 {
            return Some(Err(Error::msg("native engine: no rows to attribute")));
        }
        // burn autodiff: the inputs are a leaf that keeps its gradient; the weights join the graph as
        // constants. Rows are independent, so the gradient of the sum over rows of one output unit is
        // each row's own gradient.
        Some(guarded("the backward pass", || {
            let device = self.device.clone().autodiff();
            let x = self.input(inputs, &device).require_grad();
            let mut z = x.clone();
            for layer in &self.net.plumbline_trunk {
                z = act(self.activation, constant_linear(layer, z));
            }
            let y = constant_linear(&self.net.plumbline_heads[h], z);
            let [rows, cols] = y.dims();
            if unit >= cols {
                return Err(Error::msg(format!(
                    "native engine: head `{head}` has {cols} outputs, no output {unit}"
                )));
            }
            let grads = y.slice([0..rows, unit..unit + 1]).sum().backward();
            let g = x.grad(&grads).ok_or_else(|| {
                Error::msg("native engine: the backward pass gave no gradient for the inputs")
            })?;
            to_matrix(g, head)
        }))
    }
}

impl NativeEngine {
    fn check_width(&self, inputs: &Matrix) -> Result<()> {
        if inputs.cols != self.input_dim {
            return Err(Error::msg(format!(
                "native engine: inputs have {} columns, the model takes {}",
                inputs.cols, self.input_dim
            )));
        }
        Ok(())
    }

    /// The inputs as a tensor in the weights' dtype on `device`.
    fn input(&self, inputs: &Matrix, device: &Device) -> Tensor<2> {
        let first = self
            .net
            .plumbline_trunk
            .first()
            .unwrap_or(&self.net.plumbline_heads[0]);
        let dtype = first.weight.val().dtype();
        let data = TensorData::new(inputs.data.clone(), [inputs.rows, inputs.cols]);
        Tensor::<2>::from_data(data, (device, dtype))
    }
}

/// `x · W + b` with the layer's parameters joining an autodiff graph as constants (burn stores a Linear
/// weight as `[in, out]`).
fn constant_linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    let y = x.matmul(layer.weight.val().autodiff());
    match &layer.bias {
        Some(b) => y + b.val().autodiff().unsqueeze_dim(0),
        None => y,
    }
}

fn to_matrix(t: Tensor<2>, name: &str) -> Result<Matrix> {
    let [rows, cols] = t.dims();
    let values = t
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .map_err(|e| Error::msg(format!("native engine: reading `{name}`: {e:?}")))?;
    Ok(Matrix::new(rows, cols, values))
}

/// Run `f`; a panic inside burn (e.g. layers of mixed dtypes) is an error naming the cause, never a
/// crash.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("unknown cause");
        Err(Error::msg(format!("native engine: {what} failed: {why}")))
    })
}
