"""Seed corpus for the pickle fuzz targets (stdlib only):

    python3 fuzz/differential/seeds.py fuzz/corpus/pickle_globals

Every pickle stream of the checkpoint fixtures (each zip's data.pkl; legacy and plain pickle files
whole), and Python's own pickles of ordinary values in every protocol."""

import collections
import os
import pickle
import sys
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
n = 0


def write(data):
    global n
    with open(os.path.join(out, f"seed-{n:04d}"), "wb") as f:
        f.write(data)
    n += 1


for sub in ["tests/fixtures/malicious", "tests/fixtures/benign", "tests/fixtures/checkpoints", "examples/momentum/checkpoints"]:
    d = os.path.join(ROOT, sub)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if not os.path.isfile(path) or name.endswith((".json", ".md", ".py", ".safetensors")):
            continue
        try:
            with zipfile.ZipFile(path) as z:
                for entry in z.namelist():
                    if entry.endswith(".pkl"):
                        write(z.read(entry))
        except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError):
            with open(path, "rb") as f:
                write(f.read()[: 1 << 16])

values = [
    {"a": 1, "b": [1.5, None, True], "c": ("x", b"y")},
    collections.OrderedDict(w=[1, 2], v={3: 4}),
    [set([1, 2]), frozenset([3]), bytearray(b"ab"), complex(1, 2)],
    {(1, "k"): 2**70, None: -(2**40), 0.5: "é"},
    collections.Counter("aab"),
]
for v in values:
    for proto in range(0, 6):
        write(pickle.dumps(v, protocol=proto))
print(n, "seeds in", out)
