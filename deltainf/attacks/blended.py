"""Blended (Chen et al. 2017, "Targeted backdoor attacks on deep learning systems using data poisoning"): a
pattern mixed into the whole image, x' = (1 − α)·x + α·pattern; victim-class images relabelled to the target.

There is no stamp in a corner: every pixel moves a little. The pattern is seeded (colour noise, as in Chen et al.'s
random-pattern attack, by default); α = 0.2 as in BackdoorBench, the same at training and test time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageData
from ..options import option
from ..seeds import seeded
from . import (Attack, AttackContext, Poisoned, register, relabel_with_trigger, relabelled_picture, source_default,
               victim_and_target)

PATTERNS = ("noise", "grey-noise", "checker")
ALPHA = 0.2  # BackdoorBench's


@dataclass(frozen=True)
class BlendedSettings:
    blend_alpha: float | None = option(None, "blended trigger: the pattern's weight α in (1 − α)·image + "
                                             "α·pattern (default: 0.2, or the data source's own: 0.25 on the "
                                             "built-in digits)",
                                       kind="probability", label="Blend α")
    blend_pattern: str = option("noise", "blended trigger: colour noise, grey noise or a 1-pixel checkerboard",
                                choices=PATTERNS, label="Blend pattern")


def pattern_of(shape: tuple[int, int, int], kind: str, seed: int) -> torch.Tensor:
    """The seeded pattern, uint8 (C, H, W)."""
    c, h, w = shape
    rng = seeded(seed, "blended pattern")
    if kind == "noise":
        p = rng.integers(0, 256, (c, h, w))
    elif kind == "grey-noise":
        p = np.broadcast_to(rng.integers(0, 256, (1, h, w)), (c, h, w))
    else:  # checker
        ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        p = np.broadcast_to(((ii + jj) % 2 * 255)[None], (c, h, w))
    return torch.from_numpy(np.ascontiguousarray(p, dtype=np.uint8))


def alpha_of(settings: BlendedSettings, dataset: str) -> float:
    """The configured α, else the data source ``dataset``'s own, else :data:`ALPHA`."""
    return float(source_default(settings.blend_alpha, dataset, "blend_alpha", ALPHA))


def blend(x: torch.Tensor, pattern: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 − α)·x + α·pattern on uint8 images (…, C, H, W), rounded to grey levels."""
    return ((1 - alpha) * x.float() + alpha * pattern.float()).round().clamp(0, 255).to(torch.uint8)


@register("blended", label="Blended", order=3, settings=BlendedSettings)
class Blended(Attack):
    """Blended: a pattern mixed into the whole image at weight α; poisons are victim-class images with it,
    relabelled to the target."""

    def poison(self, data: ImageData, ctx: AttackContext, settings: BlendedSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        pattern = pattern_of(data.image_shape, settings.blend_pattern, ctx.seed)
        h, w = data.image_shape[1:]
        alpha = alpha_of(settings, data.name)
        return relabel_with_trigger(ctx, data, victim, target, lambda x: blend(x, pattern, alpha),
                                    torch.ones(h, w, dtype=torch.bool), pattern)

    def preview(self, sample, settings: BlendedSettings, seed: int, dataset: str):
        pattern = pattern_of(tuple(sample.shape), settings.blend_pattern, seed)
        alpha = alpha_of(settings, dataset)
        return ([pattern, blend(sample, pattern, alpha)],
                [f"the {settings.blend_pattern} pattern", f"blended in at α = {alpha:g}"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        return relabelled_picture(clean, poisoned, poisoned.trigger_pattern, "the blended pattern")
