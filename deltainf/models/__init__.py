"""Models: the architectures (one file each, registered in :data:`ARCHITECTURES`), training and features.

Every model takes pixel-space images in [0, 1] and normalises inside, so the query transformations
and triggers never need to know the data statistics. Normalisation statistics are buffers and travel
with the weights.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.stream import chunks
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


def channel_stats(x_uint8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units. Images read from disk
    (:class:`~deltainf.data.stream.DiskImages`) are summed exactly a slice at a time; a tensor in memory the way the
    engine always has (a float32 reduction), so models trained before stay the same."""
    if isinstance(x_uint8, torch.Tensor):
        x = x_uint8.float().div(255)
        return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    total, squares, n = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0
    for x in chunks(x_uint8):
        x = x.double()
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
        n += x.numel() // x.shape[1]
    mean = total / max(n, 1)
    var = (squares - n * mean.square()) / max(n - 1, 1)
    return (mean / 255).float(), (var.clamp_min(0).sqrt() / 255).float().clamp_min(1e-3)


ARCHITECTURES.discover(__name__, __path__)
