"""A model as an analyst writes it: their own module, with BatchNorm, normalising its input itself."""
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.3, 0.3, 0.3]).view(1, 3, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.head(self.body(x - self.mean))


def build(num_classes: int) -> nn.Module:
    return Net(num_classes)


def broken(num_classes: int) -> nn.Module:
    raise RuntimeError("no GPU in this test")


def no_layers(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Identity())


def five_outputs(num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(5))
