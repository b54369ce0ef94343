"""Feature + label engineering on daily bars (pandas, training/research side).

The live box has no pandas: src/reversion/live_features.py re-implements the
same features in numpy. If you touch a definition here, change it there too
(scripts/check_parity.py compares the two).
"""
import numpy as np
import pandas as pd


def _per_symbol(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values("date")
    out = pd.DataFrame({"date": df["date"].values, "symbol": df["symbol"].values})
    logc = np.log(df["close"].to_numpy())
    c = pd.Series(logc)
    close = df["close"].reset_index(drop=True)
    vol = df["volume"].astype(float).reset_index(drop=True)

    for lag in (1, 2, 5, 10):
        out[f"ret_{lag}d"] = c - c.shift(lag)

    for n in (5, 20):
        ma = close.rolling(n).mean()
        sd = close.rolling(n).std()  # ddof=1
        out[f"zma_{n}"] = (close - ma) / sd

    out["vol_ratio_5_20"] = np.log(vol.rolling(5).mean() / vol.rolling(20).mean())
    out["hl_range"] = (df["high"].to_numpy() - df["low"].to_numpy()) / df["close"].to_numpy()
    out["co_ret"] = np.log(df["close"].to_numpy() / df["open"].to_numpy())
    out["rvol_20"] = out["ret_1d"].rolling(20).std()
    return out


def compute_features(bars: pd.DataFrame) -> pd.DataFrame:
    """One row per (date, symbol) with all known feature columns. Warm-up rows are NaN."""
    parts = [_per_symbol(g) for _, g in bars.groupby("symbol", sort=True)]
    feats = pd.concat(parts, ignore_index=True)
    return feats.sort_values(["date", "symbol"]).reset_index(drop=True)


def compute_label(bars: pd.DataFrame, horizon: int, demean: bool = True) -> pd.DataFrame:
    """Forward log return close(t) -> close(t+horizon), optionally demeaned per date."""
    bars = bars.sort_values(["symbol", "date"])
    logc = np.log(bars["close"])
    fwd = logc.groupby(bars["symbol"]).shift(-horizon) - logc
    lab = pd.DataFrame({"date": bars["date"].values, "symbol": bars["symbol"].values,
                        "fwd_ret": fwd.values})
    if demean:
        lab["fwd_ret"] = lab["fwd_ret"] - lab.groupby("date")["fwd_ret"].transform("mean")
    return lab.sort_values(["date", "symbol"]).reset_index(drop=True)


def build_dataset(bars: pd.DataFrame, feature_cols, horizon: int, demean: bool = True,
                  dropna_label: bool = True) -> pd.DataFrame:
    feats = compute_features(bars)
    missing = [c for c in feature_cols if c not in feats.columns]
    if missing:
        raise KeyError(f"unknown features in config: {missing}")
    lab = compute_label(bars, horizon, demean)
    ds = feats[["date", "symbol"] + list(feature_cols)].merge(lab, on=["date", "symbol"])
    ds = ds.dropna(subset=list(feature_cols))
    if dropna_label:
        ds = ds.dropna(subset=["fwd_ret"])
    return ds.reset_index(drop=True)


def split(ds: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    m = (ds["date"] >= str(start)) & (ds["date"] <= str(end))
    return ds.loc[m].reset_index(drop=True)
