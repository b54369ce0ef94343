"""Daily long/short backtest of the trained model on the test period.

    PYTHONPATH=src python scripts/backtest.py

Each day: rank symbols by predicted return, equal-weight long the top n_long,
short the bottom n_short (+0.5 long / -0.5 short, gross 1), hold one day
close-to-close. Costs = cost_bps * one-way turnover.
"""
import argparse
import json
import os

import numpy as np
import pandas as pd
import torch

from reversion.config import load_config
from reversion.features import build_dataset, split
from reversion.metrics import daily_rank_ic
from reversion.model import load_model
from reversion.scaler import RobustScaler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/train.yaml")
    args = ap.parse_args()
    cfg = load_config(args.config)
    bcfg = cfg["backtest"]
    torch.set_num_threads(1)

    with open(cfg["paths"]["sidecar"]) as f:
        meta = json.load(f)
    feats = meta["features"]
    scaler = RobustScaler.from_dict(meta["scaler"])
    arch = meta["arch"]
    model = load_model(cfg["paths"]["model"], arch["n_features"], arch["hidden"])

    bars = pd.read_csv(cfg["paths"]["bars"])
    # keep rows without a label too, we only need next-day returns for pnl
    ds = build_dataset(bars, feats, horizon=meta["label"]["horizon"],
                       demean=meta["label"]["demean"], dropna_label=False)
    period = bcfg["period"]
    ds = split(ds, str(period["start"]), str(period["end"]))

    with torch.no_grad():
        X = torch.tensor(scaler.transform(ds[feats].values), dtype=torch.float32)
        ds["pred"] = model(X).numpy() / meta["label"]["label_scale"]

    # next-day simple return for pnl
    b = bars.sort_values(["symbol", "date"]).copy()
    b["ret_next"] = b.groupby("symbol")["close"].shift(-1) / b["close"] - 1.0
    ds = ds.merge(b[["date", "symbol", "ret_next"]], on=["date", "symbol"], how="left")

    n_long, n_short = bcfg["n_long"], bcfg["n_short"]
    weights = []
    for date, g in ds.groupby("date"):
        g = g.sort_values("pred")
        w = pd.Series(0.0, index=g["symbol"].values)
        w.iloc[-n_long:] = 0.5 / n_long
        w.iloc[:n_short] = -0.5 / n_short
        weights.append(w.rename(date))
    W = pd.DataFrame(weights).fillna(0.0).sort_index()
    R = ds.pivot(index="date", columns="symbol", values="ret_next").reindex_like(W).fillna(0.0)

    gross = (W * R).sum(axis=1)
    turnover = W.diff().abs().sum(axis=1)
    turnover.iloc[0] = W.iloc[0].abs().sum()
    net = gross - turnover * bcfg["cost_bps"] / 1e4
    # last day has no next-day return
    net, gross, turnover = net.iloc[:-1], gross.iloc[:-1], turnover.iloc[:-1]

    ann = bcfg["annualization"]

    def sharpe(x):
        return float(x.mean() / x.std() * np.sqrt(ann)) if x.std() > 0 else float("nan")

    ic_m, ic_s = daily_rank_ic(ds.dropna(subset=["fwd_ret"]))
    eq = (1 + net).cumprod()
    res = {
        "model_version": meta["model_version"],
        "period": [str(W.index[0]), str(W.index[-1])],
        "n_days": int(len(net)),
        "sharpe_gross": sharpe(gross),
        "sharpe_net": sharpe(net),
        "ann_return_net": float(net.mean() * ann),
        "ann_vol": float(net.std() * np.sqrt(ann)),
        "max_drawdown": float((eq / eq.cummax() - 1).min()),
        "avg_daily_turnover": float(turnover.mean()),
        "rank_ic_mean": ic_m,
        "rank_ic_sd": ic_s,
        "cost_bps": bcfg["cost_bps"],
    }
    for k, v in res.items():
        print(f"{k:20s} {v}")

    os.makedirs(cfg["paths"]["reports"], exist_ok=True)
    with open(os.path.join(cfg["paths"]["reports"], "backtest.json"), "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
