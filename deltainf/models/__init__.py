"""Models: the architectures (one file each, registered in :data:`ARCHITECTURES`), training and features.

Every model takes pixel-space images in [0, 1] and normalises inside, so the query transformations
and triggers never need to know the data statistics. Normalisation statistics are buffers and travel
with the weights.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import Registry

#: Architectures: ``build(num_classes) -> nn.Module`` (the network without normalisation), with the
#: engine's training recipe for it: ``epochs``, ``lr``, ``optimizer`` ("adam" or "sgd"), ``augment``.
ARCHITECTURES = Registry("model")
register = ARCHITECTURES.register


class Normalize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())

    def forward(self, x):
        return (x - self.mean) / self.std


def build_model(name: str, num_classes: int, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
    """``nn.Sequential(Normalize, network)`` for architecture ``name``."""
    return nn.Sequential(Normalize(mean, std), ARCHITECTURES[name](num_classes))


def channel_stats(x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = x_uint8.float().div(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


ARCHITECTURES.discover(__name__, __path__)
