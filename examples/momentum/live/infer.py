"""Live inference: a model loaded once, then asked for one row at a time (as the live process does).

LiveModel reads a safetensors checkpoint with struct + json + numpy (no torch) and builds the MLP from the
`arch` metadata, never from tensor order: Linear + activation for each of `arch.layers`, then one Linear
per head of `arch.heads`. Weights are used in float64. Shares no code with the backtest path.

Protocol:  python3 live/infer.py CHECKPOINT FEATURES OUT
  CHECKPOINT  a .safetensors file whose __metadata__ values are JSON (feature_cols, scaler, arch, ...).
  FEATURES    CSV timestamp,symbol,<feature columns> of raw features, read by name using the checkpoint's
              feature_cols; an empty cell is NaN.
  OUT         CSV timestamp,symbol,<head>.<k>...: raw head outputs (logits for a softmax head) in
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

ELEMENT = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}


def _activation(name):
    funcs = {
        "relu": lambda v: np.maximum(v, 0.0),
        "tanh": np.tanh,
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "silu": lambda v: v / (1.0 + np.exp(-v)),
        "gelu": lambda v: np.array([0.5 * t * (1.0 + math.erf(t / math.sqrt(2.0))) for t in v]),
        "identity": lambda v: v,
    }
    if name not in funcs:
        raise ValueError(f"unsupported activation {name!r}")
    return funcs[name]


class LiveModel:
    """Loads the checkpoint once; predict() maps one row of raw features to the raw head outputs."""

    def __init__(self, path):
        with open(path, "rb") as f:
            blob = f.read()
        head_len = struct.unpack("<Q", blob[:8])[0] if len(blob) >= 8 else -1
        if not 0 < head_len <= len(blob) - 8:
            raise ValueError(f"{path}: not a safetensors file")
        header = json.loads(blob[8 : 8 + head_len])
        payload = blob[8 + head_len :]
        meta = {k: self._decode(v) for k, v in header.pop("__metadata__", {}).items()}
        if meta.get("nan_policy", "zero-fill") != "zero-fill":
            raise ValueError(f"{path}: unsupported nan_policy {meta['nan_policy']!r}")

        def tensor(name):
            info = header[name]
            lo, hi = info["data_offsets"]
            raw = np.frombuffer(payload[lo:hi], dtype=ELEMENT[info["dtype"]])
            return raw.reshape(info["shape"]).astype(np.float64)

        arch = meta["arch"]
        self.cols = list(meta["feature_cols"])
        self.median = [float(v) for v in meta["scaler"]["median"]]
        self.mad = [float(v) for v in meta["scaler"]["mad"]]
        self.act = _activation(arch["activation"])
        self.layers = [(tensor(f"{name}.weight"), tensor(f"{name}.bias")) for name in arch["layers"]]
        self.heads = [(h["name"], tensor(h["layer"] + ".weight"), tensor(h["layer"] + ".bias")) for h in arch["heads"]]
        self.outputs = [f"{name}.{k}" for name, w, _ in self.heads for k in range(w.shape[0])]
        if not len(self.cols) == len(self.median) == len(self.mad) == self.layers[0][0].shape[1]:
            raise ValueError(f"{path}: feature_cols, scaler and the first layer disagree on the input width")

    @staticmethod
    def _decode(text):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text  # a bare string

    def predict(self, row):
        """row: {feature name: raw float (NaN if unknown)} -> {"<head>.<k>": raw output}."""
        x = []
        for name, med, mad in zip(self.cols, self.median, self.mad):
            v = (row[name] - med) / mad
            x.append(0.0 if math.isnan(v) else v)  # zero-fill: unknown means the training median
        h = np.array(x)
        for w, b in self.layers:
            h = self.act(w @ h + b)
        out = {}
        for name, w, b in self.heads:
            for k, v in enumerate(w @ h + b):
                out[f"{name}.{k}"] = float(v)
        return out


def main(argv):
    if len(argv) != 4:
        raise ValueError("usage: live/infer.py CHECKPOINT FEATURES OUT")
    model = LiveModel(argv[1])
    with open(argv[2], newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "symbol", *model.cols} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{argv[2]}: missing columns {sorted(missing)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                feats = {c: float(r[c]) if r[c] != "" else math.nan for c in model.cols}
                rows.append((int(r["timestamp"]), r["symbol"], feats))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{argv[2]}:{line}: {e}") from None
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(argv[3], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", *model.outputs])
        for ts, sym, feats in rows:
            out = model.predict(feats)
            w.writerow([ts, sym, *(repr(out[c]) for c in model.outputs)])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        print(f"live/infer: {e!r}", file=sys.stderr)
        sys.exit(2)
