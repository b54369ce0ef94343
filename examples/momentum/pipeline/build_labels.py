"""Labels builder: a thin CLI around pipeline.labels (forward_return, direction_label).

Protocol:  python3 pipeline/build_labels.py PRICES OUT
  PRICES  CSV with header timestamp,symbol,open,high,low,close,volume (any row order).
  OUT     CSV timestamp,symbol,forward_return,label: one row per bar, sorted by (timestamp, symbol).
          forward_return = log(close[t + HORIZON] / close[t]) written with repr(); label is the class
          index of the direction head (0 short, 1 flat, 2 long). Both cells are empty where the forward
          return is unknown (the last HORIZON bars of each symbol).
Exits 2 with a message on stderr on bad input.
"""

import csv
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipeline.labels import HORIZON, direction_label, forward_return  # noqa: E402


def read_closes(path):
    """{symbol: [(timestamp, close), ...]} with each list in time order."""
    by_sym = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "symbol", "close"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line, r in enumerate(reader, start=2):
            try:
                ts, close = int(r["timestamp"]), float(r["close"])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{line}: {e}") from None
            if not (math.isfinite(close) and close > 0):
                raise ValueError(f"{path}:{line}: close must be finite and positive")
            by_sym.setdefault(r["symbol"], []).append((ts, close))
    for sym, bars in by_sym.items():
        bars.sort()
        if any(a[0] == b[0] for a, b in zip(bars, bars[1:])):
            raise ValueError(f"{path}: duplicate timestamp for symbol {sym}")
    return by_sym


def main(argv):
    if len(argv) != 3:
        raise ValueError("usage: build_labels.py PRICES OUT")
    rows = []
    for sym, bars in read_closes(argv[1]).items():
        close = np.array([c for _, c in bars], dtype=np.float64)
        fwd = forward_return(close, HORIZON)
        lab = direction_label(fwd)
        for i, (ts, _) in enumerate(bars):
            known = not math.isnan(fwd[i])
            rows.append((ts, sym, repr(float(fwd[i])) if known else "", str(int(lab[i])) if known else ""))
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(argv[2], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", "forward_return", "label"])
        w.writerows(rows)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError) as e:
        print(f"build_labels: {e}", file=sys.stderr)
        sys.exit(2)
