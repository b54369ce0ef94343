"""Live feature builder: incremental state per symbol, fed one bar at a time (as the live process is).

LiveFeatures keeps only bounded rolling state (deques and running sums) and returns the features of each
bar as it arrives. It shares no code with the training or backtest builders.

Protocol:  python3 live/features.py PRICES OUT
  PRICES  CSV with header timestamp,symbol,open,high,low,close,volume (any row order; replayed bar by bar
          in (timestamp, symbol) order).
  OUT     CSV timestamp,symbol,<COLUMNS>: one row per bar, sorted by (timestamp, symbol), floats written
          with repr(), NaN (warm-up: not enough history) as an empty cell.
Exits 2 with a message on stderr on bad input.
"""

import csv
import math
import sys
from collections import deque

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

NAN = math.nan


def _std(xs):
    """Population standard deviation (ddof = 0), two-pass over a short window."""
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def _div(a, b):
    """a / b with IEEE semantics: x / 0 is +-inf and 0 / 0 is NaN instead of an exception."""
    try:
        return a / b
    except ZeroDivisionError:
        return NAN if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


class LiveFeatures:
    """Rolling feature state of one symbol. Call update() with each new bar, in time order."""

    def __init__(self):
        self.logc = deque(maxlen=21)  # log closes t-20 .. t, for the 1/5/10/20-bar returns
        self.rets = deque(maxlen=20)  # known 1-bar log returns (the first bar has none)
        self.gains = deque(maxlen=14)  # RSI inputs, see update()
        self.losses = deque(maxlen=14)
        self.logv = deque(maxlen=20)
        self.highs = deque(maxlen=10)
        self.lows = deque(maxlen=10)
        self.c10, self.c50 = deque(maxlen=10), deque(maxlen=50)
        self.sum10 = self.sum50 = 0.0  # running sums of c10 and c50

    @staticmethod
    def _push(window, x, total):
        """Append x to a bounded window and return its updated running sum."""
        if len(window) == window.maxlen:
            total -= window[0]
        window.append(x)
        return total + x

    def _ret(self, k):
        return self.logc[-1] - self.logc[-1 - k] if len(self.logc) > k else NAN

    def update(self, bar):
        """bar: mapping with high, low, close, volume. Returns {column: value} for COLUMNS."""
        c, high, low = bar["close"], bar["high"], bar["low"]
        self.logc.append(math.log(c))
        r1 = self._ret(1)
        if not math.isnan(r1):
            self.rets.append(r1)
        # The training builder counts the first bar's unknown return as neither gain nor loss, so the
        # RSI is known from the 14th bar on.
        self.gains.append(r1 if r1 > 0 else 0.0)
        self.losses.append(-r1 if r1 < 0 else 0.0)
        self.logv.append(math.log(bar["volume"]))
        self.highs.append(high)
        self.lows.append(low)
        self.sum10 = self._push(self.c10, c, self.sum10)
        self.sum50 = self._push(self.c50, c, self.sum50)

        rets = list(self.rets)
        vol_10 = _std(rets[-10:]) if len(rets) >= 10 else NAN
        vol_20 = _std(rets) if len(rets) == 20 else NAN
        rsi = NAN
        if len(self.gains) == 14:
            gain, loss = sum(self.gains) / 14, sum(self.losses) / 14
            rsi = gain / (gain + loss) if gain + loss > 0 else 0.5
        vz = NAN
        if len(self.logv) == 20:
            m = sum(self.logv) / 20
            vz = _div(self.logv[-1] - m, _std(self.logv))
        ret_5, ret_20 = self._ret(5), self._ret(20)
        return {
            "ret_1": r1,
            "ret_5": ret_5,
            "ret_10": self._ret(10),
            "ret_20": ret_20,
            "vol_10": vol_10,
            "vol_20": vol_20,
            "vol_ratio": _div(vol_10, vol_20),
            "rsi_14": rsi,
            "vz_20": vz,
            "ma_gap_10": c / (self.sum10 / 10) - 1.0 if len(self.c10) == 10 else NAN,
            "ma_gap_50": c / (self.sum50 / 50) - 1.0 if len(self.c50) == 50 else NAN,
            "range_10": (max(self.highs) - min(self.lows)) / c if len(self.highs) == 10 else NAN,
            "hl_ratio": (high - low) / c,
            "mom_5_20": ret_5 - ret_20 / 4.0,
        }


def read_bars(path):
    """All bars as (timestamp, symbol, bar dict), in replay order (timestamp, symbol)."""
    cols = ("open", "high", "low", "close", "volume")
    bars = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "symbol", *cols} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line, r in enumerate(reader, start=2):
            try:
                bar = {k: float(r[k]) for k in cols}
                ts = int(r["timestamp"])
            except (TypeError, ValueError) as e:
                raise ValueError(f"{path}:{line}: {e}") from None
            if not all(math.isfinite(v) and v > 0 for v in bar.values()):
                raise ValueError(f"{path}:{line}: prices and volume must be finite and positive")
            bars.append((ts, r["symbol"], bar))
    bars.sort(key=lambda b: (b[0], b[1]))
    if any(a[:2] == b[:2] for a, b in zip(bars, bars[1:])):
        raise ValueError(f"{path}: duplicate (timestamp, symbol) row")
    return bars


def fmt(v):
    return "" if math.isnan(v) else repr(float(v))


def main(argv):
    if len(argv) != 3:
        raise ValueError("usage: live/features.py PRICES OUT")
    bars = read_bars(argv[1])
    engines = {}  # symbol -> LiveFeatures
    with open(argv[2], "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "symbol", *COLUMNS])
        for ts, sym, bar in bars:
            feats = engines.setdefault(sym, LiveFeatures()).update(bar)
            w.writerow([ts, sym, *(fmt(feats[c]) for c in COLUMNS)])


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError) as e:
        print(f"live/features: {e}", file=sys.stderr)
        sys.exit(2)
