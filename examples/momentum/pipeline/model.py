"""Model constants of the momentum pipeline. Plain literals (no torch import): plumbline reads them with
a parser, the training script builds the network from them.
"""

# Bumped by every retrain that writes a new checkpoint.
MODEL_VERSION = 3

# Bumped whenever HEADS changes (names, order, kinds or sizes).
HEADS_VERSION = 2

# The output heads, in output order. Consumers look heads up by name, never by index.
HEADS = [
    {"name": "direction", "kind": "softmax", "size": 3},
    {"name": "magnitude", "kind": "regression", "size": 1},
]

HIDDEN = [32, 16]
ACTIVATION = "relu"
