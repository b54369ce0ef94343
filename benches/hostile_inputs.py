#!/usr/bin/env python3
"""Benchmark: hostile checkpoints, plumbline vs the Python way of reading the same file, in one run.

Builds, in a temp dir, the hostile sizes of issue 14 and times `plumbline inventory` on each (a fresh
process per run, best of N), next to what Python does with the same bytes:
  safetensors  300,000 tensors in one header       python: safetensors.safe_open(...).keys()
  memo         a pickle with 1,000,000 memo entries python: pickle.loads(data.pkl)
  long4-20k    a 20 KB LONG4 integer               python: pickle.loads(data.pkl)
  long4-100k   a 100 KB LONG4 integer              python: pickle.loads(data.pkl)
  long4-1m     a 1 MB LONG4 integer                python: pickle.loads(data.pkl)
and, when tests/fixtures/malicious/ exists, the time per file over the malicious corpus (plumbline
refuses each; python column: torch.load(weights_only=True) when torch is importable).
Timings are printed here, never asserted in tests (the tests only prove each input gets an answer).

Run:
  cargo build --release
  python3 benches/hostile_inputs.py             # python column needs `safetensors` for the first row
Options: PLUMBLINE=path/to/binary  RUNS=5  TIMEOUT=120 (seconds per run; slower shows as "> 120 s",
and the remaining runs of that row are skipped: an older binary took minutes per LONG4)
"""

import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("PLUMBLINE", os.path.join(REPO, "target", "release", "plumbline"))
RUNS = int(os.environ.get("RUNS", "5"))
TIMEOUT = float(os.environ.get("TIMEOUT", "120"))
CORPUS = os.path.join(REPO, "tests", "fixtures", "malicious")

CONFIG = """
[pipeline]
name = "bench"
[model]
version = {{ checkpoint = "production", key = "model_version" }}
heads-version = {{ checkpoint = "production", key = "model_version" }}
heads = {{ checkpoint = "production", key = "heads" }}
[features]
columns = {{ checkpoint = "production", key = "feature_cols" }}
dtypes = {{ checkpoint = "production", key = "feature_dtypes" }}
nan-policy = {{ checkpoint = "production", key = "nan_policy" }}
[targets]
horizon = {{ checkpoint = "production", key = "targets.horizon" }}
thresholds = {{ checkpoint = "production", key = "targets.thresholds" }}
[checkpoints]
globs = ["{name}"]
production = "{name}"
"""


def torch_zip(path, pickle_bytes):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/version", "3\n")


def many_tensors(path, n=300_000):
    parts = [f'"t{i}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}' for i in range(n)]
    header = ("{" + ",".join(parts) + "}").encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + bytes(4 * n))


def memo_pickle(n=1_000_000):
    return b"\x80\x04" + b"]\x94" + b"0]\x94" * (n - 1) + b"."


def long4_pickle(n):
    return b"\x80\x02\x8b" + struct.pack("<I", n) + b"\x11" * n + b"."


def best_of(fn):
    best = float("inf")
    for _ in range(RUNS):
        t = time.perf_counter()
        try:
            fn()
        except subprocess.TimeoutExpired:
            return float("inf")
        best = min(best, time.perf_counter() - t)
    return best


def time_plumbline(work, name):
    cfg = os.path.join(work, name + ".toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(name=name))
    # Exit 2 (refused) is expected for the corpus; only the time matters here.
    return best_of(lambda: subprocess.run([BINARY, "--config", cfg, "inventory"], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, timeout=TIMEOUT))


def time_python(code, *args):
    script = (
        "import sys, time, pickle, zipfile\n"
        f"best = 1e9\nfor _ in range({RUNS}):\n"
        "    t = time.perf_counter()\n"
        "    try:\n" + "".join(f"        {line}\n" for line in code.splitlines()) +
        "    except Exception:\n        pass\n"
        "    best = min(best, time.perf_counter() - t)\nprint(best)"
    )
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    try:
        return float(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def fmt(t):
    if t is None:
        return "n/a"
    if t == float("inf"):
        return f"> {TIMEOUT:.0f} s"
    return f"{t * 1000:9.1f} ms"


def main():
    if not os.path.exists(BINARY):
        sys.exit(f"{BINARY} not found: run `cargo build --release` first (or set PLUMBLINE)")
    sys.set_int_max_str_digits(0) if hasattr(sys, "set_int_max_str_digits") else None
    tmp = tempfile.mkdtemp(prefix="plumbline-hostile-")
    unpickle = "z = zipfile.ZipFile(sys.argv[1]); pickle.loads(z.read('archive/data.pkl'))"
    try:
        print(f"best of {RUNS} runs (plumbline: a fresh process each, start-up included; python: in-process)")
        print(f"{'input':>14}  {'plumbline':>12}  {'python':>12}  python does")
        rows = [("safetensors", "many.safetensors", None, "safe_open(...).keys()")]
        many_tensors(os.path.join(tmp, "many.safetensors"))
        for label, data in [
            ("memo-1m", memo_pickle()),
            ("long4-20k", long4_pickle(20_000)),
            ("long4-100k", long4_pickle(100_000)),
            ("long4-1m", long4_pickle(1_000_000)),
        ]:
            torch_zip(os.path.join(tmp, label + ".pt"), data)
            rows.append((label, label + ".pt", unpickle, "pickle.loads(data.pkl)"))
        for label, name, code, what in rows:
            t_pl = time_plumbline(tmp, name)
            path = os.path.join(tmp, name)
            if code is None:
                code = "from safetensors import safe_open\nwith safe_open(sys.argv[1], 'np') as f: list(f.keys())"
            t_py = time_python(code, path)
            print(f"{label:>14}  {fmt(t_pl):>12}  {fmt(t_py):>12}  {what}")
        if os.path.isdir(CORPUS):
            files = sorted(f for f in os.listdir(CORPUS) if f.endswith((".pt", ".pth", ".ckpt", ".pkl")))
            work = os.path.join(tmp, "corpus")
            os.makedirs(work)
            total = 0.0
            worst = (0.0, "")
            for f in files:
                shutil.copy(os.path.join(CORPUS, f), os.path.join(work, f))
                t = time_plumbline(work, f)
                total += t
                worst = max(worst, (t, f))
            if files:
                print(f"malicious corpus: {len(files)} files, mean {total / len(files) * 1000:.1f} ms per file "
                      f"(process start-up included), slowest {worst[0] * 1000:.1f} ms ({worst[1]})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
