#!/usr/bin/env python3
"""Benchmark: reading a checkpoint's metadata, plumbline vs the Python way, as files grow.

Builds torch.save-layout archives of ~2 MB, ~50 MB and ~500 MB from the example's production checkpoint
(its own entries, with the first storage grown to the target size; stdlib zipfile, no torch needed),
then times, in one run:
  plumbline   `plumbline --config <tmp>/plumbline.toml inventory` (reads every checkpoint's header)
  python      `torch.load(path, map_location="cpu", weights_only=True)` and reading the metadata keys,
              what the plan's 01_checkpoint_inventory.py would do (only when torch is importable)
Each is the best of N runs (a fresh process each time, so process start-up is included for both).
Prints a table with the ratio. Not part of CI: timings are measured here, never asserted in tests.

Run:
  cargo build --release
  python3 benches/checkpoint_header.py                    # plumbline only
  /path/to/venv-with-torch/bin/python benches/checkpoint_header.py   # plus the torch comparison
Options: PLUMBLINE=path/to/binary  RUNS=7
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "momentum")
PRODUCTION = os.path.join(EXAMPLE, "checkpoints", "momentum_v3.pt")
BINARY = os.environ.get("PLUMBLINE", os.path.join(REPO, "target", "release", "plumbline"))
RUNS = int(os.environ.get("RUNS", "7"))
SIZES = [("2 MB", 2_000_000), ("50 MB", 50_000_000), ("500 MB", 500_000_000)]


def grown_copy(dst, storage_bytes):
    with zipfile.ZipFile(PRODUCTION) as src, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as out:
        big = next(n for n in src.namelist() if n.endswith("/data/0"))
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == big:
                data = data + bytes(storage_bytes - len(data))
            out.writestr(info, data)


def best_of(fn):
    best = float("inf")
    for _ in range(RUNS):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} not found: run `cargo build --release` first (or set PLUMBLINE)")
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    tmp = tempfile.mkdtemp(prefix="plumbline-bench-")
    try:
        print(f"best of {RUNS} runs; plumbline = {BINARY}")
        print(f"{'file':>8}  {'plumbline':>10}  {'torch.load':>11}  {'ratio':>7}")
        for label, size in SIZES:
            work = os.path.join(tmp, label.replace(" ", ""))
            shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("data", "__pycache__", "*.safetensors"))
            ck = os.path.join(work, "checkpoints", "momentum_v3.pt")
            grown_copy(ck, size)
            cfg = os.path.join(work, "plumbline.toml")

            def run_plumbline():
                subprocess.run([BINARY, "--config", cfg, "inventory"], check=True, stdout=subprocess.DEVNULL)

            t_pl = best_of(run_plumbline)
            if have_torch:
                code = (
                    "import sys, torch; d = torch.load(sys.argv[1], map_location='cpu', weights_only=True); "
                    "[d[k] for k in ('feature_cols', 'input_dim', 'scaler', 'model_version', 'heads', 'arch')]"
                )
                t_py = best_of(lambda: subprocess.run([sys.executable, "-c", code, ck], check=True))
                print(f"{label:>8}  {t_pl * 1000:8.1f} ms  {t_py * 1000:8.1f} ms  {t_py / t_pl:6.1f}x")
            else:
                print(f"{label:>8}  {t_pl * 1000:8.1f} ms  {'(no torch)':>11}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
