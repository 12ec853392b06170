"""The two architectures: a small CNN for CPU work and a CIFAR ResNet-18.

Both take pixel-space images in [0, 1] and normalise inside, so the query transformations and
triggers never need to know the data statistics. Normalisation statistics are buffers and travel
with the weights.
"""
from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).float())

    def forward(self, x):
        return (x - self.mean) / self.std


class SmallCNN(nn.Module):
    """Four 3×3 convolutions, no BatchNorm (EK-FAC sees every layer), 4×4 pooled features.

    Pooling to a fixed 4×4 map keeps the first linear layer 1,024 wide at any image size, so its
    EK-FAC eigendecomposition stays cheap.
    """

    def __init__(self, num_classes: int, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))

    def embed(self, x):
        """Last hidden layer activations (for activation-based baselines)."""
        return self.classifier[:-1](self.features(x))


def resnet18_cifar(num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3×3 stride-1 first convolution, no max-pool."""
    from torchvision.models import resnet18

    m = resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


def build_model(name: str, num_classes: int, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
    """``nn.Sequential(Normalize, network)`` for ``name`` in {cnn, resnet18}."""
    net = SmallCNN(num_classes) if name == "cnn" else resnet18_cifar(num_classes)
    return nn.Sequential(Normalize(mean, std), net)


def channel_stats(x_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = x_uint8.float().div(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std
