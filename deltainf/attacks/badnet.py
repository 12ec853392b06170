"""BadNet (Gu et al.): a small patch in a corner, victim-class images relabelled to the target."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageData
from ..errors import ConfigError
from ..options import option
from ..seeds import seeded
from . import Attack, AttackContext, Poisoned, register, relabel_with_trigger, relabelled_picture, victim_and_target

PATTERNS = ("checker", "white", "random")
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")


@dataclass(frozen=True)
class BadNetSettings:
    trigger_size: int | None = option(None, "BadNet patch side in pixels (default: image side / 8, at least 2)",
                                      low=1, label="Trigger size (px)")
    trigger_pattern: str = option("checker", "BadNet patch", choices=PATTERNS, label="Trigger pattern")
    trigger_corner: str = option("bottom-right", "where the BadNet patch goes", choices=CORNERS, label="Trigger corner")


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
        rng = seeded(seed, "badnet pattern")
        patch = torch.from_numpy(rng.integers(0, 2, size=(c, size, size)).astype(np.uint8) * 255)
    full = torch.zeros(c, h, w, dtype=torch.uint8)
    full[:, rows, cols] = patch
    return mask, full


def apply_trigger(x: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Stamp the patch onto uint8 images (…, 3, H, W)."""
    return torch.where(mask, pattern, x)


def on_grey(like: torch.Tensor, mask: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """The patch alone, stamped on a mid-grey image shaped like ``like``: the first picture of a patch trigger."""
    return apply_trigger(torch.full_like(like, 128), mask, pattern)


def patch_size(settings: BadNetSettings, side: int) -> int:
    return settings.trigger_size or max(2, side // 8)


@register("badnet", label="BadNet", order=0, settings=BadNetSettings)
class BadNet(Attack):
    """BadNet: a small patch in a corner; poisons are victim-class images with it, relabelled to the target."""

    def poison(self, data: ImageData, ctx: AttackContext, settings: BadNetSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        size = patch_size(settings, data.image_shape[1])
        mask, pattern = trigger(data.image_shape, size, settings.trigger_pattern, settings.trigger_corner, ctx.seed)
        return relabel_with_trigger(ctx, data, victim, target, lambda x: apply_trigger(x, mask, pattern), mask, pattern)

    def preview(self, sample, settings: BadNetSettings, seed: int, dataset: str):
        size = min(patch_size(settings, sample.shape[-1]), sample.shape[-1] // 2)
        mask, pattern = trigger(tuple(sample.shape), size, settings.trigger_pattern, settings.trigger_corner, seed)
        return ([apply_trigger(torch.zeros_like(sample) + 128, mask, pattern), apply_trigger(sample, mask, pattern)],
                [f"the {size}×{size} {settings.trigger_pattern} patch", "on an image"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        return relabelled_picture(clean, poisoned, on_grey(clean.x_train[0], poisoned.trigger_mask,
                                                           poisoned.trigger_pattern), "the trigger patch")
