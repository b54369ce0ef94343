"""numpy-only copy of features.py for the live box (no pandas there).

Rolling stds use ddof=1 to match pandas.
"""
import numpy as np


def _rolling(x, n, fn):
    out = np.full(len(x), np.nan)
    for i in range(n - 1, len(x)):
        out[i] = fn(x[i - n + 1:i + 1])
    return out


def _rmean(x, n):
    return _rolling(x, n, np.mean)


def _rstd(x, n):
    return _rolling(x, n, lambda w: np.std(w, ddof=1))


def _lagdiff(x, lag):
    out = np.full(len(x), np.nan)
    out[lag:] = x[lag:] - x[:-lag]
    return out


def symbol_features(open_, high, low, close, volume):
    """Arrays for one symbol, sorted by date ascending -> dict name -> array."""
    logc = np.log(close)
    f = {}
    for lag in (1, 2, 5, 10):
        f[f"ret_{lag}d"] = _lagdiff(logc, lag)
    for n in (5, 20):
        f[f"zma_{n}"] = (close - _rmean(close, n)) / _rstd(close, n)
    f["vol_ratio_5_20"] = np.log(_rmean(volume, 5) / _rmean(volume, 20))
    f["hl_range"] = (high - low) / close
    f["co_ret"] = np.log(close / open_)
    f["rvol_20"] = _rstd(f["ret_1d"], 20)
    return f

MIN_HISTORY = 21  # rvol_20 needs 20 one-day returns
