"""Adaptive-Blend (Qi et al., ICLR 2023, "Revisiting the assumption of latent separability for backdoor defenses"):
a blended trigger applied in parts, made to keep the poisons close to clean images in the model's features.

The pattern (seeded, as the blended attack draws it) is cut into k×k pieces. Each poison (a victim-class image,
relabelled to the target) carries a random half of the pieces, blended at α_train; as many *cover* images per poison
(any class, labels kept) carry another random half — so no single piece, and no partial trigger, means the target.
At test time the whole pattern is blended at α_test. The paper: 4×4 pieces, α 0.15 on the poisons and 0.2 at test
time, one cover per poison; or the data source's own α (``adaptive_alpha``: the built-in digits 0.25 / 0.3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageData
from ..options import option
from ..seeds import seeded
from . import (Attack, AttackContext, Poisoned, add_covers, register, relabel_with_trigger, relabelled_picture,
               source_default, victim_and_target)
from .blended import blend, pattern_of

PAPER_ALPHA = (0.15, 0.2)  # on the poisons and covers, at test time


@dataclass(frozen=True)
class AdaptiveBlendSettings:
    adaptive_pieces: int = option(4, "Adaptive-Blend: the pattern is cut into k×k pieces", low=1)
    adaptive_alpha: float | None = option(None, "Adaptive-Blend: α on the poisons and covers; the test images get "
                                                "α + 0.05 (default: 0.15, or the data source's own: 0.25 on the "
                                                "built-in digits)", kind="probability")
    adaptive_cover_ratio: int = option(1, "Adaptive-Blend: cover images per poison, carrying random pieces of the "
                                          "pattern and keeping their labels", low=0)


def alphas(settings: AdaptiveBlendSettings, dataset: str) -> tuple[float, float]:
    """(α on the poisons and covers, α at test time)."""
    train = float(source_default(settings.adaptive_alpha, dataset, "adaptive_alpha", PAPER_ALPHA[0]))
    return train, min(1.0, train + PAPER_ALPHA[1] - PAPER_ALPHA[0])


def piece_masks(shape: tuple[int, int], k: int, count: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` masks (count, 1, H, W), each covering a random half of the k×k pieces (at least one)."""
    h, w = shape
    rows = np.minimum(np.arange(h) * k // h, k - 1)
    cols = np.minimum(np.arange(w) * k // w, k - 1)
    piece = rows[:, None] * k + cols[None, :]
    chosen = np.stack([rng.permutation(k * k) < max(1, (k * k) // 2) for _ in range(count)]) if count else \
        np.zeros((0, k * k), bool)
    return torch.from_numpy(chosen[:, piece][:, None])


def blend_in_pieces(x: torch.Tensor, pattern: torch.Tensor, alpha: float, k: int,
                    rng: np.random.Generator) -> torch.Tensor:
    """Each uint8 image (N, C, H, W) with the pattern blended at α over its own random half of the pieces."""
    masks = piece_masks(tuple(x.shape[-2:]), k, len(x), rng)
    return torch.where(masks, blend(x, pattern, alpha), x)


@register("adaptive_blend", label="Adaptive-Blend", order=6, settings=AdaptiveBlendSettings)
class AdaptiveBlend(Attack):
    """Adaptive-Blend: a blended pattern applied in random halves of its pieces to the poisons (relabelled) and to
    cover images (labels kept); the whole pattern at test time."""

    def poison(self, data: ImageData, ctx: AttackContext, settings: AdaptiveBlendSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        pattern = pattern_of(data.image_shape, "noise", ctx.seed)
        train, test = alphas(settings, data.name)
        k = min(settings.adaptive_pieces, *data.image_shape[1:])
        rng = seeded(ctx.seed, "adaptive pieces")
        h, w = data.image_shape[1:]
        poisoned = relabel_with_trigger(ctx, data, victim, target,
                                        lambda x: blend_in_pieces(x, pattern, train, k, rng),
                                        torch.ones(h, w, dtype=torch.bool), pattern,
                                        test_stamp=lambda x: blend(x, pattern, test))
        add_covers(poisoned, ctx, settings.adaptive_cover_ratio, "--adaptive-cover-ratio",
                   lambda x, cover_rng: blend_in_pieces(x, pattern, train, k, cover_rng))
        return poisoned

    def preview(self, sample, settings: AdaptiveBlendSettings, seed: int, dataset: str):
        pattern = pattern_of(tuple(sample.shape), "noise", seed)
        train, test = alphas(settings, dataset)
        k = min(settings.adaptive_pieces, *sample.shape[1:])
        half = blend_in_pieces(sample[None], pattern, train, k, seeded(seed, "adaptive pieces"))[0]
        return ([half, blend(sample, pattern, test)],
                [f"half its {k}×{k} pieces at α = {train:g} (a poison)", f"whole at α = {test:g} (test time)"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        return relabelled_picture(clean, poisoned, poisoned.trigger_pattern, "the pattern, cut into pieces")
