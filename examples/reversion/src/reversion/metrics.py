import pandas as pd


def daily_rank_ic(df: pd.DataFrame, pred_col="pred", label_col="fwd_ret"):
    """Mean / sd of per-date Spearman IC. (rank + pearson, no scipy on our boxes)"""
    r = df[["date"]].copy()
    r["p"] = df.groupby("date")[pred_col].rank()
    r["y"] = df.groupby("date")[label_col].rank()
    ic = r.groupby("date")[["p", "y"]].corr().xs("p", level=1)["y"]
    return float(ic.mean()), float(ic.std())
