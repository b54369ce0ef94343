//! The native engine: an MLP built from the checkpoint's `arch` with burn (ndarray backend), weights
//! loaded from the `.pt` or `.safetensors` file through burn-store.
//!
//! burn-store reads the file again (the safe reader only read its header); `engine::load` is called only
//! for a checkpoint the safe reader has opened, so a pickle naming a global outside the weights-only
//! allowlist never reaches it. Tensor names come from `arch` (never from dict order) and are remapped
//! one by one onto the module's fields.

use burn::module::{Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::module::{batch_norm, layer_norm};
use burn::tensor::{Device, Tensor, TensorData, activation};

use super::arch::{self, Activation, Arch, Cell, Layer, Recurrent, SeqOutput};
use super::{Engine, Outputs};
use crate::checkpoint::{CheckpointInfo, Format};
use crate::config::CheckpointKeys;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::paths::display_path;

/// The network's modules, one list per kind; [`Step`]s say in which order they run. Field names are
/// unusual on purpose: remapped names cannot collide with a checkpoint's own names.
#[derive(Module, Debug)]
struct Net {
    plumbline_linear: Vec<Linear>,
    plumbline_batchnorm: Vec<BatchNorm>,
    plumbline_layernorm: Vec<LayerNorm>,
    plumbline_recurrent: Vec<RecurrentNet>,
    plumbline_heads: Vec<Linear>,
}

/// An LSTM's or GRU's weights as PyTorch fuses them (gates stacked), one cell per layer and
/// direction.
#[derive(Module, Debug)]
struct RecurrentNet {
    cells: Vec<CellWeights>,
}

#[derive(Module, Debug)]
pub(super) struct CellWeights {
    /// `[gates·hidden, input]`
    pub weight_ih: Param<Tensor<2>>,
    /// `[gates·hidden, hidden]`
    pub weight_hh: Param<Tensor<2>>,
    pub bias_ih: Option<Param<Tensor<1>>>,
    pub bias_hh: Option<Param<Tensor<1>>>,
}

/// How a recurrent step of the trunk runs: its cell, sizes, the window it runs over and what it
/// passes on.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecurrentStep {
    pub cell: Cell,
    pub hidden: usize,
    pub layers: usize,
    pub directions: usize,
    pub bars: usize,
    pub output: SeqOutput,
}

/// One step of the trunk: a module of [`Net`] by index (with its `eps`), or an activation.
#[derive(Debug, Clone, Copy)]
enum Step {
    Linear(usize),
    BatchNorm(usize, f64),
    LayerNorm(usize, f64),
    /// A window's `n` bars put side by side: `[batch·n, width]` → `[batch, n·width]`.
    Flatten(usize),
    /// An LSTM or GRU of [`Net`] by index over the window's bars.
    Recurrent(usize, RecurrentStep),
    Activation(Activation),
}

pub struct NativeEngine {
    net: Net,
    /// Where the state dict is, for [`Engine::weights_sha256`].
    weights: Weights,
    steps: Vec<Step>,
    heads: Vec<String>,
    /// Inputs per row: `[batch, window, input_dim]` flattened for a model that takes windows.
    input_dim: usize,
    /// Bars per window: the trunk runs bar by bar (`[batch·window, input_dim]`) until its Flatten.
    window: Option<usize>,
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
        let built = file.net(&arch, &device)?;
        // Where the state dict sits: the top-level key burn opens, and the rest as a name prefix.
        let sd = info.state_dict_key(&keys.state_dict);
        // A safetensors file has no top level to open: the whole key is a name prefix.
        let (top, inner) = match (info.format, sd.as_deref()) {
            (Format::Torch, Some(k)) => {
                let (top, inner) = k.split_once('.').unwrap_or((k, ""));
                (Some(top.to_owned()), inner.to_owned())
            }
            (_, Some(k)) => (None, k.to_owned()),
            (_, None) => (None, String::new()),
        };
        let remaps = built.remaps(&inner);
        let owned = built.owned_prefixes(&inner);
        let mut net = built.net;
        let result = file.load_into(&mut net, top.as_deref(), &remaps)?;
        // A norm layer without affine parameters keeps burn's ones and zeros.
        let missing: Vec<_> = result
            .missing
            .iter()
            .filter(|(path, _)| !built.no_tensor.contains(path))
            .collect();
        if !result.errors.is_empty() || !missing.is_empty() {
            return Err(file.fail(format!("loading the weights failed:\n{result}")));
        }
        // A tensor of a module `arch` names that no parameter took (a second LSTM layer, a bias
        // `arch` says is absent): the model would run without it. Fail closed.
        let unused: Vec<&str> = result
            .unused
            .iter()
            .map(String::as_str)
            .filter(|u| owned.iter().any(|p| u.starts_with(p.as_str())))
            // A counter of training steps, which eval mode never reads.
            .filter(|u| !u.ends_with(".num_batches_tracked"))
            .collect();
        if !unused.is_empty() {
            return Err(file.fail(format!(
                "`arch` leaves tensors of its own modules unused, so the model would run without them: {} (checkpoint-inventory: arch-tensor-unused)",
                unused.join(", ")
            )));
        }
        Ok(NativeEngine {
            net,
            weights: Weights {
                path: info.path.clone(),
                format: info.format,
                top,
                inner,
            },
            steps: built.steps,
            input_dim: arch.inputs(),
            window: arch.window,
            heads: arch.heads.into_iter().map(|h| h.name).collect(),
            device,
        })
    }
}

/// Where a checkpoint's state dict is: the file, the top-level key burn opens, and the name prefix
/// below it.
struct Weights {
    path: std::path::PathBuf,
    format: Format,
    top: Option<String>,
    inner: String,
}

impl Weights {
    /// sha256 over every tensor of the state dict, sorted by name (relative to the model, as `arch`
    /// names them): `name NUL dtype NUL shape NUL` then the little-endian bytes, as
    /// `python/plumbline_torch.py` computes it from `model.state_dict()`. The same weights give the
    /// same hash in a `.pt`, a bare state dict or a `.safetensors` file.
    fn sha256(&self) -> Result<String> {
        use burn::store::ModuleStore;
        use sha2::{Digest, Sha256};
        let fail = |e: String| {
            Error::msg(format!(
                "{}: reading the weights: {e}",
                display_path(&self.path)
            ))
        };
        let mut torch;
        let mut safe;
        let all = match self.format {
            Format::Torch => {
                torch = torch_store(&self.path, self.top.as_deref());
                torch.get_all_tensors().map_err(|e| fail(e.to_string()))?
            }
            Format::Safetensors => {
                safe = safetensors_store(&self.path);
                safe.get_all_tensors().map_err(|e| fail(e.to_string()))?
            }
            Format::Pickle => return Err(fail("a plain pickle holds no tensors".into())),
        };
        let prefix = if self.inner.is_empty() {
            String::new()
        } else {
            format!("{}.", self.inner)
        };
        let mut h = Sha256::new();
        for (name, t) in all {
            let Some(name) = name.strip_prefix(&prefix) else {
                continue;
            };
            let shape: Vec<String> = t.shape.iter().map(ToString::to_string).collect();
            h.update(format!(
                "{name}\0{}\0{}\0",
                torch_dtype(t.dtype),
                shape.join(",")
            ));
            h.update(&*t.to_bytes().map_err(|e| fail(e.to_string()))?);
        }
        Ok(format!("sha256:{}", crate::checkpoint::hex(&h.finalize())))
    }
}

/// The torch archive's tensors as the file names them (burn renumbers `trunk.2` to `trunk.1` by
/// default), below the top-level key `top` when the state dict sits under one: what loading and the
/// weights' hash both read.
fn torch_store(path: &std::path::Path, top: Option<&str>) -> PytorchStore {
    let store = PytorchStore::from_file(path).map_indices_contiguous(false);
    match top {
        Some(top) => store.with_top_level_key(top),
        None => store,
    }
}

/// A safetensors file's tensors as the file names them.
fn safetensors_store(path: &std::path::Path) -> SafetensorsStore {
    SafetensorsStore::from_file(path).map_indices_contiguous(false)
}

/// torch's name of a dtype (`float32`), as `str(t.dtype)` gives it without `torch.`.
fn torch_dtype(d: burn::tensor::DType) -> String {
    use burn::tensor::DType;
    match d {
        DType::F64 => "float64".into(),
        DType::F32 | DType::Flex32 => "float32".into(),
        DType::F16 => "float16".into(),
        DType::BF16 => "bfloat16".into(),
        DType::I64 => "int64".into(),
        DType::I32 => "int32".into(),
        DType::I16 => "int16".into(),
        DType::I8 => "int8".into(),
        DType::U64 => "uint64".into(),
        DType::U32 => "uint32".into(),
        DType::U16 => "uint16".into(),
        DType::U8 => "uint8".into(),
        DType::Bool(_) => "bool".into(),
        other => format!("{other:?}"),
    }
}

/// The network `arch` describes, before its weights are loaded.
struct Built {
    net: Net,
    steps: Vec<Step>,
    /// Each module name of `arch` with the field path of [`Net`] it loads into.
    modules: Vec<(String, String)>,
    /// Each tensor of a recurrent module (`rnn.weight_ih_l1_reverse`) with its field path.
    tensors: Vec<(String, String)>,
    /// Parameters the checkpoint has no tensor for by design (a norm layer without affine
    /// parameters).
    no_tensor: Vec<String>,
}

impl Built {
    /// Each module name as an anchored pattern (`^net\.0\.`; a recurrent tensor's whole name) with its
    /// field path. `inner`: the state dict's
    /// key below the top-level key burn opens (`state_dict` of `model.state_dict`), empty when the
    /// names start at the module.
    fn remaps(&self, inner: &str) -> Vec<(String, String)> {
        let modules = self.modules.iter().map(|(module, field)| {
            (
                format!("^{}\\.", escaped(&below(inner, module))),
                format!("{field}."),
            )
        });
        let tensors = self.tensors.iter().map(|(tensor, field)| {
            (
                format!("^{}$", escaped(&below(inner, tensor))),
                field.clone(),
            )
        });
        modules.chain(tensors).collect()
    }

    /// Names an unused tensor starts with when it belongs to a module `arch` names: a field of
    /// [`Net`] (a remapped module's tensor with no parameter), or a recurrent module's own name (its
    /// tensors are remapped one by one).
    fn owned_prefixes(&self, inner: &str) -> Vec<String> {
        let mut out = vec!["plumbline_".to_owned()];
        for (tensor, _) in &self.tensors {
            let module = tensor.rsplit_once('.').map_or(tensor.as_str(), |(m, _)| m);
            let full = format!("{}.", below(inner, module));
            if !out.contains(&full) {
                out.push(full);
            }
        }
        out
    }

    /// A recurrent layer over windows of `bars` bars: its cells with PyTorch's shapes (loaded by
    /// name, tensor by tensor).
    fn add_recurrent(&mut self, r: &Recurrent, bars: usize, device: &Device) {
        let index = self.net.plumbline_recurrent.len();
        let mut cells: Vec<CellWeights> = Vec::new();
        for (name, shape, cell) in r.tensors() {
            if cell == cells.len() {
                cells.push(CellWeights {
                    weight_ih: Param::from_tensor(Tensor::zeros([1, 1], device)),
                    weight_hh: Param::from_tensor(Tensor::zeros([1, 1], device)),
                    bias_ih: None,
                    bias_hh: None,
                });
            }
            let c = &mut cells[cell];
            let (field, _) = name
                .split_once("_l")
                .expect("PyTorch's recurrent tensor names");
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            match (field, dims.as_slice()) {
                ("weight_ih", &[a, b]) => {
                    c.weight_ih = Param::from_tensor(Tensor::zeros([a, b], device))
                }
                ("weight_hh", &[a, b]) => {
                    c.weight_hh = Param::from_tensor(Tensor::zeros([a, b], device))
                }
                ("bias_ih", &[a]) => {
                    c.bias_ih = Some(Param::from_tensor(Tensor::zeros([a], device)))
                }
                ("bias_hh", &[a]) => {
                    c.bias_hh = Some(Param::from_tensor(Tensor::zeros([a], device)))
                }
                _ => unreachable!("Recurrent::tensors gives these four"),
            }
            self.tensors.push((
                format!("{}.{name}", r.module),
                format!("plumbline_recurrent.{index}.cells.{cell}.{field}"),
            ));
        }
        self.net.plumbline_recurrent.push(RecurrentNet { cells });
        self.steps.push(Step::Recurrent(
            index,
            RecurrentStep {
                cell: r.cell,
                hidden: r.hidden,
                layers: r.layers,
                directions: r.directions(),
                bars,
                output: r.output,
            },
        ));
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

    /// The `[out, in]` shape of `layer`'s weight (torch stores Linear weights as `[out, in]`).
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

    /// The network `arch` describes, each Linear's shape checked against its weight's (weights not
    /// yet loaded).
    fn net(&self, arch: &Arch, device: &Device) -> Result<Built> {
        let mut b = Built {
            net: Net {
                plumbline_linear: Vec::new(),
                plumbline_batchnorm: Vec::new(),
                plumbline_layernorm: Vec::new(),
                plumbline_recurrent: Vec::new(),
                plumbline_heads: Vec::new(),
            },
            steps: Vec::new(),
            modules: Vec::new(),
            tensors: Vec::new(),
            no_tensor: Vec::new(),
        };
        for (layer, bars) in arch.layers.iter().zip(arch.open_bars()) {
            match layer {
                // The identity without a window left to flatten.
                Layer::Flatten => {
                    if let Some(n) = bars {
                        b.steps.push(Step::Flatten(n));
                    }
                }
                Layer::Recurrent(r) => b.add_recurrent(r, bars.unwrap_or(1), device),
                _ => self.add(&mut b, layer, device)?,
            }
        }
        let width = arch.width();
        for h in &arch.heads {
            let (o, i) = self.shape(&h.layer)?;
            if i != width {
                return Err(self.fail(format!(
                    "head `{}`: `{}.weight` takes {i} inputs, but the trunk gives {width}",
                    h.name, h.layer
                )));
            }
            let field = format!("plumbline_heads.{}", b.net.plumbline_heads.len());
            b.modules.push((h.layer.clone(), field));
            b.net
                .plumbline_heads
                .push(LinearConfig::new(i, o).init(device));
        }
        Ok(b)
    }

    /// Adds one trunk layer to `b`.
    fn add(&self, b: &mut Built, layer: &Layer, device: &Device) -> Result<()> {
        let n = &mut b.net;
        match layer {
            Layer::Linear {
                module,
                inputs,
                outputs,
                bias,
            } => {
                let (o, i) = self.shape(module)?;
                if (o, i) != (*outputs, *inputs) {
                    return Err(self.fail(format!(
                        "`{module}.weight` has shape [{o}, {i}], but `arch` says [{outputs}, {inputs}]"
                    )));
                }
                let field = format!("plumbline_linear.{}", n.plumbline_linear.len());
                b.steps.push(Step::Linear(n.plumbline_linear.len()));
                b.modules.push((module.clone(), field));
                n.plumbline_linear
                    .push(LinearConfig::new(i, o).with_bias(*bias).init(device));
            }
            Layer::BatchNorm1d {
                module,
                features,
                eps,
                affine,
            } => {
                let field = format!("plumbline_batchnorm.{}", n.plumbline_batchnorm.len());
                if !affine {
                    b.no_tensor.push(format!("{field}.gamma"));
                    b.no_tensor.push(format!("{field}.beta"));
                }
                b.steps
                    .push(Step::BatchNorm(n.plumbline_batchnorm.len(), *eps));
                b.modules.push((module.clone(), field));
                n.plumbline_batchnorm.push(
                    BatchNormConfig::new(*features)
                        .with_epsilon(*eps)
                        .init(device),
                );
            }
            Layer::LayerNorm {
                module,
                features,
                eps,
                affine,
                bias,
            } => {
                let field = format!("plumbline_layernorm.{}", n.plumbline_layernorm.len());
                if !affine {
                    b.no_tensor.push(format!("{field}.gamma"));
                }
                b.steps
                    .push(Step::LayerNorm(n.plumbline_layernorm.len(), *eps));
                b.modules.push((module.clone(), field));
                n.plumbline_layernorm.push(
                    LayerNormConfig::new(*features)
                        .with_epsilon(*eps)
                        .with_bias(*bias && *affine)
                        .init(device),
                );
            }
            Layer::Dropout | Layer::Flatten | Layer::Recurrent(_) => {}
            Layer::Activation(a) => b.steps.push(Step::Activation(*a)),
        }
        Ok(())
    }

    /// The weights loaded into `net`, each tensor renamed by `remaps` onto the module's fields.
    fn load_into(
        &self,
        net: &mut Net,
        top: Option<&str>,
        remaps: &[(String, String)],
    ) -> Result<ApplyResult> {
        let info = self.info;
        Ok(match info.format {
            Format::Torch => {
                let mut store = torch_store(&info.path, top).allow_partial(true);
                for (from, to) in remaps {
                    store = store.with_key_remapping(from, to.as_str());
                }
                net.load_from(&mut store)
                    .map_err(|e| self.fail(e.to_string()))?
            }
            Format::Safetensors => {
                let mut store = safetensors_store(&info.path)
                    .with_from_adapter(PyTorchToBurnAdapter)
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

/// `name` with its dots escaped for a remapping pattern (module names are checked to hold only
/// `[A-Za-z0-9_.]`).
fn escaped(name: &str) -> String {
    name.replace('.', "\\.")
}

/// `name` below the state dict's key `inner` (`model.net.0` for `net.0` under `model`).
fn below(inner: &str, name: &str) -> String {
    if inner.is_empty() {
        name.to_owned()
    } else {
        format!("{inner}.{name}")
    }
}

fn act(a: Activation, x: Tensor<2>) -> Tensor<2> {
    match a {
        Activation::Relu => activation::relu(x),
        Activation::LeakyRelu { slope } => activation::leaky_relu(x, slope),
        Activation::Elu { alpha } => activation::elu(x, alpha),
        // Composed from erf rather than `activation::gelu`: burn 0.22 differentiates its GELU as the
        // tanh approximation, 6e-4 off torch's gradient (docs/decisions.md).
        Activation::Gelu { tanh: false } => {
            let phi = x
                .clone()
                .div_scalar(std::f64::consts::SQRT_2)
                .erf()
                .add_scalar(1.0);
            x.mul(phi).mul_scalar(0.5)
        }
        Activation::Gelu { tanh: true } => activation::gelu_approximate(x),
        Activation::Silu => activation::silu(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Softplus { beta, threshold } => {
            activation::softplus_with_threshold(x, beta, threshold)
        }
        Activation::Identity => x,
    }
}

/// A parameter's value, joining an autodiff graph as a constant when `grad` is set.
pub(super) fn constant<const D: usize>(t: Tensor<D>, grad: bool) -> Tensor<D> {
    if grad { t.autodiff() } else { t }
}

/// `x · W + b` (burn stores a Linear weight as `[in, out]`).
fn linear(layer: &Linear, x: Tensor<2>, grad: bool) -> Tensor<2> {
    let y = x.matmul(constant(layer.weight.val(), grad));
    match &layer.bias {
        Some(b) => y + constant(b.val(), grad).unsqueeze_dim(0),
        None => y,
    }
}

impl NativeEngine {
    /// The trunk on `x`, in eval mode: BatchNorm1d by its running statistics, Dropout the identity.
    /// With `grad`, the parameters join `x`'s autodiff graph as constants.
    fn trunk(&self, mut x: Tensor<2>, grad: bool) -> Tensor<2> {
        let n = &self.net;
        if let Some(bars) = self.window {
            // `[batch, window·width]` as one bar per row: what acts on the last axis acts per bar.
            let [rows, cols] = x.dims();
            x = x.reshape([rows * bars, cols / bars]);
        }
        for step in &self.steps {
            x = match *step {
                Step::Linear(i) => linear(&n.plumbline_linear[i], x, grad),
                Step::BatchNorm(i, eps) => {
                    let bn = &n.plumbline_batchnorm[i];
                    batch_norm(
                        x,
                        constant(bn.gamma.val(), grad),
                        constant(bn.beta.val(), grad),
                        constant(bn.running_mean.value(), grad),
                        constant(bn.running_var.value(), grad),
                        eps,
                    )
                }
                Step::LayerNorm(i, eps) => {
                    let ln = &n.plumbline_layernorm[i];
                    let beta = ln.beta.as_ref().map(|b| constant(b.val(), grad));
                    layer_norm(x, constant(ln.gamma.val(), grad), beta, eps)
                }
                Step::Flatten(bars) => {
                    let [rows, cols] = x.dims();
                    x.reshape([rows / bars, cols * bars])
                }
                Step::Recurrent(i, step) => {
                    super::recurrent::run(&n.plumbline_recurrent[i].cells, step, x, grad)
                }
                Step::Activation(a) => act(a, x),
            };
        }
        x
    }
}

impl Engine for NativeEngine {
    fn kind(&self) -> &'static str {
        "native"
    }

    fn input_dim(&self) -> usize {
        self.input_dim
    }

    fn window(&self) -> Option<usize> {
        self.window
    }

    fn weights_sha256(&self) -> Option<Result<String>> {
        Some(guarded("reading the weights", || self.weights.sha256()))
    }

    fn forward(&self, inputs: &Matrix) -> Result<Outputs> {
        self.check_width(inputs)?;
        if inputs.rows == 0 {
            // burn's matmul divides by the row count.
            return Err(Error::msg("native engine: no rows to run the model on"));
        }
        // Compute in the weights' own precision (a float64 checkpoint runs in float64).
        guarded("the forward pass", || {
            let x = self.trunk(self.input(inputs, &self.device), false);
            let mut out = Outputs::new();
            for (name, head) in self.heads.iter().zip(&self.net.plumbline_heads) {
                out.insert(
                    name.clone(),
                    to_matrix(linear(head, x.clone(), false), name)?,
                );
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
        // constants. Rows are independent (eval mode), so the gradient of the sum over rows of one
        // output unit is each row's own gradient.
        Some(guarded("the backward pass", || {
            let device = self.device.clone().autodiff();
            let x = self.input(inputs, &device).require_grad();
            let z = self.trunk(x.clone(), true);
            let y = linear(&self.net.plumbline_heads[h], z, true);
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
            .plumbline_linear
            .first()
            .unwrap_or(&self.net.plumbline_heads[0]);
        let dtype = first.weight.val().dtype();
        let data = TensorData::new(inputs.data.clone(), [inputs.rows, inputs.cols]);
        Tensor::<2>::from_data(data, (device, dtype))
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
