"""Live / batch scoring. numpy + PyYAML only -- do not import torch or pandas here.

    PYTHONPATH=src python -m reversion.live --bars data/bars.csv --out preds.csv
    PYTHONPATH=src python -m reversion.live --bars today.csv --out preds.csv --all-dates

Needs artifacts/weights.npz (scripts/export_weights.py) and artifacts/model.json.
Bars CSV must have date,symbol,open,high,low,close,volume and at least
MIN_HISTORY rows per symbol before the date being scored.
"""
import argparse
import csv
import json
import logging
import sys
from collections import defaultdict

import numpy as np
import yaml

from reversion.live_features import MIN_HISTORY, symbol_features
from reversion.scaler import RobustScaler

log = logging.getLogger("reversion.live")


def read_bars(path):
    rows = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["symbol"]].append(r)
    bars = {}
    for sym, rs in rows.items():
        rs.sort(key=lambda r: r["date"])
        bars[sym] = {
            "date": [r["date"] for r in rs],
            **{k: np.array([float(r[k]) for r in rs]) for k in ("open", "high", "low", "close", "volume")},
        }
    return bars


def load_weights(path):
    w = np.load(path)
    idx = sorted({int(k.split(".")[1]) for k in w.files})
    return [(w[f"net.{i}.weight"].astype(np.float64), w[f"net.{i}.bias"].astype(np.float64)) for i in idx]


def mlp_forward(layers, X):
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0]


def score(bars, meta, layers, dates=None):
    """Return list of (date, symbol, prediction). dates=None -> latest date per symbol."""
    feat_names = meta["features"]
    scaler = RobustScaler.from_dict(meta["scaler"])
    label_scale = float(meta["label"].get("label_scale", 1.0))

    keys, X = [], []
    for sym in sorted(bars):
        b = bars[sym]
        if len(b["date"]) < MIN_HISTORY:
            log.warning("skipping %s: only %d bars", sym, len(b["date"]))
            continue
        f = symbol_features(b["open"], b["high"], b["low"], b["close"], b["volume"])
        F = np.column_stack([f[n] for n in feat_names])
        want = range(len(b["date"])) if dates is not None else [len(b["date"]) - 1]
        for i in want:
            if dates not in (None, "all") and b["date"][i] not in dates:
                continue
            if np.isnan(F[i]).any():
                continue
            keys.append((b["date"][i], sym))
            X.append(F[i])
    if not X:
        return []
    Z = scaler.transform(np.vstack(X))
    pred = mlp_forward(layers, Z) / label_scale
    out = [(d, s, float(p)) for (d, s), p in zip(keys, pred)]
    out.sort()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="score bars with the exported reversion model")
    ap.add_argument("--config", default="configs/train.yaml")
    ap.add_argument("--bars", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--all-dates", action="store_true", help="score every date with enough history")
    ap.add_argument("--date", action="append", help="score only these date(s), YYYY-MM-DD")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    with open(cfg["paths"]["sidecar"]) as f:
        meta = json.load(f)
    layers = load_weights(cfg["paths"]["weights"])
    if layers[0][0].shape[1] != len(meta["features"]):
        sys.exit(f"weights expect {layers[0][0].shape[1]} inputs, sidecar lists {len(meta['features'])} features")
    log.info("model %s v%s, %d features", meta.get("model_name"), meta["model_version"], len(meta["features"]))

    bars = read_bars(args.bars)
    dates = "all" if args.all_dates else (set(args.date) if args.date else None)
    preds = score(bars, meta, layers, dates)

    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "symbol", "prediction"])
        for d, s, p in preds:
            w.writerow([d, s, f"{p:.8f}"])
    log.info("wrote %d predictions -> %s", len(preds), args.out)


if __name__ == "__main__":
    main()
