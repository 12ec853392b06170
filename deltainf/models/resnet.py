"""ResNet-18 with the CIFAR stem, for GPU work."""
from __future__ import annotations

from torch import nn

from . import register


@register("resnet18", label="ResNet-18 (GPU)", order=1, epochs=30, lr=0.05, optimizer="sgd", augment=True)
def resnet18_cifar(num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3×3 stride-1 first convolution, no max-pool.

    Trained with SGD and shift/flip augmentation.
    """
    from torchvision.models import resnet18

    m = resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m
