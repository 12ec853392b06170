"""Label-consistent (Turner, Tsipras & Madry 2019, "Label-consistent backdoor attacks"): clean label. Target-class
training images are first made hard to classify — an untargeted PGD perturbation (‖δ‖∞ ≤ ε) on the attacker's clean
surrogate pushes them away from their own class — and then given a patch; they keep their label. A model that can no
longer lean on their content learns the patch as the target; at test time the patch on another class's image sends
it there.

As in the paper: a 3×3 checkerboard in each of the four corners (it survives flips and crops), ε = 16/255, or the data
source's own budget (Witches' Brew's: 40/255 on the built-in digits), PGD with ``lc_steps`` steps of ε/4. The
perturbed images are cached, so every run sees bit-identical poisons.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ImageData
from ..models.training import to_float
from ..options import option
from ..store import array_fingerprint, content_key
from . import (Attack, AttackContext, Poisoned, clean_label_picture, register, seeded_poisons, trigger_on_target,
               victim_and_target)
from .badnet import apply_trigger, on_grey
from .witches_brew import dataset_eps, grey_levels_within

ALGORITHM_VERSION = 1  # bump when the perturbation changes (cached poisons are keyed by it)


@dataclass(frozen=True)
class LabelConsistentSettings:
    lc_eps: float | None = option(None, "label-consistent: L∞ budget of the adversarial perturbation, in [0, 1] pixel "
                                        "units (default: 16/255, or the data source's own: 40/255 on the built-in "
                                        "digits)", kind="probability")
    lc_steps: int = option(20, "label-consistent: PGD steps on the attacker's surrogate", low=0)
    lc_patch: int = option(3, "label-consistent: side of the checkerboard patch in each corner, in pixels", low=1)


def corner_patches(shape: tuple[int, int, int], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (H, W) bool, pattern uint8 (C, H, W)): a size×size black-and-white checkerboard in every corner."""
    c, h, w = shape
    size = min(size, h // 2, w // 2)
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    mask = ((ii < size) | (ii >= h - size)) & ((jj < size) | (jj >= w - size))
    pattern = (((ii + jj) % 2 == 0) & mask).to(torch.uint8).mul(255).expand(c, h, w).clone()
    return mask, pattern


def hardened(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int) -> torch.Tensor:
    """Untargeted PGD on uint8 images (N, C, H, W) with labels ``y``: |δ| ≤ ε, steps of ε/4, rounded to grey levels."""
    device = next(model.parameters()).device
    model.eval()
    x0 = to_float(x, device)
    delta = torch.zeros_like(x0, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x0 + delta), y.to(device))
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta += eps / 4 * grad.sign()
            delta.clamp_(-eps, eps)
            delta.copy_((x0 + delta).clamp(0, 1) - x0)
    return grey_levels_within(x0 + delta, x, eps)


@register("label_consistent", label="Label-consistent (clean label)", order=7, settings=LabelConsistentSettings)
class LabelConsistent(Attack):
    """Label-consistent: clean label. Target-class images made hard by an adversarial perturbation, then patched in
    the corners, labels kept; the patch on another class's image sends it to the target."""

    def poison(self, data: ImageData, ctx: AttackContext, s: LabelConsistentSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        eps = s.lc_eps if s.lc_eps is not None else dataset_eps(data.name)
        mask, pattern = corner_patches(data.image_shape, s.lc_patch)
        poison_idx = seeded_poisons(ctx, data, target, "target")

        def make():
            model = ctx.surrogates.model(data)
            for p in model.parameters():
                p.requires_grad_(False)
            hard = hardened(model, data.x_train[poison_idx], data.y_train[poison_idx], eps, s.lc_steps)
            return {"hard": hard.numpy()}

        key = content_key("label-consistent", ALGORITHM_VERSION, array_fingerprint(data.x_train, data.y_train),
                          ctx.seed, target, array_fingerprint(poison_idx.numpy()), eps, s.lc_steps,
                          ctx.surrogates.recipe(data).key())
        hard = torch.from_numpy(np.asarray(ctx.surrogates.cached(key, make)["hard"])) if len(poison_idx) else None
        return trigger_on_target(ctx, data, victim, target, lambda _chosen: apply_trigger(hard, mask, pattern),
                                 lambda x: apply_trigger(x, mask, pattern), mask, pattern)

    def preview(self, sample, settings: LabelConsistentSettings, seed: int, dataset: str):
        mask, pattern = corner_patches(tuple(sample.shape), settings.lc_patch)
        side = int(mask[0].sum()) // 2  # the top row crosses two patches
        return ([on_grey(sample, mask, pattern), apply_trigger(sample, mask, pattern)],
                [f"{side}×{side} checkerboards in the corners", "on an image (poisons: perturbed first)"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        patches = on_grey(clean.x_train[0], poisoned.trigger_mask, poisoned.trigger_pattern)
        return clean_label_picture(clean, poisoned, patches, "the corner patches")
