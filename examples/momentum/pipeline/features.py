"""Feature definitions of the momentum pipeline, and the training-time (vectorised) feature builder.

FEATURE_COLS is the contract: the model's input columns, in order. plumbline reads it from this file
with a parser (it never imports the module), so it must stay a literal.
"""

FEATURE_COLS = [
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

# Every feature is computed in float64 and handed to the model as float32.
FEATURE_DTYPES = "float32"

# Warm-up rows (not enough history) have NaN features. After robust scaling NaN becomes 0.0, i.e. the
# training median: the model sees "typical" for a feature it cannot know yet.
NAN_POLICY = "zero-fill"

WARMUP_BARS = 50


def build_features(frame):
    """Vectorised over the whole history of one symbol. `frame` has numpy arrays open, high, low,
    close, volume (time-ordered). Returns an (n, len(FEATURE_COLS)) float64 array; rows without enough
    history hold NaN."""
    import numpy as np

    close = np.asarray(frame["close"], dtype=np.float64)
    high = np.asarray(frame["high"], dtype=np.float64)
    low = np.asarray(frame["low"], dtype=np.float64)
    volume = np.asarray(frame["volume"], dtype=np.float64)
    n = close.shape[0]
    logc = np.log(close)
    r1 = np.full(n, np.nan)
    r1[1:] = np.diff(logc)

    def lag_ret(k):
        out = np.full(n, np.nan)
        out[k:] = logc[k:] - logc[:-k]
        return out

    def rolling(x, w, fn):
        out = np.full(n, np.nan)
        if n >= w:
            windows = np.lib.stride_tricks.sliding_window_view(x, w)
            out[w - 1:] = fn(windows, axis=1)
        return out

    vol_10 = rolling(r1, 10, np.std)
    vol_20 = rolling(r1, 20, np.std)
    gains = np.where(r1 > 0, r1, 0.0)
    losses = np.where(r1 < 0, -r1, 0.0)
    avg_gain = rolling(gains, 14, np.mean)
    avg_loss = rolling(losses, 14, np.mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = np.where(avg_gain + avg_loss > 0, avg_gain / (avg_gain + avg_loss), 0.5)
    rsi[np.isnan(avg_gain)] = np.nan
    logv = np.log(volume)
    vz = (logv - rolling(logv, 20, np.mean)) / rolling(logv, 20, np.std)
    ma_10 = rolling(close, 10, np.mean)
    ma_50 = rolling(close, 50, np.mean)
    range_10 = (rolling(high, 10, np.max) - rolling(low, 10, np.min)) / close
    ret_5 = lag_ret(5)
    ret_20 = lag_ret(20)
    cols = {
        "ret_1": r1,
        "ret_5": ret_5,
        "ret_10": lag_ret(10),
        "ret_20": ret_20,
        "vol_10": vol_10,
        "vol_20": vol_20,
        "vol_ratio": vol_10 / vol_20,
        "rsi_14": rsi,
        "vz_20": vz,
        "ma_gap_10": close / ma_10 - 1.0,
        "ma_gap_50": close / ma_50 - 1.0,
        "range_10": range_10,
        "hl_ratio": (high - low) / close,
        "mom_5_20": ret_5 - ret_20 / 4.0,
    }
    return np.stack([cols[c] for c in FEATURE_COLS], axis=1)
