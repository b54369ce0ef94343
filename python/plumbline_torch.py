"""plumbline's PyTorch helper: `arch` from a trained module, and the reference outputs that prove it.

plumbline's native engine rebuilds the model from the checkpoint's `arch` (docs/checkpoint-metadata.md).
The tensors show every Linear and norm layer; they cannot show an activation, its slope, or a Dropout.
So the training script writes both from the module itself, right after saving the checkpoint:

    import plumbline_torch as pt

    arch = pt.arch(model, trunk="net", heads={"direction": "heads.direction"})
    json.dump({**meta, "arch": arch}, open("artifacts/model.json", "w"))   # or into the checkpoint
    pt.write_reference(model, scaled_rows, "reference/outputs.json", arch=arch, checkpoint="checkpoints/model.pt")

`[gates.forward-contract] reference = "reference/outputs.json"` then makes forward-contract compare
plumbline's outputs with PyTorch's on those rows, check that the reference was written from the
production checkpoint's weights (their sha256) and that the checkpoint's `arch` is the module's.

Copy this file into your project (it needs only torch), or import it from a plumbline checkout.
Supported layers: Linear, BatchNorm1d (eval), LayerNorm (one normalised axis), Dropout, Flatten,
LSTM, GRU, ReLU, LeakyReLU, ELU, GELU, SiLU, Tanh, Sigmoid, Softplus, Identity. Any other module raises
ValueError: plumbline's native engine cannot run it (use the command engine).

A model over windows of bars takes `[batch, window, features]`: pass `window=N` to `arch`; layers
before its `nn.Flatten()` act on each bar, and `write_reference` takes the scaled windows.
"""

import hashlib
import json
import os

import torch
from torch import nn

# PyTorch class -> the constructor arguments `arch` records (what changes the outputs).
_ARGUMENTS = {
    nn.Linear: lambda m: {
        "in_features": m.in_features,
        "out_features": m.out_features,
        "bias": m.bias is not None,
    },
    nn.BatchNorm1d: lambda m: {
        "num_features": m.num_features,
        "eps": float(m.eps),
        "affine": bool(m.affine),
        "track_running_stats": bool(m.track_running_stats),
    },
    nn.LayerNorm: lambda m: {
        "normalized_shape": [int(n) for n in m.normalized_shape],
        "eps": float(m.eps),
        "elementwise_affine": bool(m.elementwise_affine),
        "bias": getattr(m, "bias", None) is not None,
    },
    nn.Dropout: lambda m: {"p": float(m.p)},
    nn.Flatten: lambda m: {"start_dim": int(m.start_dim), "end_dim": int(m.end_dim)},
    nn.ReLU: lambda m: {},
    nn.LeakyReLU: lambda m: {"negative_slope": float(m.negative_slope)},
    nn.ELU: lambda m: {"alpha": float(m.alpha)},
    nn.GELU: lambda m: {"approximate": m.approximate},
    nn.SiLU: lambda m: {},
    nn.Tanh: lambda m: {},
    nn.Sigmoid: lambda m: {},
    nn.Softplus: lambda m: {"beta": float(m.beta), "threshold": float(m.threshold)},
    nn.Identity: lambda m: {},
}

_HAS_TENSORS = (nn.Linear, nn.BatchNorm1d, nn.LayerNorm)

# Recurrent modules: PyTorch's arguments; `output` (what forward passes on) comes from the trunk entry.
_RECURRENT = {
    nn.LSTM: lambda m: {"proj_size": int(m.proj_size)},
    nn.GRU: lambda m: {},
}
_OUTPUTS = ("last", "final", "sequence")


def _recurrent(module, name, output):
    """An nn.LSTM / nn.GRU entry of `arch`."""
    if output not in _OUTPUTS:
        raise ValueError(
            f"`{name}` is nn.{type(module).__name__}: give the trunk entry as ({name!r}, output) with output one of "
            "'last' (out[:, -1]), 'final' (each direction's final hidden state, h_n) or 'sequence' (every step)"
        )
    return {
        "type": type(module).__name__,
        "name": name,
        "input_size": int(module.input_size),
        "hidden_size": int(module.hidden_size),
        "num_layers": int(module.num_layers),
        "bias": bool(module.bias),
        "batch_first": bool(module.batch_first),
        "dropout": float(module.dropout),
        "bidirectional": bool(module.bidirectional),
        **_RECURRENT[type(module)](module),
        "output": output,
    }


def _layers(module, name):
    """The leaf modules of `module` (state-dict name `name`) in the order a Sequential runs them."""
    # Exactly nn.Sequential: a subclass may override forward().
    if type(module) is nn.Sequential:
        out = []
        for child_name, child in module.named_children():
            out += _layers(child, f"{name}.{child_name}" if name else child_name)
        return out
    kind = type(module)
    if kind in _RECURRENT:
        raise ValueError(
            f"`{name}` is nn.{kind.__name__} inside a Sequential (which cannot run it: it returns a tuple): "
            f"give it as a trunk entry ({name!r}, output), with output 'last', 'final' or 'sequence'"
        )
    if kind not in _ARGUMENTS:
        raise ValueError(
            f"`{name or 'the trunk'}` is nn.{kind.__name__}: plumbline's native engine runs "
            + ", ".join(k.__name__ for k in _ARGUMENTS)
            + " (run this model with the command engine: docs/commands.md#the-command-engine)"
        )
    layer = {"type": kind.__name__}
    if isinstance(module, _HAS_TENSORS):
        layer["name"] = name
    layer.update(_ARGUMENTS[kind](module))
    return [layer]


def arch(model, trunk, heads, input_dim=None, window=None):
    """The `arch` of `model`: `trunk` names the nn.Sequential the inputs run through (module path in
    `model`, "" for the model itself), `heads` maps each head name, in output order, to its nn.Linear's
    module path. The trunk must be a Sequential (nested ones are flattened): plumbline never guesses
    the order `forward` calls modules in. A `forward()` that does more than `trunk(x)` then the heads
    (a residual connection, a skip, a functional activation) is not what `arch` describes: the
    reference outputs written by `write_reference` will not match, and forward-contract says so.
    `window`: the bars per window of a model that takes `[batch, window, features]`.
    `trunk` may also be a list of module paths run in order, an nn.LSTM or nn.GRU given as
    `(path, output)`: `trunk=[("rnn", "last"), "net"]` for `out, _ = self.rnn(x); z = self.net(out[:, -1])`."""
    layers = []
    for part in trunk if isinstance(trunk, list) else [trunk]:
        path, output = part if isinstance(part, tuple) else (part, None)
        body = model.get_submodule(path) if path else model
        if type(body) in _RECURRENT:
            layers.append(_recurrent(body, path, output))
        elif type(body) is nn.Sequential or (isinstance(trunk, list) and type(body) in _ARGUMENTS):
            layers += _layers(body, path)
        else:
            raise ValueError(
                f"`{path or 'the model'}` is {type(body).__name__}, not an nn.Sequential: `arch` describes a "
                "Sequential trunk (or a list of modules: nn.LSTM / nn.GRU as (path, output), Sequentials, "
                "single layers), and the order a custom forward() calls modules in is not in the module tree"
            )
    recurrent = [l for l in layers if l["type"] in ("LSTM", "GRU")]
    if recurrent and not window:
        raise ValueError(f"`{recurrent[0]['name']}` is an {recurrent[0]['type']}: pass window=N, the bars it runs over")
    flat = next(
        (i for i, l in enumerate(layers) if l["type"] == "Flatten" or l.get("output") in ("last", "final")), None
    )
    if window:
        # What plumbline's native engine refuses, refused here first.
        if flat is None:
            raise ValueError(
                f"window={window}, but nothing in the trunk puts the bars together: an nn.Flatten(), or an "
                "LSTM/GRU passing on its last or final step"
            )
        if any(l["type"] == "BatchNorm1d" for l in layers[:flat]):
            raise ValueError("a BatchNorm1d before the Flatten normalises over the window's axis: put it after")
    head_list = []
    for head, path in heads.items():
        layer = model.get_submodule(path)
        if not isinstance(layer, nn.Linear) or layer.bias is None:
            raise ValueError(f"head `{head}`: `{path}` must be an nn.Linear with a bias")
        head_list.append({"name": head, "layer": path})
    first = next((l for l in layers if "name" in l), None)
    if input_dim is None:
        if first is None:
            raise ValueError("the trunk has no Linear or norm layer: pass input_dim")
        input_dim = first.get("in_features", first.get("num_features", first.get("input_size")))
        if input_dim is None:
            input_dim = first["normalized_shape"][-1]
        flattened = any(l["type"] == "Flatten" for l in layers[: layers.index(first)])
        if window and flattened:
            # The first sized layer takes the window's bars side by side.
            if input_dim % window:
                raise ValueError(f"the first layer after Flatten takes {input_dim} inputs, not a multiple of window={window}")
            input_dim //= window
    out = {"type": "mlp", "input_dim": int(input_dim), "layers": layers, "heads": head_list}
    if window:
        out["window"] = int(window)
    return out


def weights_sha256(model):
    """`sha256:<hex>` over the state dict's tensors, as plumbline's native engine reads them from the
    checkpoint: sorted by name, each `name NUL dtype NUL shape NUL` then its little-endian bytes. The
    same weights give the same hash saved as a `.pt`, a bare state dict or a `.safetensors` file.
    `model`: a module or a state dict."""
    sd = model.state_dict() if isinstance(model, nn.Module) else model
    h = hashlib.sha256()
    for name in sorted(sd):
        if not isinstance(sd[name], torch.Tensor):
            continue  # `_extra_state` and other non-tensor entries hold no weights
        t = sd[name].detach().cpu().contiguous()
        shape = ",".join(str(n) for n in t.shape)
        h.update(f"{name}\0{str(t.dtype).replace('torch.', '')}\0{shape}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def write_reference(model, scaled, path, arch=None, outputs=None, raw=None, extra=None, checkpoint=None):
    """Write the reference outputs forward-contract compares with: `model` (put in eval mode) on the
    `scaled` rows (the model's inputs, after the scaler), every head.

    The sha256 of the model's weights (`weights_sha256`) ties the reference to the checkpoint they are
    saved in. `arch`: the module's `arch` (see `arch`), recorded so that a hand-edited `arch` is caught
    by name.
    `outputs(model, x)`: a dict of head name -> tensor; by default `model(x)`, which must return one.
    `raw`: the unscaled rows, kept for people reading the file. `extra`: more top-level keys.
    `checkpoint`: the checkpoint's path, kept for people reading the file.
    """
    was_training = model.training
    model.eval()
    first = next(model.parameters())
    x = torch.as_tensor(scaled, dtype=first.dtype, device=first.device)
    with torch.no_grad():
        out = outputs(model, x) if outputs else model(x)
    model.train(was_training)
    x = x.cpu()
    out = {h: t.detach().cpu() for h, t in out.items()} if isinstance(out, dict) else out
    if not isinstance(out, dict):
        raise ValueError("the model returns a tensor: pass outputs=lambda model, x: {head: tensor}")
    rows = []
    for i in range(x.shape[0]):
        row = {
            "scaled": [float(v) for v in x[i].reshape(-1)],
            "outputs": {h: [float(v) for v in t[i].reshape(-1)] for h, t in out.items()},
        }
        if raw is not None:
            row["raw"] = [float(v) for v in torch.as_tensor(raw[i]).reshape(-1)]
        rows.append(row)
    doc = {
        "weights_sha256": weights_sha256(model),
        "dtype": str(x.dtype).replace("torch.", ""),
        "rows": rows,
        **(extra or {}),
    }
    if checkpoint is not None:
        doc["checkpoint"] = str(checkpoint)
    if arch is not None:
        doc["arch"] = arch
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    return doc
