#!/usr/bin/env python3
"""Benchmark: the model gates, plumbline (burn, ndarray) vs the Python way (PyTorch), in one run.

Times, on the example pipeline:
  plumbline   `plumbline --config examples/momentum/plumbline.toml gate forward-contract`
              (builds the MLP from `arch`, loads the weights, runs 100 probes in a batch, twice, and each
              alone, and the 64 PyTorch reference rows) and `gate output-distribution` (the model on
              the 2,115 slice rows, softmax, class shares, decile PSI/JS against the baseline)
  python      the same work in one script with torch: torch.load(weights_only=True), the MLP built from
              `arch`, the slice read with numpy, the same forward passes and statistics (what the plan's
              04_model_forward_contract.py and 05_output_distribution.py would do)
Each is the best of N runs in a fresh process (start-up and imports included for both); "work only" is
the python timing measured inside the process after `import torch`.
Prints a table with the ratio. Not part of CI: timings are measured here, never asserted in tests.

Run:
  cargo build --release
  /path/to/venv-with-torch/bin/python benches/model_gates.py
Options: PLUMBLINE=path/to/binary  RUNS=7
"""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "examples", "momentum", "plumbline.toml")
BINARY = os.environ.get("PLUMBLINE", os.path.join(REPO, "target", "release", "plumbline"))
RUNS = int(os.environ.get("RUNS", "7"))

PYTHON_WAY = r'''
import csv, json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
from torch import nn
t1 = time.perf_counter()
ex = sys.argv[1]
ck = torch.load(os.path.join(ex, "checkpoints/momentum_v3.pt"), map_location="cpu", weights_only=True)
arch = ck["arch"]
act = {"relu": nn.ReLU, "tanh": nn.Tanh}[arch["activation"]]
layers, width = [], arch["input_dim"]
for h in arch["hidden"]:
    layers += [nn.Linear(width, h), act()]
    width = h
trunk = nn.Sequential(*layers)
heads = nn.ModuleDict({h["name"]: nn.Linear(width, ck["state_dict"][h["layer"] + ".weight"].shape[0]) for h in arch["heads"]})
sd = ck["state_dict"]
trunk.load_state_dict({k[len("trunk."):]: v for k, v in sd.items() if k.startswith("trunk.")})
heads.load_state_dict({k[len("heads."):]: v for k, v in sd.items() if k.startswith("heads.")})
def model(x):
    z = trunk(x)
    return {n: m(z) for n, m in heads.items()}
med = np.array(ck["scaler"]["median"]); mad = np.array(ck["scaler"]["mad"])
cols = ck["feature_cols"]
with open(os.path.join(ex, "data/slice.csv")) as f:
    r = csv.DictReader(f)
    raw = np.array([[float(row[c]) for c in cols] for row in r])
def scale(x):
    s = (x - med) / mad
    s[np.isnan(s)] = 0.0
    return torch.tensor(s, dtype=torch.float32)
rng = np.random.default_rng(7)
probes = np.vstack([np.zeros(len(cols)), med, med + rng.standard_normal((32, len(cols))) * mad,
                    raw[np.linspace(0, len(raw) - 1, 64).astype(int)], np.full(len(cols), np.nan)])
with torch.no_grad():
    x = scale(probes)
    a, b = model(x), model(x)
    ok = all(torch.isfinite(a[h]).all() and torch.equal(a[h], b[h]) for h in a)
    for i in range(x.shape[0]):
        one = model(x[i:i + 1])
        ok &= all(torch.allclose(one[h][0], a[h][i], atol=1e-6) for h in a)
    ref = json.load(open(os.path.join(ex, "reference/outputs.json")))["rows"]
    out = model(torch.tensor([r["scaled"] for r in ref], dtype=torch.float32))
    ok &= all(torch.allclose(out[h], torch.tensor([r["outputs"][h] for r in ref]), atol=1e-5) for h in out)
    y = model(scale(raw))
    p = torch.softmax(y["direction"], dim=1).numpy()
    shares = np.bincount(p.argmax(1), minlength=p.shape[1]) / len(p)
    base = json.load(open(os.path.join(ex, "reference/output_baseline.json")))
    psi = 0.0
    for j, u in enumerate(base["heads"]["direction"]["units"]):
        e = np.maximum(np.array(u["shares"]), 1e-4)
        cnt = np.bincount(np.searchsorted(np.array(u["edges"]), p[:, j], side="left"), minlength=len(e))
        a_ = np.maximum(cnt / len(p), 1e-4)
        psi = max(psi, float(((a_ - e) * np.log(a_ / e)).sum()))
t2 = time.perf_counter()
print(json.dumps({"ok": bool(ok), "import": t1 - t0, "work": t2 - t1, "psi": psi}))
'''


def best(cmd):
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return min(times), out.stdout


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} not found: run `cargo build --release` (or set PLUMBLINE)")
    fc, _ = best([BINARY, "--config", CONFIG, "gate", "forward-contract"])
    od, _ = best([BINARY, "--config", CONFIG, "gate", "output-distribution"])
    both, _ = best([BINARY, "--config", CONFIG, "check", "--profile", "pre-live"])
    rows = [("plumbline gate forward-contract", fc), ("plumbline gate output-distribution", od),
            ("plumbline check --profile pre-live (8 gates)", both)]
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
    py = None
    if torch is not None:
        ex = os.path.dirname(CONFIG)
        py, out = best([sys.executable, "-c", PYTHON_WAY, ex])
        import json
        inner = json.loads(out)
        assert inner["ok"], "the python way disagrees with its own checks"
        rows.append(("python + torch, the same two gates", py))
        rows.append(("  of which work only (after import torch)", inner["work"]))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  best of {RUNS}")
    for name, t in rows:
        print(f"{name:<{width}}  {t * 1000:8.1f} ms")
    if py is not None:
        print(f"ratio python / plumbline (the two gates, fresh processes): {py / (fc + od):.1f}x")


if __name__ == "__main__":
    main()
