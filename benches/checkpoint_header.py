#!/usr/bin/env python3
"""Benchmark: reading a checkpoint's metadata, plumbline vs the Python way, as files grow.

Builds torch.save-layout archives of 2 MB, 50 MB and 500 MB (one float32 weight of that size plus
metadata, written with the stdlib; no torch needed to build them), and the same as legacy (non-zip,
pre-1.6) torch.save streams, then times, in one run:
  plumbline   `plumbline --config <tmp>/plumbline.toml inventory` (reads every checkpoint's header)
  python      `torch.load(path, map_location="cpu", weights_only=True)` and reading the metadata keys,
              what the plan's 01_checkpoint_inventory.py would do (only when torch is importable),
              and `... mmap=True`, torch's lazy variant (zip archives only: torch cannot mmap a
              legacy file)
and prints the bytes plumbline read (`inventory --format json`, `bytes-read`).
Each is the best of N runs (a fresh process each time, so process start-up is included for both);
"load only" is torch.load alone inside a process that already imported torch.
Prints a table with the ratio. Not part of CI: timings are measured here, never asserted in tests.

Run:
  cargo build --release
  python3 benches/checkpoint_header.py                    # plumbline only
  /path/to/venv-with-torch/bin/python benches/checkpoint_header.py   # plus the torch comparison
Options: PLUMBLINE=path/to/binary  RUNS=7  LAYOUTS=zip,legacy
"""

import json
import os
import struct
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
LAYOUTS = os.environ.get("LAYOUTS", "zip,legacy").split(",")
SIZES = [("2 MB", 2_000_000), ("50 MB", 50_000_000), ("500 MB", 500_000_000)]


def pstr(text):
    """BINUNICODE, the string opcode of protocol 2 (what torch.save writes)."""
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def object_pickle(numel, legacy):
    """`{"state_dict": {"trunk.0.weight": <float32 [numel // 14, 14]>}, "input_dim": 14,
    "model_version": 3}` as torch.save pickles it (protocol 2); a legacy file's persistent id has a
    sixth item, the view (None)."""
    rows = numel // 14
    J = lambda n: b"J" + struct.pack("<i", n)  # noqa: E731
    p = b"\x80\x02}(" + pstr("state_dict") + b"}(" + pstr("trunk.0.weight")
    p += b"ctorch._utils\n_rebuild_tensor_v2\n((" + pstr("storage") + b"ctorch\nFloatStorage\n"
    p += pstr("0") + pstr("cpu") + J(rows * 14) + (b"N" if legacy else b"") + b"tQK\x00" + J(rows)
    p += b"K\x0e\x86" + b"K\x0eK\x01\x86" + b"\x89ccollections\nOrderedDict\n)RtRu"
    return p + pstr("input_dim") + b"K\x0e" + pstr("model_version") + b"K\x03" + b"u."


def write_zeros(f, n):
    chunk = bytes(1 << 20)
    while n:
        k = min(n, len(chunk))
        f.write(chunk[:k])
        n -= k


def synthetic_torch(dst, numel):
    """A torch.save-layout archive of `object_pickle` with the tensor's storage of zero bytes, written
    by hand. The same layout as tests/it/util.rs::synthetic_torch; torch.load reads it."""
    numel = numel // 14 * 14
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", object_pickle(numel, False))
        with z.open("archive/data/0", "w", force_zip64=True) as f:
            write_zeros(f, numel * 4)
        z.writestr("archive/version", "3\n")


def synthetic_legacy(dst, numel):
    """The same object as torch.save(..., _use_new_zipfile_serialization=False) lays it out: the magic
    number, protocol 1001 and sys_info pickles, `object_pickle`, the storage-key list, then the
    storage's element count and bytes. The same layout as tests/it/legacy.rs; torch.load reads it."""
    numel = numel // 14 * 14
    out = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
    out += b"\x80\x02M\xe9\x03."
    out += b"\x80\x02}(" + pstr("protocol_version") + b"M\xe9\x03" + pstr("little_endian") + b"\x88u."
    out += object_pickle(numel, True) + b"\x80\x02]" + pstr("0") + b"a." + struct.pack("<q", numel)
    with open(dst, "wb") as f:
        f.write(out)
        write_zeros(f, numel * 4)


# `inventory` only reads the [checkpoints] table; the sources are never resolved by it.
CONFIG = """
[pipeline]
name = "bench"
[model]
version = { checkpoint = "production", key = "model_version" }
heads-version = { checkpoint = "production", key = "model_version" }
heads = { checkpoint = "production", key = "heads" }
[features]
columns = { checkpoint = "production", key = "feature_cols" }
dtypes = { checkpoint = "production", key = "feature_dtypes" }
nan-policy = { checkpoint = "production", key = "nan_policy" }
[targets]
horizon = { checkpoint = "production", key = "targets.horizon" }
thresholds = { checkpoint = "production", key = "targets.thresholds" }
[checkpoints]
globs = ["*.pt"]
production = "model.pt"
"""


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
        print(f"{'file':>15}  {'plumbline':>10}  {'read':>8}  {'torch.load':>11}  {'ratio':>6}  {'torch mmap':>11}  {'ratio':>6}  {'load only':>11}")
        for layout in LAYOUTS:
            for label, size in SIZES:
                work = os.path.join(tmp, layout + label.replace(" ", ""))
                os.makedirs(work)
                ck = os.path.join(work, "model.pt")
                (synthetic_torch if layout == "zip" else synthetic_legacy)(ck, size // 4)
                cfg = os.path.join(work, "plumbline.toml")
                with open(cfg, "w") as f:
                    f.write(CONFIG)

                def run_plumbline():
                    # Exit 1 is the verdict (the synthetic checkpoints lack the required facts); 2 is a failure to read.
                    r = subprocess.run([BINARY, "--config", cfg, "inventory"], stdout=subprocess.DEVNULL)
                    if r.returncode not in (0, 1):
                        raise SystemExit(f"plumbline inventory exited {r.returncode} on {ck}")

                t_pl = best_of(run_plumbline)
                inv = subprocess.run([BINARY, "--config", cfg, "--format", "json", "inventory"], capture_output=True, text=True)
                read = json.loads(inv.stdout)["checkpoints"][0]["bytes-read"]
                row = f"{layout + ' ' + label:>15}  {t_pl * 1000:7.1f} ms  {read:>6} B"
                if not have_torch:
                    print(row + f"  {'(no torch)':>11}")
                    continue
                for mmap in (False, True) if layout == "zip" else (False,):
                    code = (
                        f"import sys, torch; d = torch.load(sys.argv[1], map_location='cpu', weights_only=True, mmap={mmap}); "
                        "[d[k] for k in ('input_dim', 'model_version')]; d['state_dict']['trunk.0.weight'].shape"
                    )
                    t_py = best_of(lambda: subprocess.run([sys.executable, "-c", code, ck], check=True))
                    row += f"  {t_py * 1000:8.1f} ms  {t_py / t_pl:5.0f}x"
                if layout != "zip":
                    row += f"  {'—':>11}  {'':>6}"
                # torch.load alone, in a process that has already imported torch (import cost excluded).
                inproc = (
                    "import sys, time, torch\nbest = 1e9\n"
                    f"for _ in range({RUNS}):\n"
                    "    t = time.perf_counter(); d = torch.load(sys.argv[1], map_location='cpu', weights_only=True)\n"
                    "    best = min(best, time.perf_counter() - t)\nprint(best)"
                )
                t_load = float(subprocess.run([sys.executable, "-c", inproc, ck], check=True, capture_output=True, text=True).stdout)
                row += f"  {t_load * 1000:8.1f} ms"
                print(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
