"""The small CNN for CPU work."""
from __future__ import annotations

from torch import nn

from . import register


@register("cnn", label="small CNN (CPU-friendly)", order=0, epochs=12, lr=2e-3, optimizer="adam",
          augment=False)
class SmallCNN(nn.Module):
    """Four 3×3 convolutions, no BatchNorm (EK-FAC sees every layer), 4×4 pooled features.

    Pooling to a fixed 4×4 map keeps the first linear layer 1,024 wide at any image size, so its
    EK-FAC eigendecomposition stays cheap. Trained without augmentation, so poisons implant on small data.
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
