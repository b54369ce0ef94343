"""Backtest inference: load a safetensors checkpoint, scale raw features, run the MLP on all rows at once.

The network is built from the checkpoint's `arch` metadata (never from tensor order): each trunk layer of
`arch.layers` is a Linear followed by `arch.activation`, then one Linear per head of `arch.heads` on the
last hidden layer. Weights are read with struct + json + numpy (no torch) and used in float64.

Protocol:  python3 backtest/infer.py CHECKPOINT FEATURES OUT
  CHECKPOINT  a .safetensors file whose __metadata__ values are JSON (feature_cols, scaler, arch, ...).
  FEATURES    CSV timestamp,symbol,<feature columns> of raw features, picked by name using the
              checkpoint's feature_cols; an empty cell is NaN.
  OUT         CSV timestamp,symbol,<head>.<k>...: the raw head outputs (logits for a softmax head) in
              arch.heads order, floats written with repr(), rows sorted by (timestamp, symbol).
Scaling: (x - median) / mad with the checkpoint's robust scaler; NaN becomes 0.0 (nan_policy zero-fill).
Exits 2 with a message on stderr on bad input.
"""

import csv
import json
import math
import struct
import sys

import numpy as np

DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}
ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0))),
    "identity": lambda z: z,
}


def load_safetensors(path):
    """(tensors as float64 arrays by name, metadata with each value JSON-decoded)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0] if len(blob) >= 8 else -1
    if not 0 < n <= len(blob) - 8:
        raise ValueError(f"{path}: not a safetensors file")
    try:
        header = json.loads(blob[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: bad safetensors header: {e}") from None
    meta = {}
    for key, text in header.pop("__metadata__", {}).items():
        try:
            meta[key] = json.loads(text)
        except json.JSONDecodeError:
            meta[key] = text  # a bare string
    data, tensors = blob[8 + n :], {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]])
        tensors[name] = arr.reshape(info["shape"]).astype(np.float64)
    return tensors, meta


class Model:
    def __init__(self, path):
        tensors, meta = load_safetensors(path)
        try:
            self.cols = list(meta["feature_cols"])
            self.median = np.array(meta["scaler"]["median"], dtype=np.float64)
            self.mad = np.array(meta["scaler"]["mad"], dtype=np.float64)
            arch = meta["arch"]
            self.act = ACTIVATIONS[arch["activation"]]
            self.trunk = [(tensors[f"{l}.weight"], tensors[f"{l}.bias"]) for l in arch["layers"]]
            self.heads = [(h["name"], tensors[f"{h['layer']}.weight"], tensors[f"{h['layer']}.bias"]) for h in arch["heads"]]
        except KeyError as e:
            raise ValueError(f"{path}: missing metadata or tensor {e}") from None
        if meta.get("nan_policy", "zero-fill") != "zero-fill":
            raise ValueError(f"{path}: unsupported nan_policy {meta['nan_policy']!r}")
        if not (len(self.cols) == len(self.median) == len(self.mad) == self.trunk[0][0].shape[1]):
            raise ValueError(f"{path}: feature_cols, scaler and the first layer disagree on the input width")
        self.outputs = [f"{name}.{k}" for name, w, _ in self.heads for k in range(w.shape[0])]

    def forward(self, raw):
        """raw: (rows, features) in feature_cols order -> (rows, outputs) raw head outputs."""
        x = (raw - self.median) / self.mad
        x[np.isnan(x)] = 0.0  # zero-fill: a missing feature sits at the training median
        for w, b in self.trunk:
            x = self.act(x @ w.T + b)
        return np.concatenate([x @ w.T + b for _, w, b in self.heads], axis=1)


def read_features(path, cols):
    """(keys [(timestamp, symbol)], raw matrix in `cols` order), rows sorted by (timestamp, symbol)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "symbol", *cols} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append(((int(r["timestamp"]), r["symbol"]), [float(r[c]) if r[c] else math.nan for c in cols]))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{line}: {e}") from None
    rows.sort(key=lambda r: r[0])
    return [k for k, _ in rows], np.array([v for _, v in rows], dtype=np.float64).reshape(len(rows), len(cols))


def main(argv):
    if len(argv) != 4:
        raise ValueError("usage: backtest/infer.py CHECKPOINT FEATURES OUT")
    model = Model(argv[1])
    keys, raw = read_features(argv[2], model.cols)
    out = model.forward(raw)
    with open(argv[3], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", *model.outputs])
        for (ts, sym), y in zip(keys, out):
            w.writerow([ts, sym, *(repr(float(v)) for v in y)])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        print(f"backtest/infer: {e!r}", file=sys.stderr)
        sys.exit(2)
