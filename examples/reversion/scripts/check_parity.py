"""Sanity check before a deploy: pandas features vs live numpy features, and
torch model vs numpy forward pass from weights.npz.

    PYTHONPATH=src python scripts/check_parity.py
"""
import argparse
import json

import numpy as np
import pandas as pd
import torch

from reversion import live
from reversion.config import load_config
from reversion.features import compute_features
from reversion.model import load_model
from reversion.scaler import RobustScaler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/train.yaml")
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args()
    cfg = load_config(args.config)
    with open(cfg["paths"]["sidecar"]) as f:
        meta = json.load(f)
    feats = meta["features"]

    # features
    bars = pd.read_csv(cfg["paths"]["bars"])
    pf = compute_features(bars).dropna(subset=feats).set_index(["date", "symbol"])[feats]
    lb = live.read_bars(cfg["paths"]["bars"])
    rows = {}
    for sym, b in lb.items():
        f = live.symbol_features(b["open"], b["high"], b["low"], b["close"], b["volume"])
        for i, d in enumerate(b["date"]):
            rows[(d, sym)] = [f[n][i] for n in feats]
    nf = pd.DataFrame.from_dict(rows, orient="index", columns=feats)
    nf.index = pd.MultiIndex.from_tuples(nf.index, names=["date", "symbol"])
    nf = nf.loc[pf.index]
    fdiff = np.nanmax(np.abs(nf.values - pf.values))
    print(f"max |feature diff| = {fdiff:.3e}")

    # model
    scaler = RobustScaler.from_dict(meta["scaler"])
    Z = scaler.transform(pf.values)
    model = load_model(cfg["paths"]["model"], meta["arch"]["n_features"], meta["arch"]["hidden"])
    with torch.no_grad():
        pt = model(torch.tensor(Z, dtype=torch.float32)).numpy().astype(np.float64)
    pn = live.mlp_forward(live.load_weights(cfg["paths"]["weights"]), Z)
    mdiff = np.max(np.abs(pt - pn))
    print(f"max |torch - numpy| = {mdiff:.3e} (label_scale units)")

    ok = fdiff < args.tol and mdiff < 1e-4
    print("OK" if ok else "MISMATCH")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
