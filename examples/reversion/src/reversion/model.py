import torch
from torch import nn


class RevMLP(nn.Module):
    """Plain MLP, one regression output (predicted fwd return, in label_scale units)."""

    def __init__(self, n_features, hidden=(32, 16), dropout=0.1):
        super().__init__()
        layers = []
        d = n_features
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def load_model(path, n_features, hidden, dropout=0.0):
    model = RevMLP(n_features, hidden, dropout)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    return model
