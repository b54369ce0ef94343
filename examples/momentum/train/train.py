"""Train the momentum model with PyTorch and write everything the tests need from PyTorch.

Writes (paths relative to the repository root):
  examples/momentum/checkpoints/momentum_v3.pt            torch.save archive, metadata per docs/checkpoint-metadata.md
  examples/momentum/checkpoints/momentum_v3.safetensors   the same weights, metadata JSON-encoded in __metadata__
  examples/momentum/reference/outputs.json                PyTorch outputs for 64 rows, every head
  tests/fixtures/reference/integrated_gradients.json      IG attributions for 12 rows, every head output
  tests/fixtures/checkpoints/*.pt                         the defect corpus: one real defect each

Run once, in a venv with torch, numpy and safetensors (CI never runs it; the files it wrote are committed):
  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy safetensors
  /tmp/torchenv/bin/python examples/momentum/train/train.py
"""

import copy
import csv
import hashlib
import json
import os
import sys

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(EXAMPLE))
sys.path.insert(0, EXAMPLE)

sys.path.insert(0, os.path.join(REPO, "python"))

import plumbline_torch as pt  # noqa: E402  (the reference's checkpoint hash and `arch`)
from pipeline.features import FEATURE_COLS, FEATURE_DTYPES, NAN_POLICY, WARMUP_BARS, build_features  # noqa: E402
from pipeline.labels import HORIZON, THRESHOLDS, direction_label, forward_return  # noqa: E402
from pipeline.model import ACTIVATION, HEADS, HEADS_VERSION, HIDDEN, MODEL_VERSION  # noqa: E402

SEED = 7
RUN_ID = f"momentum-v{MODEL_VERSION}-seed{SEED}"
TRAIN_FRACTION = 0.7
EPOCHS = 80
IG_GRID = 4096


def schema_hash(cols, dtypes):
    """docs/checkpoint-metadata.md: sha256 over `name:dtype\\n` per feature, in order."""
    h = hashlib.sha256()
    for name, dtype in zip(cols, dtypes):
        h.update(f"{name}:{dtype}\n".encode("utf-8"))
    return "sha256:" + h.hexdigest()


def load_prices():
    path = os.path.join(EXAMPLE, "data", "prices.csv")
    by_sym = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            by_sym.setdefault(row["symbol"], []).append(row)
    data_sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    frames = {}
    for sym, rows in sorted(by_sym.items()):
        frames[sym] = {
            "timestamp": np.array([int(r["timestamp"]) for r in rows]),
            **{k: np.array([float(r[k]) for r in rows]) for k in ("open", "high", "low", "close", "volume")},
        }
    return frames, data_sha


def dataset(frames):
    xs, ys, mags, ts, syms = [], [], [], [], []
    for sym, fr in frames.items():
        x = build_features(fr)
        fwd = forward_return(fr["close"], HORIZON)
        ok = ~np.isnan(x).any(axis=1) & ~np.isnan(fwd)
        ok[:WARMUP_BARS] = False
        xs.append(x[ok])
        ys.append(direction_label(fwd[ok]))
        mags.append(fwd[ok] * 100.0)
        ts.append(fr["timestamp"][ok])
        syms += [sym] * int(ok.sum())
    order = np.lexsort((np.array(syms), np.concatenate(ts)))
    return (
        np.concatenate(xs)[order],
        np.concatenate(ys)[order],
        np.concatenate(mags)[order],
        np.concatenate(ts)[order],
        [syms[i] for i in order],
    )


def robust_stats(x):
    median = np.median(x, axis=0)
    mad = np.median(np.abs(x - median), axis=0)
    return median, mad


class MomentumMLP(nn.Module):
    """Trunk of Linear+ReLU layers (HIDDEN), one Linear per head (HEADS), outputs keyed by head name."""

    def __init__(self, input_dim):
        super().__init__()
        layers, width = [], input_dim
        for h in HIDDEN:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({h["name"]: nn.Linear(width, h["size"]) for h in HEADS})

    def forward(self, x):
        z = self.trunk(x)
        return {name: head(z) for name, head in self.heads.items()}


def arch_metadata(input_dim):
    linear = [f"trunk.{2 * i}" for i in range(len(HIDDEN))]
    return {
        "type": "mlp",
        "input_dim": input_dim,
        "hidden": list(HIDDEN),
        "activation": ACTIVATION,
        "layers": linear,
        "heads": [{"name": h["name"], "layer": f"heads.{h['name']}"} for h in HEADS],
    }


def metadata(median, mad, n_train, data_sha):
    dtypes = [FEATURE_DTYPES] * len(FEATURE_COLS)
    return {
        "feature_cols": list(FEATURE_COLS),
        "feature_dtypes": dtypes,
        "input_dim": len(FEATURE_COLS),
        "schema_hash": schema_hash(FEATURE_COLS, dtypes),
        "scaler": {
            "kind": "robust",
            "median": [float(v) for v in median],
            "mad": [float(v) for v in mad],
            "run_id": RUN_ID,
        },
        "model_version": MODEL_VERSION,
        "heads_version": HEADS_VERSION,
        "heads": [{"name": h["name"], "index": i, "kind": h["kind"], "shape": [h["size"]]} for i, h in enumerate(HEADS)],
        "arch": arch_metadata(len(FEATURE_COLS)),
        "targets": {"horizon": HORIZON, "thresholds": dict(THRESHOLDS)},
        "nan_policy": NAN_POLICY,
        "run": {
            "run_id": RUN_ID,
            "seed": SEED,
            "train_rows": int(n_train),
            "data_sha256": "sha256:" + data_sha,
            "torch_version": torch.__version__.split("+")[0],
        },
    }


def scale(x, median, mad):
    s = (x - median) / mad
    s[np.isnan(s)] = 0.0
    return s


def train(xs, y, mag):
    torch.manual_seed(SEED)
    model = MomentumMLP(xs.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    xt = torch.tensor(xs, dtype=torch.float32)
    yt = torch.tensor(y)
    mt = torch.tensor(mag, dtype=torch.float32).unsqueeze(1)
    ce, mse = nn.CrossEntropyLoss(), nn.MSELoss()
    g = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        perm = torch.randperm(xt.shape[0], generator=g)
        for i in range(0, xt.shape[0], 256):
            idx = perm[i : i + 256]
            out = model(xt[idx])
            loss = ce(out["direction"], yt[idx]) + 0.5 * mse(out["magnitude"], mt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def relu_pattern(model64, points):
    """Which trunk units are active at each point: the network is linear wherever this is constant."""
    h, signs = points, []
    for layer in model64.trunk:
        if isinstance(layer, nn.ReLU):
            signs.append(h > 0)
        h = layer(h)
    return torch.cat(signs, dim=1)


def path_breakpoints(model64, x, baseline, grid):
    """Every alpha in (0, 1) where the activation pattern along baseline + alpha (x - baseline) changes,
    found on a grid and refined by bisection to 1e-13."""
    with torch.no_grad():
        alphas = torch.linspace(0.0, 1.0, grid + 1, dtype=torch.float64)
        pats = relu_pattern(model64, baseline + alphas.unsqueeze(1) * (x - baseline))

        def pattern(a):
            return relu_pattern(model64, (baseline + a * (x - baseline)).unsqueeze(0))[0]

        out = []

        def refine(a, b, pa, pb):
            if b - a < 1e-13:
                out.append(0.5 * (a + b))
                return
            m = 0.5 * (a + b)
            pm = pattern(m)
            if not torch.equal(pa, pm):
                refine(a, m, pa, pm)
            if not torch.equal(pm, pb):
                refine(m, b, pm, pb)

        for i in range(grid):
            if not torch.equal(pats[i], pats[i + 1]):
                refine(float(alphas[i]), float(alphas[i + 1]), pats[i], pats[i + 1])
    return sorted(out)


def integrated_gradients(model64, x, baseline, head, unit, grid):
    """Exact integrated gradients of a ReLU MLP on the straight path: the path splits into segments on
    which the network is linear, so the integral is the sum of each segment's (constant) gradient, taken
    at its midpoint, times its length. Computed in float64."""
    cuts = [0.0] + path_breakpoints(model64, x, baseline, grid) + [1.0]
    mids = torch.tensor([0.5 * (a + b) for a, b in zip(cuts[:-1], cuts[1:])], dtype=torch.float64)
    widths = torch.tensor([b - a for a, b in zip(cuts[:-1], cuts[1:])], dtype=torch.float64)
    path = (baseline + mids.unsqueeze(1) * (x - baseline)).requires_grad_(True)
    out = model64(path)[head][:, unit].sum()
    (grads,) = torch.autograd.grad(out, path)
    attr = (x - baseline) * (grads * widths.unsqueeze(1)).sum(dim=0)
    with torch.no_grad():
        fx = model64(x.unsqueeze(0))[head][0, unit].item()
        fb = model64(baseline.unsqueeze(0))[head][0, unit].item()
    return attr, fx, fb, len(cuts) - 1


def dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def save_torch(path, model, meta):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"state_dict": model.state_dict(), **meta}, path)


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    frames, data_sha = load_prices()
    x, y, mag, ts, syms = dataset(frames)
    cut = np.quantile(np.unique(ts), TRAIN_FRACTION)
    train_mask = ts <= cut
    median, mad = robust_stats(x[train_mask])
    xs = scale(x, median, mad)
    model = train(xs[train_mask], y[train_mask], mag[train_mask])
    model.eval()

    with torch.no_grad():
        out = model(torch.tensor(xs, dtype=torch.float32))
    pred = out["direction"].argmax(dim=1).numpy()
    hold = ~train_mask
    acc = float((pred[hold] == y[hold]).mean())
    base = float(np.bincount(y[hold]).max() / hold.sum())
    shares = np.bincount(pred[hold], minlength=3) / hold.sum()
    label_shares = np.bincount(y, minlength=3) / len(y)
    print(f"rows {len(y)} (train {train_mask.sum()}), label shares short/flat/long {np.round(label_shares, 3)}")
    print(f"holdout accuracy {acc:.3f} vs majority {base:.3f}; predicted shares {np.round(shares, 3)}")

    meta = metadata(median, mad, train_mask.sum(), data_sha)
    ck_dir = os.path.join(EXAMPLE, "checkpoints")
    save_torch(os.path.join(ck_dir, f"momentum_v{MODEL_VERSION}.pt"), model, meta)
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        os.path.join(ck_dir, f"momentum_v{MODEL_VERSION}.safetensors"),
        metadata={k: json.dumps(v, sort_keys=True) for k, v in meta.items()},
    )

    # Reference outputs: 64 holdout rows, evenly spaced, every head.
    hold_idx = np.flatnonzero(hold)
    pick = hold_idx[np.linspace(0, len(hold_idx) - 1, 64).astype(int)]
    xin = torch.tensor(xs[pick], dtype=torch.float32)
    with torch.no_grad():
        ref = model(xin)
    rows = []
    for j, i in enumerate(pick):
        rows.append(
            {
                "timestamp": int(ts[i]),
                "symbol": syms[i],
                "raw": [float(v) for v in x[i]],
                "scaled": [float(v) for v in xin[j]],
                "outputs": {h: [float(v) for v in ref[h][j]] for h in ref},
            }
        )
    dump(
        os.path.join(EXAMPLE, "reference", "outputs.json"),
        {
            "checkpoint": f"examples/momentum/checkpoints/momentum_v{MODEL_VERSION}.pt",
            "weights_sha256": pt.weights_sha256(model),
            "arch": pt.arch(model, trunk="trunk", heads={h["name"]: f"heads.{h['name']}" for h in HEADS}),
            "dtype": "float32",
            "note": "scaled = (raw - median) / mad, NaN -> 0; outputs from the PyTorch model in float32",
            "rows": rows,
        },
    )

    # Integrated gradients references in float64, baseline = zeros in scaled space (the training median).
    model64 = copy.deepcopy(model).double()
    ig_rows = []
    for i in pick[::5][:12]:
        xi = torch.tensor(xs[i], dtype=torch.float64)
        b = torch.zeros_like(xi)
        heads = {}
        for h in HEADS:
            units = []
            for u in range(h["size"]):
                attr, fx, fb, segments = integrated_gradients(model64, xi, b, h["name"], u, IG_GRID)
                units.append(
                    {
                        "unit": u,
                        "linear_segments": segments,
                        "attributions": [float(v) for v in attr],
                        "f_x": fx,
                        "f_baseline": fb,
                        "completeness_delta": float(attr.sum().item() - (fx - fb)),
                    }
                )
            heads[h["name"]] = units
        ig_rows.append({"timestamp": int(ts[i]), "symbol": syms[i], "scaled": [float(v) for v in xi], "heads": heads})
    dump(
        os.path.join(REPO, "tests", "fixtures", "reference", "integrated_gradients.json"),
        {
            "checkpoint": f"examples/momentum/checkpoints/momentum_v{MODEL_VERSION}.pt",
            "baseline": "zeros in scaled space (the training median in raw space)",
            "method": "exact for a ReLU MLP: the straight path is split where the activation pattern changes (grid of 4096 then bisection to 1e-13); each linear segment contributes its midpoint gradient times its length; float64",
            "grid": IG_GRID,
            "rows": ig_rows,
        },
    )

    # The defect corpus: the production checkpoint with one real defect each.
    fx_dir = os.path.join(REPO, "tests", "fixtures", "checkpoints")

    def variant(name, mutate, mdl=model):
        m = copy.deepcopy(meta)
        mutate(m)
        save_torch(os.path.join(fx_dir, name), mdl, m)

    variant("no_mad.pt", lambda m: m["scaler"].pop("mad"))

    def zero_mad(m):
        m["scaler"]["mad"][FEATURE_COLS.index("vol_ratio")] = 0.0

    variant("zero_mad.pt", zero_mad)

    def heads_reordered(m):
        m["heads"] = [dict(h, index=i) for i, h in enumerate(reversed(m["heads"]))]

    variant("heads_reordered.pt", heads_reordered)
    variant("input_dim_off_by_one.pt", lambda m: m.update(input_dim=m["input_dim"] + 1))

    def cols_reordered(m):
        cols = m["feature_cols"]
        i, j = cols.index("ret_5"), cols.index("vol_20")
        cols[i], cols[j] = cols[j], cols[i]
        m["schema_hash"] = schema_hash(cols, m["feature_dtypes"])

    variant("feature_cols_reordered.pt", cols_reordered)

    other_median, other_mad = robust_stats(x[hold])

    def other_run(m):
        m["scaler"] = {
            "kind": "robust",
            "median": [float(v) for v in other_median],
            "mad": [float(v) for v in other_mad],
            "run_id": f"momentum-v{MODEL_VERSION - 1}-seed3",
        }

    variant("scaler_other_run.pt", other_run)

    def float64(m):
        m["feature_dtypes"] = ["float64"] * len(FEATURE_COLS)
        m["schema_hash"] = schema_hash(FEATURE_COLS, m["feature_dtypes"])

    variant("float64.pt", float64, mdl=copy.deepcopy(model).double())

    # A dead head: the direction layer's weights are zero, so it predicts the same class for every row
    # (what a diverged run or a wrongly initialised head looks like). Metadata unchanged.
    dead = copy.deepcopy(model)
    with torch.no_grad():
        dead.heads["direction"].weight.zero_()
    variant("direction_collapsed.pt", lambda m: None, mdl=dead)
    print("wrote checkpoints, references and the defect corpus")


if __name__ == "__main__":
    main()
