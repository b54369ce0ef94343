"""Labels of the momentum pipeline: the direction of the forward log return over HORIZON bars.

A label at bar t looks ahead exactly HORIZON bars (t+1 .. t+HORIZON) and no further.
"""

HORIZON = 5

LONG_THRESHOLD = 0.006
SHORT_THRESHOLD = -0.006

# Class thresholds on the forward return: long above `long`, short below `short`, flat between.
THRESHOLDS = {"long": LONG_THRESHOLD, "short": SHORT_THRESHOLD}

# Class indices of the `direction` head.
SHORT, FLAT, LONG = 0, 1, 2


def forward_return(close, horizon=HORIZON):
    """log(close[t + horizon] / close[t]); NaN where the future is not known."""
    import numpy as np

    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape[0], np.nan)
    out[:-horizon] = np.log(close[horizon:]) - np.log(close[:-horizon])
    return out


def direction_label(fwd):
    import numpy as np

    lab = np.full(fwd.shape[0], FLAT, dtype=np.int64)
    lab[fwd > LONG_THRESHOLD] = LONG
    lab[fwd < SHORT_THRESHOLD] = SHORT
    return lab
