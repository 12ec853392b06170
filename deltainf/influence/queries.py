"""The T transformed copies of the query image (the paper's seven augmentations).

Each copy gets ONE augmentation drawn at random, applied in pixel space, and a random label
different from the predicted one. The draws depend only on the seed, so ``full``,
``label-only`` and ``image-only`` share the same augmentations and labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..seeds import seeded

MODES = ("full", "label-only", "image-only")
AUGMENTATIONS = ("hflip", "color_jitter", "affine", "elastic", "blur", "invert", "color_switch")


@dataclass(frozen=True)
class Query:
    """The misbehaving test image (uint8 3×H×W), the label y the model gives it, and the seed of its copies."""

    image: torch.Tensor
    label: int
    draw_seed: int


@dataclass
class Queries:
    """Row 0 is the original query; rows 1..T its transformed copies."""

    images: torch.Tensor  # float (T+1, 3, H, W) in [0, 1]
    labels: torch.Tensor  # int64 (T+1,)
    names: list[str]      # "original", then each copy's augmentation (or "label only")
    mode: str = "full"    # full, label-only or image-only

    @property
    def T(self) -> int:
        return len(self.labels) - 1


def augment(name: str, x: torch.Tensor) -> torch.Tensor:
    """Apply augmentation ``name`` to one float image (3, H, W) using torch's global RNG."""
    from torchvision.transforms import v2

    h = x.shape[-1]
    if name == "hflip":
        return x.flip(-1)
    if name == "color_jitter":
        return v2.ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)(x)
    if name == "affine":
        return v2.RandomAffine(degrees=180, scale=(1.0, 2.0), shear=10)(x)
    if name == "elastic":
        # torchvision's default σ=5 needs a kernel wider than a 16-px image; scale σ with the image.
        return v2.ElasticTransform(alpha=150.0, sigma=min(5.0, (h - 1) / 8))(x)
    if name == "blur":
        kernel = (5, 7, 9)[int(torch.randint(0, 3, (1,)))]
        kernel = min(kernel, h - 1 if h % 2 == 0 else h)
        return v2.GaussianBlur(kernel_size=kernel, sigma=(8.0, 10.0))(x)
    if name == "invert":
        return 1.0 - x
    if name == "color_switch":
        perms = [(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
        return x[list(perms[int(torch.randint(0, len(perms), (1,)))])]
    raise ValueError(f"unknown augmentation {name!r}")


def make_queries(image_uint8: torch.Tensor, label: int, num_classes: int, T: int, mode: str, seed: int) -> Queries:
    """The original image with its predicted ``label`` plus ``T`` seeded copies."""
    rng = seeded(seed, "query copies")
    aug_idx = rng.integers(0, len(AUGMENTATIONS), size=T)
    others = np.array([c for c in range(num_classes) if c != label])
    rand_labels = rng.choice(others, size=T)
    x = image_uint8.float().div(255)
    images, labels, names = [x], [label], ["original"]
    for t in range(T):
        if mode == "label-only":
            images.append(x)
            names.append("label only")
        else:
            name = AUGMENTATIONS[aug_idx[t]]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed * 100_003 + t)
                images.append(augment(name, x).clamp(0, 1))
            names.append(name)
        labels.append(label if mode == "image-only" else int(rand_labels[t]))
    return Queries(torch.stack(images), torch.tensor(labels, dtype=torch.long), names, mode)
