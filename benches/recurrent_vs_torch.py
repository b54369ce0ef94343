#!/usr/bin/env python3
"""Benchmark: plumbline's native LSTM and GRU (burn, ndarray) against torch CPU, in one run.

On the LSTM and GRU of tests/fixtures/models/momentum_rnn (trained on 32-bar momentum windows), with a
synthetic slice of raw bars (4 symbols, hourly, values drawn around the checkpoint's median with its
MAD), times:
  forward   plumbline `baseline` on 100,000 windows (whole process: read the CSV, build the windows per
            symbol, scale, run the model, write the baseline) against torch on the same windows
            (whole script: read the CSV with numpy, build the same windows, scale, forward), and the
            forward pass alone inside torch
  IG        plumbline `audit conditions` on 2,000 windows with `max-steps = 65` (32 intervals with their
            midpoints: 65 gradient evaluations per window and output, the same count as torch) against
            torch integrated gradients hand-batched the same way (65 points per window, one forward and
            one backward per output, the trapezoid rule), all four outputs
each single-threaded (torch.set_num_threads(1), RAYON_NUM_THREADS=1) and with every core, best of RUNS
fresh processes. Prints rows/s and the ratio plumbline / torch (below 1: plumbline is faster). Not part
of CI: timings are measured here, never asserted in tests.

Run:
  cargo build --release
  /path/to/venv-with-torch/bin/python benches/recurrent_vs_torch.py
Options: PLUMBLINE=path/to/binary  RUNS=3  WINDOWS=100000  IG_WINDOWS=2000
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "models", "momentum_rnn")
BINARY = os.environ.get("PLUMBLINE", os.path.join(REPO, "target", "release", "plumbline"))
RUNS = int(os.environ.get("RUNS", "3"))
WINDOWS = int(os.environ.get("WINDOWS", "100000"))
IG_WINDOWS = int(os.environ.get("IG_WINDOWS", "2000"))
WINDOW = 32
SYMBOLS = 4

TORCH_WAY = r'''
import csv, json, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
from torch import nn
mode, name, threads, ex = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if threads:
    torch.set_num_threads(threads)
meta = json.load(open(f"{ex}/checkpoints/{name}.json"))
layer = meta["arch"]["layers"][0]
W = meta["window"]
cls = {"LSTM": nn.LSTM, "GRU": nn.GRU}[layer["type"]]
rnn = cls(layer["input_size"], layer["hidden_size"], num_layers=layer["num_layers"], batch_first=True,
          bidirectional=layer["bidirectional"])
net = nn.Sequential(nn.Linear(layer["hidden_size"] * (2 if layer["bidirectional"] else 1), 16), nn.ReLU())
heads = nn.ModuleDict({"direction": nn.Linear(16, 3), "magnitude": nn.Linear(16, 1)})
sd = torch.load(f"{ex}/checkpoints/{name}.pt", weights_only=True)
for prefix, m in (("rnn.", rnn), ("net.", net), ("heads.", heads)):
    m.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
for m in (rnn, net, heads):
    m.eval()
def model(x):
    out, state = rnn(x)
    if layer["output"] == "last":
        z = out[:, -1]
    else:
        h = state[0] if isinstance(state, tuple) else state
        z = torch.cat([h[-2], h[-1]], 1) if layer["bidirectional"] else h[-1]
    z = net(z)
    return torch.cat([heads["direction"](z), heads["magnitude"](z)], 1)
cols = meta["feature_cols"]
data = np.genfromtxt(f"{ex}/data/slice.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
med = np.array(meta["scaler"]["median"]); mad = np.array(meta["scaler"]["mad"])
raw = np.stack([data[c].astype(float) for c in cols], 1)
scaled = (raw - med) / mad
scaled[np.isnan(scaled)] = 0.0
wins = []
for sym in sorted(set(data["symbol"])):
    idx = np.flatnonzero(data["symbol"] == sym)
    idx = idx[np.argsort(data["timestamp"][idx], kind="stable")]
    s = scaled[idx]
    wins.append(np.lib.stride_tricks.sliding_window_view(s, (W, s.shape[1]))[:, 0])
x = torch.tensor(np.concatenate(wins), dtype=torch.float32)
t1 = time.perf_counter()
if mode == "forward":
    with torch.no_grad():
        y = model(x)
else:
    steps = 65
    alphas = torch.linspace(0, 1, steps)
    wts = torch.full((steps,), 1.0 / (steps - 1)); wts[0] = wts[-1] = 0.5 / (steps - 1)
    attr = torch.zeros(y_units := 4, *x.shape)
    for r0 in range(0, len(x), 64):
        xb = x[r0:r0 + 64]
        path = (alphas[:, None, None, None] * xb[None]).reshape(-1, *xb.shape[1:]).requires_grad_(True)
        out = model(path)
        for u in range(y_units):
            g, = torch.autograd.grad(out[:, u].sum(), path, retain_graph=u < y_units - 1)
            g = g.reshape(steps, *xb.shape)
            attr[u, r0:r0 + 64] = xb * (g * wts[:, None, None, None]).sum(0)
t2 = time.perf_counter()
print(json.dumps({"rows": len(x), "work": t2 - t1, "imports": t1 - t0}))
'''


def write_slice(path, meta, windows):
    """SYMBOLS symbols with enough hourly bars for `windows` windows of WINDOW bars."""
    bars = windows // SYMBOLS + WINDOW - 1
    rng = np.random.default_rng(0)
    med = np.array(meta["scaler"]["median"])
    mad = np.array(meta["scaler"]["mad"])
    cols = meta["feature_cols"]
    with open(path, "w") as f:
        f.write("timestamp,symbol," + ",".join(cols) + "\n")
        for t in range(bars):
            for s in range(SYMBOLS):
                v = med + rng.standard_normal(len(cols)) * mad
                f.write(f"{1700000000 + 3600 * t},S{s}," + ",".join(f"{x:.6g}" for x in v) + "\n")
    return SYMBOLS * (bars - WINDOW + 1)


def example(tmp, name, windows, ig):
    ex = os.path.join(tmp, f"{name}-{windows}")
    shutil.copytree(os.path.join(REPO, "examples", "momentum"), ex)
    for f in ("momentum_v3.pt", "momentum_v3.safetensors"):
        os.remove(os.path.join(ex, "checkpoints", f))
    shutil.copy(os.path.join(FIXTURES, f"{name}.pt"), os.path.join(ex, "checkpoints", f"{name}.pt"))
    shutil.copy(os.path.join(FIXTURES, f"{name}.json"), os.path.join(ex, "checkpoints", f"{name}.json"))
    meta = json.load(open(os.path.join(FIXTURES, f"{name}.json")))
    n = write_slice(os.path.join(ex, "data", "slice.csv"), meta, windows)
    with open(os.path.join(ex, "pipeline", "model.py"), "a") as f:
        f.write(f"\nWINDOW = {WINDOW}\n")
    cfg = open(os.path.join(ex, "plumbline.toml")).read()
    cfg = cfg.replace('globs = ["checkpoints/*.pt", "checkpoints/*.safetensors"]', 'globs = ["checkpoints/*.pt"]')
    cfg = cfg.replace('production = "checkpoints/momentum_v3.pt"', f'production = "checkpoints/{name}.pt"')
    cfg = cfg.replace(
        'heads = { python = "pipeline/model.py", name = "HEADS" }\n',
        'heads = { python = "pipeline/model.py", name = "HEADS" }\nwindow = { python = "pipeline/model.py", name = "WINDOW" }\n',
    )
    if ig:
        cfg += "\n[audit]\nmax-steps = 65\n"
    open(os.path.join(ex, "plumbline.toml"), "w").write(cfg)
    return ex, n


def best(cmd, env=None):
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return min(times)


def torch_best(script, mode, name, threads, ex):
    runs = []
    for _ in range(RUNS):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, script, mode, name, str(threads), ex], capture_output=True, text=True)
        whole = time.perf_counter() - t
        if out.returncode != 0:
            sys.exit(out.stderr)
        runs.append((whole, json.loads(out.stdout)["work"]))
    return min(runs)


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"no binary at {BINARY}: cargo build --release")
    tmp = tempfile.mkdtemp(prefix="plumbline-rnn-bench-")
    script = os.path.join(tmp, "torch_way.py")
    open(script, "w").write(TORCH_WAY)
    cores = os.cpu_count()
    rows = []
    for name in ("lstm", "gru"):
        for mode, windows in (("forward", WINDOWS), ("ig", IG_WINDOWS)):
            ex, n = example(tmp, name, windows, mode == "ig")
            args = ["baseline"] if mode == "forward" else ["audit", "conditions"]
            cmd = [BINARY, "--config", os.path.join(ex, "plumbline.toml"), *args]
            for threads in (1, cores):
                env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
                ours = best(cmd, env)
                whole, work = torch_best(script, mode, name, threads, ex)
                rows.append((name, mode, n, threads, ours, whole, work))
                print(
                    f"{name:5} {mode:7} {n:>7} windows  {threads} thread(s)  plumbline {ours:7.2f} s ({n / ours:9.0f}/s)"
                    f"  torch {whole:7.2f} s whole, {work:7.2f} s work ({n / work:9.0f}/s)  ratio {ours / whole:5.2f} whole, {ours / work:5.2f} vs work",
                    flush=True,
                )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
