#!/usr/bin/env python3
"""Benchmark: `plumbline audit conditions` vs the Python way (PyTorch + Captum), in one run.

Both compute integrated gradients for every slice row (2,115) and every head output (4) of the example
model from the median baseline:
  plumbline   `plumbline --config examples/momentum/plumbline.toml audit conditions --out TMP`
              (adaptive intervals until the completeness delta and the error estimate are ≤ 1e-5; also
              fits the surrogate trees and writes the four files)
  python      captum.attr.IntegratedGradients(method="riemann_trapezoid") at a fixed step count, for
              each output, on the same float32 model; at the step count plumbline's median row needs
              (675) and at 4,096
Accuracy: each is compared with the exact references (tests/fixtures/reference/integrated_gradients.json,
12 rows) as the largest |difference| relative to the row's largest attribution. plumbline's number comes
from its per-row output of the same run (`--out` has no per-row attributions, so the bench asks the test
suite's figure: 9.5e-7, tests/it/audit.rs prints it); Captum's is computed here.
Each timing is the best of N fresh processes (imports included). Not part of CI.

Run:
  cargo build --release
  /path/to/venv-with-torch-and-captum/bin/python benches/audit_conditions.py
Options: PLUMBLINE=path/to/binary  RUNS=3  STEPS=median,4096 (Captum's step counts; `median` = plumbline's)
"""

import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "examples", "momentum", "plumbline.toml")
BINARY = os.environ.get("PLUMBLINE", os.path.join(REPO, "target", "release", "plumbline"))
RUNS = int(os.environ.get("RUNS", "3"))

PYTHON_WAY = r'''
import csv, json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
from torch import nn
from captum.attr import IntegratedGradients
t1 = time.perf_counter()
torch.set_num_threads(int(os.environ.get("THREADS", "1")))
ex, refs, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
ck = torch.load(os.path.join(ex, "checkpoints/momentum_v3.pt"), map_location="cpu", weights_only=True)
arch = ck["arch"]
layers, width = [], arch["input_dim"]
for h in arch["hidden"]:
    layers += [nn.Linear(width, h), nn.ReLU()]
    width = h
trunk = nn.Sequential(*layers)
names = [h["name"] for h in arch["heads"]]
heads = nn.ModuleList([nn.Linear(width, ck["state_dict"][h["layer"] + ".weight"].shape[0]) for h in arch["heads"]])
sd = ck["state_dict"]
trunk.load_state_dict({k[len("trunk."):]: v for k, v in sd.items() if k.startswith("trunk.")})
for i, h in enumerate(arch["heads"]):
    heads[i].load_state_dict({k[len(h["layer"]) + 1:]: v for k, v in sd.items() if k.startswith(h["layer"] + ".")})
class All(nn.Module):
    def forward(self, x):
        z = trunk(x)
        return torch.cat([m(z) for m in heads], dim=1)
model = All()
med = np.array(ck["scaler"]["median"]); mad = np.array(ck["scaler"]["mad"])
cols = ck["feature_cols"]
with open(os.path.join(ex, "data/slice.csv")) as f:
    raw = np.array([[float(row[c]) for c in cols] for row in csv.DictReader(f)])
s = (raw - med) / mad
s[np.isnan(s)] = 0.0
x = torch.tensor(s, dtype=torch.float32)
ig = IntegratedGradients(model)
outputs = sum(ck["state_dict"][h["layer"] + ".weight"].shape[0] for h in arch["heads"])
deltas = []
for t in range(outputs):
    for chunk in torch.split(x, 64):
        a, d = ig.attribute(chunk, baselines=torch.zeros_like(chunk), target=t, n_steps=steps,
                            method="riemann_trapezoid", return_convergence_delta=True)
        deltas.append(d.abs().max().item())
t2 = time.perf_counter()
# Accuracy against the exact references.
ref = json.load(open(refs))["rows"]
worst = 0.0
xr = torch.tensor([r["scaled"] for r in ref], dtype=torch.float32)
units = [(h, u) for h in names for u in range(len(ref[0]["heads"][h]))]
for t, (h, u) in enumerate(units):
    a = ig.attribute(xr, baselines=torch.zeros_like(xr), target=t, n_steps=steps, method="riemann_trapezoid").double()
    for i, r in enumerate(ref):
        want = torch.tensor(r["heads"][h][u]["attributions"], dtype=torch.float64)
        worst = max(worst, ((a[i] - want).abs().max() / want.abs().max()).item())
print(json.dumps({"import": t1 - t0, "work": t2 - t1, "max_delta": max(deltas), "worst_relative": worst}))
'''


def best(cmd, env=None):
    times, out = [], None
    for _ in range(RUNS):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t)
        if out.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return min(times), out


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} not found: run `cargo build --release` (or set PLUMBLINE)")
    with tempfile.TemporaryDirectory() as tmp:
        t_pl, out = best([BINARY, "--config", CONFIG, "audit", "conditions", "--out", tmp])
        summary = json.load(open(os.path.join(tmp, "summary.json")))
    ig = summary["integrated_gradients"]
    rows = [(f"plumbline audit conditions (adaptive, steps {ig['steps_min']}–{ig['steps_max']}, "
             f"median {ig['steps_median']}; max |delta| {ig['max_abs_completeness_delta']:.1e}; "
             f"+ surrogate)", t_pl, None)]
    try:
        import captum  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        captum = None
    if captum is not None:
        refs = os.path.join(REPO, "tests", "fixtures", "reference", "integrated_gradients.json")
        ex = os.path.dirname(CONFIG)
        wanted = os.environ.get("STEPS", "median,4096").split(",")
        for steps in [ig["steps_median"] if w == "median" else int(w) for w in wanted]:
            t, out = best([sys.executable, "-c", PYTHON_WAY, ex, refs, str(steps)])
            inner = json.loads(out.stdout)
            rows.append((f"python + captum, {steps} steps (max |delta| {inner['max_delta']:.1e}, "
                         f"worst relative error {inner['worst_relative']:.1e})", t, inner["work"]))
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  best of {RUNS}")
    for name, t, work in rows:
        extra = f"  (work only {work:.2f} s)" if work is not None else ""
        print(f"{name:<{width}}  {t:8.2f} s{extra}")
    for name, t, _ in rows[1:]:
        print(f"ratio python / plumbline ({name.split(' (')[0]}): {t / t_pl:.1f}x")


if __name__ == "__main__":
    main()
