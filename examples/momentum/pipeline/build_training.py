"""Training feature builder: a thin CLI around pipeline.features.build_features (vectorised, numpy).

Protocol:  python3 pipeline/build_training.py PRICES OUT
  PRICES  CSV with header timestamp,symbol,open,high,low,close,volume (any row order).
  OUT     CSV timestamp,symbol,<FEATURE_COLS in order>: one row per bar, sorted by (timestamp, symbol),
          floats written with repr(), NaN (warm-up: not enough history) as an empty cell.
Exits 2 with a message on stderr on bad input.
"""

import csv
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.features import FEATURE_COLS, build_features  # noqa: E402

PRICE_COLS = ("open", "high", "low", "close", "volume")


def read_prices(path):
    """{symbol: [(timestamp, open, high, low, close, volume), ...]} with each list in time order."""
    by_sym = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "symbol", *PRICE_COLS} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line, r in enumerate(reader, start=2):
            try:
                bar = (int(r["timestamp"]), *(float(r[k]) for k in PRICE_COLS))
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{line}: {e}") from None
            if not all(math.isfinite(v) and v > 0 for v in bar[1:]):
                raise ValueError(f"{path}:{line}: prices and volume must be finite and positive")
            by_sym.setdefault(r["symbol"], []).append(bar)
    for sym, bars in by_sym.items():
        bars.sort()
        if any(a[0] == b[0] for a, b in zip(bars, bars[1:])):
            raise ValueError(f"{path}: duplicate timestamp for symbol {sym}")
    return by_sym


def fmt(v):
    return "" if math.isnan(v) else repr(float(v))


def main(argv):
    if len(argv) != 3:
        raise ValueError("usage: build_training.py PRICES OUT")
    rows = []
    for sym, bars in read_prices(argv[1]).items():
        arr = np.array([b[1:] for b in bars], dtype=np.float64)
        x = build_features({k: arr[:, j] for j, k in enumerate(PRICE_COLS)})
        rows += [(b[0], sym, x[i]) for i, b in enumerate(bars)]
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(argv[2], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", *FEATURE_COLS])
        for ts, sym, x in rows:
            w.writerow([ts, sym, *(fmt(v) for v in x)])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError) as e:
        print(f"build_training: {e}", file=sys.stderr)
        sys.exit(2)
