"""Train the reversion MLP.

    PYTHONPATH=src python scripts/train.py [--config configs/train.yaml]

Writes artifacts/model.pt (state dict) and artifacts/model.json (sidecar with
features, scaler stats, arch, label horizon). Inference code reads the sidecar,
so don't hand-edit it.
"""
import argparse
import datetime as dt
import json
import os
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from reversion.config import load_config
from reversion.features import build_dataset, split
from reversion.metrics import daily_rank_ic
from reversion.model import RevMLP
from reversion.scaler import RobustScaler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/train.yaml")
    args = ap.parse_args()
    cfg = load_config(args.config)

    torch.set_num_threads(1)
    torch.manual_seed(cfg["seed"])
    np.random.seed(cfg["seed"])

    feats = cfg["features"]
    lab = cfg["label"]
    tcfg = cfg["train"]
    mcfg = cfg["model"]
    scfg = cfg["scaler"]
    label_scale = float(tcfg.get("label_scale", 1.0))

    bars = pd.read_csv(cfg["paths"]["bars"])
    ds = build_dataset(bars, feats, horizon=lab["horizon"], demean=lab["demean"])
    tr = split(ds, **cfg["splits"]["train"])
    va = split(ds, **cfg["splits"]["valid"])
    te = split(ds, **cfg["splits"]["test"])
    print(f"rows train={len(tr)} valid={len(va)} test={len(te)}")

    # TODO: the last `horizon` days of train have labels that peek into valid. small, ignore for now.
    scaler = RobustScaler(factor=scfg["factor"], eps=scfg["eps"], clip=scfg["clip"]).fit(tr[feats].values)

    def tensors(df):
        X = torch.tensor(scaler.transform(df[feats].values), dtype=torch.float32)
        y = torch.tensor(df["fwd_ret"].values * label_scale, dtype=torch.float32)
        return X, y

    Xtr, ytr = tensors(tr)
    Xva, yva = tensors(va)

    model = RevMLP(len(feats), mcfg["hidden"], mcfg["dropout"])
    opt = torch.optim.Adam(model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    loss_fn = nn.MSELoss()

    best, best_state, best_epoch, bad = float("inf"), None, -1, 0
    t0 = time.time()
    for epoch in range(tcfg["epochs"]):
        model.train()
        perm = torch.randperm(len(Xtr))
        tot = 0.0
        for i in range(0, len(Xtr), tcfg["batch_size"]):
            idx = perm[i:i + tcfg["batch_size"]]
            opt.zero_grad()
            loss = loss_fn(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            tot += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            vloss = loss_fn(model(Xva), yva).item()
        print(f"epoch {epoch:3d} train {tot / len(Xtr):.5f} valid {vloss:.5f}")
        if vloss < best - 1e-6:
            best, best_epoch, bad = vloss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= tcfg["patience"]:
                print(f"early stop at epoch {epoch}, best epoch {best_epoch}")
                break
    print(f"trained in {time.time() - t0:.1f}s")

    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        for name, df in (("valid", va), ("test", te)):
            X, _ = tensors(df)
            df = df.assign(pred=model(X).numpy() / label_scale)
            m, s = daily_rank_ic(df)
            print(f"{name} rank IC mean {m:.4f} (sd {s:.4f})")

    os.makedirs(cfg["paths"]["artifacts"], exist_ok=True)
    torch.save(model.state_dict(), cfg["paths"]["model"])

    sidecar = {
        "model_name": mcfg["name"],
        "model_version": mcfg["version"],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "features": list(feats),
        "label": {
            "name": lab["name"],
            "horizon": lab["horizon"],
            "demean": lab["demean"],
            "label_scale": label_scale,
        },
        "arch": {
            "type": "mlp",
            "n_features": len(feats),
            "hidden": list(mcfg["hidden"]),
            "dropout": mcfg["dropout"],
            "activation": "relu",
            "n_outputs": 1,
        },
        "scaler": scaler.to_dict(),
        "train": {
            "start": str(tr["date"].min()),
            "end": str(tr["date"].max()),
            "n_rows": int(len(tr)),
            "best_epoch": best_epoch,
            "best_valid_mse": best,
            "lr": tcfg["lr"],
            "seed": cfg["seed"],
        },
    }
    with open(cfg["paths"]["sidecar"], "w") as f:
        json.dump(sidecar, f, indent=2)
    print(f"saved {cfg['paths']['model']} and {cfg['paths']['sidecar']}")


if __name__ == "__main__":
    main()
