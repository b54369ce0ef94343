"""Write data/slice.csv: the reference slice the model gates run on (forward-contract probes,
output-distribution, the norm-stats recomputation).

The slice is the holdout period the training script never trained on (timestamps after the 70% cut),
every symbol, built with the training feature builder. Columns: timestamp, symbol, then FEATURE_COLS
(raw, unscaled), floats written with repr() so they round-trip exactly. Rows sorted by (timestamp, symbol).

Also writes data/prices_recent.csv: the last RECENT_BARS bars of every symbol from prices.csv, the
price data the builder gates run on (feature-parity, leakage): the holdout period plus warm-up, a third of
the history, so the builders' runs stay short.

Needs numpy only (no torch):  python3 examples/momentum/data/make_slice.py
"""

import csv
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.dirname(HERE)
sys.path.insert(0, EXAMPLE)

from pipeline.features import FEATURE_COLS, WARMUP_BARS, build_features  # noqa: E402

TRAIN_FRACTION = 0.7  # as in train/train.py
RECENT_BARS = 800


def main():
    by_sym = {}
    with open(os.path.join(HERE, "prices.csv")) as f:
        for row in csv.DictReader(f):
            by_sym.setdefault(row["symbol"], []).append(row)
    rows = []
    all_ts = []
    for sym, raw in sorted(by_sym.items()):
        frame = {k: np.array([float(r[k]) for r in raw]) for k in ("open", "high", "low", "close", "volume")}
        ts = np.array([int(r["timestamp"]) for r in raw])
        x = build_features(frame)
        ok = ~np.isnan(x).any(axis=1)
        ok[:WARMUP_BARS] = False
        all_ts.append(ts[ok])
        rows += [(int(t), sym, x[i]) for i, t in enumerate(ts) if ok[i]]
    cut = np.quantile(np.unique(np.concatenate(all_ts)), TRAIN_FRACTION)
    rows = sorted((r for r in rows if r[0] > cut), key=lambda r: (r[0], r[1]))
    with open(os.path.join(HERE, "slice.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", *FEATURE_COLS])
        for t, sym, x in rows:
            w.writerow([t, sym, *(repr(float(v)) for v in x)])
    print(f"{len(rows)} rows after timestamp {int(cut)}")
    with open(os.path.join(HERE, "prices.csv")) as f:
        lines = f.read().splitlines()
    header, body = lines[0], lines[1:]
    sym_col = header.split(",").index("symbol")
    recent = []
    for sym in sorted(by_sym):
        mine = [l for l in body if l.split(",")[sym_col] == sym]
        recent += mine[-RECENT_BARS:]
    ts_col = header.split(",").index("timestamp")
    recent.sort(key=lambda l: (int(l.split(",")[ts_col]), l.split(",")[sym_col]))
    with open(os.path.join(HERE, "prices_recent.csv"), "w") as f:
        f.write("\n".join([header, *recent]) + "\n")
    print(f"{len(recent)} rows of recent prices")


if __name__ == "__main__":
    main()
