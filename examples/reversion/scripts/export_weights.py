"""Export the torch state dict to npz for the live box (no torch there).

    PYTHONPATH=src python scripts/export_weights.py

Keys keep the state-dict names (net.0.weight, ...). live.py relies on that.
"""
import argparse

import numpy as np
import torch

from reversion.config import load_config


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/train.yaml")
    args = ap.parse_args()
    cfg = load_config(args.config)

    sd = torch.load(cfg["paths"]["model"], map_location="cpu", weights_only=True)
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in sd.items()}
    np.savez(cfg["paths"]["weights"], **arrays)
    for k, v in arrays.items():
        print(f"{k:16s} {tuple(v.shape)}")
    print(f"-> {cfg['paths']['weights']}")


if __name__ == "__main__":
    main()
