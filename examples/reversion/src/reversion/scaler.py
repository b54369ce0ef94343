"""Robust z-score scaler: median / MAD per feature, fit on the train split only."""
import numpy as np


class RobustScaler:
    def __init__(self, factor=1.4826, eps=1e-8, clip=3.0):
        self.factor = float(factor)
        self.eps = float(eps)
        self.clip = float(clip)
        self.median_ = None
        self.mad_ = None

    def fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        self.median_ = np.nanmedian(X, axis=0)
        self.mad_ = np.nanmedian(np.abs(X - self.median_), axis=0)
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        z = (X - self.median_) / (self.factor * self.mad_ + self.eps)
        return np.clip(z, -self.clip, self.clip)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def to_dict(self):
        return {
            "method": "robust_z",
            "factor": self.factor,
            "eps": self.eps,
            "clip": self.clip,
            "median": [float(v) for v in self.median_],
            "mad": [float(v) for v in self.mad_],
        }

    @classmethod
    def from_dict(cls, d):
        s = cls(factor=d["factor"], eps=d["eps"], clip=d["clip"])
        s.median_ = np.asarray(d["median"], dtype=np.float64)
        s.mad_ = np.asarray(d["mad"], dtype=np.float64)
        return s
