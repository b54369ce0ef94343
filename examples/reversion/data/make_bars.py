"""Generate synthetic daily OHLCV bars for a small universe.

Idiosyncratic returns have a weak pull-back towards zero of a decaying
sum of recent idio moves, so there is something for the model to find.
Not meant to look like any real market beyond the basics.

    python data/make_bars.py --out data/bars.csv
"""
import argparse

import numpy as np
import pandas as pd

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH"]


def make_bars(seed=42, start="2021-01-04", end="2023-12-29"):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, end)
    n_days, n_sym = len(dates), len(SYMBOLS)

    mkt = rng.normal(0.0003, 0.009, n_days)
    beta = rng.uniform(0.7, 1.3, n_sym)
    idio_vol = rng.uniform(0.010, 0.022, n_sym)
    phi = 0.12   # strength of reversion
    decay = 0.6

    ret = np.zeros((n_days, n_sym))
    dev = np.zeros(n_sym)
    for t in range(n_days):
        idio = -phi * dev + idio_vol * rng.standard_t(5, n_sym) / np.sqrt(5 / 3)
        dev = decay * dev + idio
        ret[t] = beta * mkt[t] + idio

    close = 50.0 * rng.uniform(0.5, 3.0, n_sym) * np.exp(np.cumsum(ret, axis=0))

    # open: overnight part of the move, intraday rest
    gap = rng.uniform(0.2, 0.5, (n_days, n_sym))
    prev_close = np.vstack([close[0] / np.exp(ret[0]), close[:-1]])
    open_ = prev_close * np.exp(gap * ret + rng.normal(0, 0.002, (n_days, n_sym)))
    hi_ext = np.abs(rng.normal(0, 0.006, (n_days, n_sym)))
    lo_ext = np.abs(rng.normal(0, 0.006, (n_days, n_sym)))
    high = np.maximum(open_, close) * np.exp(hi_ext)
    low = np.minimum(open_, close) * np.exp(-lo_ext)

    # volume: persistent log-level, spikes on big moves
    base_vol = rng.uniform(2e5, 3e6, n_sym)
    lv = np.zeros((n_days, n_sym))
    for t in range(1, n_days):
        lv[t] = 0.8 * lv[t - 1] + rng.normal(0, 0.2, n_sym)
    volume = base_vol * np.exp(lv + 15 * np.abs(ret - beta * mkt[:, None]))

    frames = []
    for j, sym in enumerate(SYMBOLS):
        frames.append(pd.DataFrame({
            "date": dates.strftime("%Y-%m-%d"),
            "symbol": sym,
            "open": open_[:, j].round(4),
            "high": high[:, j].round(4),
            "low": low[:, j].round(4),
            "close": close[:, j].round(4),
            "volume": volume[:, j].round().astype(np.int64),
        }))
    return pd.concat(frames).sort_values(["date", "symbol"]).reset_index(drop=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="data/bars.csv")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    bars = make_bars(seed=args.seed)
    bars.to_csv(args.out, index=False)
    print(f"wrote {len(bars)} rows, {bars.symbol.nunique()} symbols, "
          f"{bars.date.min()} .. {bars.date.max()} -> {args.out}")


if __name__ == "__main__":
    main()
