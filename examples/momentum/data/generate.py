"""Seeded price generator for the momentum example, with a real (weak) signal embedded.

Each symbol's log return follows
    r_t = PHI * mean(r_{t-5..t-1}) + sigma_t * eps_t,   eps_t ~ N(0, 1)
with sigma_t a slow two-state volatility regime. PHI > 0 makes recent 5-bar momentum predict the next
bars a little: enough for a small model to learn, far from a free lunch. Volume is log-normal around a
level that rises with |r_t| (busy bars move more), highs and lows straddle open/close.

Pure Python (random.Random with a fixed seed): the same bytes on every machine, no numpy needed.
Run:  python3 examples/momentum/data/generate.py  (writes prices.csv beside this file)
"""

import math
import os
import random

SEED = 20260126
SYMBOLS = ["AAA", "BBB", "CCC"]
BARS = 2400
PHI = 0.35
START = 1_704_067_200  # 2024-01-01T00:00:00Z, one bar per hour
BAR_SECONDS = 3600


def generate(seed=SEED, symbols=SYMBOLS, bars=BARS):
    rng = random.Random(seed)
    rows = []
    for sym in symbols:
        price = 100.0 * (1.0 + 0.5 * rng.random())
        hist = [0.0] * 5
        high_vol = False
        for t in range(bars):
            if rng.random() < 0.01:
                high_vol = not high_vol
            sigma = 0.008 if high_vol else 0.004
            r = PHI * sum(hist[-5:]) / 5.0 + sigma * rng.gauss(0.0, 1.0)
            hist.append(r)
            open_ = price
            close = price * math.exp(r)
            wick = abs(rng.gauss(0.0, sigma * 0.5))
            high = max(open_, close) * math.exp(wick)
            low = min(open_, close) * math.exp(-abs(rng.gauss(0.0, sigma * 0.5)))
            volume = math.exp(rng.gauss(10.0 + 40.0 * abs(r), 0.3))
            rows.append((START + t * BAR_SECONDS, sym, open_, high, low, close, volume))
            price = close
    rows.sort(key=lambda row: (row[0], row[1]))
    return rows


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prices.csv")
    with open(out, "w", newline="\n") as f:
        f.write("timestamp,symbol,open,high,low,close,volume\n")
        for ts, sym, o, h, l, c, v in generate():
            f.write(f"{ts},{sym},{o:.6f},{h:.6f},{l:.6f},{c:.6f},{v:.2f}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
