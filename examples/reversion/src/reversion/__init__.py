"""reversion: cross-sectional short-horizon mean reversion on daily bars."""
# NB: keep this import-light, live scoring runs without pandas/torch.
__version__ = "0.4.0"
