"""Backtest feature builder: a point-in-time loop over bars, independent of the training builder.

For each symbol, bar i is appended to the history and every feature is computed from bars 0..i only
(plain lists and `math`), so no feature can read the future.

Protocol:  python3 backtest/features.py PRICES OUT
  PRICES  CSV with header timestamp,symbol,open,high,low,close,volume (any row order).
  OUT     CSV timestamp,symbol,<COLUMNS>: one row per bar, sorted by (timestamp, symbol), floats written
          with repr(), NaN (warm-up: not enough history) as an empty cell.
Exits 2 with a message on stderr on bad input.
"""

import csv
import math
import sys

import numpy as np

COLUMNS = [
    "ret_1",
    "ret_5",
    "ret_10",
    "ret_20",
    "vol_10",
    "vol_20",
    "vol_ratio",
    "rsi_14",
    "vz_20",
    "ma_gap_10",
    "ma_gap_50",
    "range_10",
    "hl_ratio",
    "mom_5_20",
]

PRICE_COLS = ("open", "high", "low", "close", "volume")
NAN = math.nan


def mean(xs):
    return sum(xs) / len(xs)


def pstd(xs):
    """Population standard deviation (ddof = 0), two-pass."""
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def div(a, b):
    """a / b with IEEE semantics: x / 0 is +-inf and 0 / 0 is NaN instead of an exception."""
    try:
        return a / b
    except ZeroDivisionError:
        return NAN if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


def last(xs, w):
    """The last w values of the history, or None while it is shorter than w."""
    return xs[-w:] if len(xs) >= w else None


def features_at(h):
    """Features of the newest bar from the history lists in `h` (all bars up to and including it)."""
    c, i = h["close"][-1], len(h["close"]) - 1
    logc, r1 = h["logc"], h["r1"]

    def ret(k):
        return logc[i] - logc[i - k] if i >= k else NAN

    def stat(fn, xs, w):
        win = last(xs, w)
        return fn(win) if win is not None else NAN

    # r1[0] is NaN (no previous close), so a volatility window containing bar 0 is NaN.
    vol_10, vol_20 = stat(pstd, r1, 10), stat(pstd, r1, 20)
    rsi = NAN
    if i >= 13:
        # Bar 0's unknown return counts as neither gain nor loss (NaN > 0 and NaN < 0 are both False).
        win = r1[-14:]
        gain = mean([r if r > 0 else 0.0 for r in win])
        loss = mean([-r if r < 0 else 0.0 for r in win])
        rsi = gain / (gain + loss) if gain + loss > 0 else 0.5
    lv = last(h["logv"], 20)
    highs, lows = last(h["high"], 10), last(h["low"], 10)
    ret_5, ret_20 = ret(5), ret(20)
    return {
        "ret_1": r1[i],
        "ret_5": ret_5,
        "ret_10": ret(10),
        "ret_20": ret_20,
        "vol_10": vol_10,
        "vol_20": vol_20,
        "vol_ratio": div(vol_10, vol_20),
        "rsi_14": rsi,
        "vz_20": div(lv[-1] - mean(lv), pstd(lv)) if lv else NAN,
        "ma_gap_10": c / stat(mean, h["close"], 10) - 1.0,
        "ma_gap_50": c / stat(mean, h["close"], 50) - 1.0,
        "range_10": (max(highs) - min(lows)) / c if highs else NAN,
        "hl_ratio": (h["high"][-1] - h["low"][-1]) / c,
        "mom_5_20": ret_5 - ret_20 / 4.0,
    }


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


def run_symbol(bars):
    """Walk the bars in time order; row i of the result holds the features known at bar i."""
    out = np.full((len(bars), len(COLUMNS)), np.nan, dtype=np.float64)
    h = {k: [] for k in ("close", "high", "low", "logc", "logv", "r1")}
    for i, (_, _, high, low, close, volume) in enumerate(bars):
        h["close"].append(close)
        h["high"].append(high)
        h["low"].append(low)
        h["logc"].append(math.log(close))
        h["logv"].append(math.log(volume))
        h["r1"].append(h["logc"][-1] - h["logc"][-2] if i > 0 else NAN)
        feats = features_at(h)
        out[i] = [feats[c] for c in COLUMNS]
    return out


def fmt(v):
    return "" if math.isnan(v) else repr(float(v))


def main(argv):
    if len(argv) != 3:
        raise ValueError("usage: backtest/features.py PRICES OUT")
    rows = []
    for sym, bars in read_prices(argv[1]).items():
        x = run_symbol(bars)
        rows += [(b[0], sym, x[i]) for i, b in enumerate(bars)]
    rows.sort(key=lambda r: (r[0], r[1]))
    with open(argv[2], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", *COLUMNS])
        for ts, sym, x in rows:
            w.writerow([ts, sym, *(fmt(v) for v in x)])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError) as e:
        print(f"backtest/features: {e}", file=sys.stderr)
        sys.exit(2)
