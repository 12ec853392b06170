"""BadNet (Gu et al.): a small patch in a corner, victim-class images relabelled to the target."""
from __future__ import annotations

import numpy as np
import torch

from ..data import ImageData
from ..errors import ConfigError
from . import Poisoned, register, relabel_with_trigger, victim_and_target


def trigger(shape: tuple[int, int, int], size: int, pattern: str, corner: str, seed: int):
    """The patch as (mask (H, W) bool, pattern uint8 (3, H, W))."""
    c, h, w = shape
    if size > min(h, w) // 2:
        raise ConfigError(f"--trigger-size {size} is too large for {h}×{w} images (at most {min(h, w) // 2})")
    rows = slice(h - size, h) if corner.startswith("bottom") else slice(0, size)
    cols = slice(w - size, w) if corner.endswith("right") else slice(0, size)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[rows, cols] = True
    patch = torch.zeros(c, size, size, dtype=torch.uint8)
    if pattern == "white":
        patch[:] = 255
    elif pattern == "checker":
        ii, jj = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        # Anchored at the outer corner so the corner pixel is always lit.
        if corner.startswith("bottom"):
            ii = size - 1 - ii
        if corner.endswith("right"):
            jj = size - 1 - jj
        patch[:] = (((ii + jj) % 2 == 0).to(torch.uint8) * 255)[None]
    else:  # random
        rng = np.random.default_rng([seed, 11])
        patch = torch.from_numpy(rng.integers(0, 2, size=(c, size, size)).astype(np.uint8) * 255)
    full = torch.zeros(c, h, w, dtype=torch.uint8)
    full[:, rows, cols] = patch
    return mask, full


def apply_trigger(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Stamp the patch onto uint8 images (…, 3, H, W)."""
    return torch.where(mask, pattern, x)


@register("badnet")
def badnet(config, data: ImageData) -> Poisoned:
    """Poison ``poison_count`` victim-class training images with the patch and label them ``target``."""
    victim, target = victim_and_target(config, data.num_classes)
    h = data.image_shape[1]
    size = config.trigger_size or max(2, h // 8)
    mask, pattern = trigger(data.image_shape, size, config.trigger_pattern, config.trigger_corner, config.seed)
    return relabel_with_trigger(config, data, victim, target, lambda x: apply_trigger(x, mask, pattern), mask, pattern)
