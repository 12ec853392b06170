"""Sleeper Agent (Souri et al., NeurIPS 2022): hidden-trigger clean-label backdoor by gradient matching.

Target-class training images keep their labels and get ε-bounded perturbations whose training gradient points the
way of the gradient of *triggered* images — victim-class images with a patch, labelled the target — on the
attacker's clean surrogate. The patch never appears in the training set; at test time it sends victim images to
the target. The brewing is Witches' Brew's (:func:`~deltainf.attacks.witches_brew.brew`) with a batch of triggered
images in place of one target image; the paper's retraining rounds during crafting and its selection of poisons by
gradient norm are left out (the poisons are a seeded draw). ε as Witches' Brew's (16/255, the digits' own 40/255).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageData
from ..options import option
from ..seeds import seeded
from ..store import array_fingerprint, content_key
from . import (Attack, AttackContext, Poisoned, clean_label_picture, register, seeded_poisons, trigger_on_target,
               victim_and_target)
from .badnet import apply_trigger, on_grey, trigger
from .witches_brew import STEP_SIZE, brew, dataset_eps

ALGORITHM_VERSION = 1  # bump when the brewing changes (cached poisons are keyed by it)
SOURCES_MATCHED = 64   # triggered victim-class training images whose mean gradient is matched


@dataclass(frozen=True)
class SleeperSettings:
    sleeper_eps: float | None = option(None, "Sleeper Agent: L∞ budget of each perturbation, in [0, 1] pixel units "
                                             "(default: 16/255, or the data source's own: 40/255 on the built-in "
                                             "digits)", kind="probability")
    sleeper_steps: int = option(150, "Sleeper Agent: signed-Adam steps of the brewing (the paper: 250)", low=1)
    sleeper_patch: int | None = option(None, "Sleeper Agent: side of the hidden patch in pixels (default: image "
                                             "side / 8, at least 3)", low=1)


def hidden_patch(shape: tuple[int, int, int], size: int | None, seed: int):
    """(mask, pattern) of the seeded random patch in the bottom-right corner."""
    side = min(shape[1:])
    return trigger(shape, min(size or max(3, side // 8), side // 2), "random", "bottom-right", seed)


@register("sleeper_agent", label="Sleeper Agent (clean label)", order=8, settings=SleeperSettings)
class SleeperAgent(Attack):
    """Sleeper Agent: clean label. Target-class images get invisible perturbations (gradient matching) so that a
    patch the training set never shows sends victim images to the target."""

    def poison(self, data: ImageData, ctx: AttackContext, s: SleeperSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        eps = s.sleeper_eps if s.sleeper_eps is not None else dataset_eps(data.name)
        mask, pattern = hidden_patch(data.image_shape, s.sleeper_patch, ctx.seed)
        poison_idx = seeded_poisons(ctx, data, target, "target")
        victims = torch.nonzero(data.y_train == victim).flatten().numpy()
        rng = seeded(ctx.seed, "sleeper victims")
        sources = np.sort(rng.choice(victims, min(SOURCES_MATCHED, len(victims)), replace=False))

        def make():
            model = ctx.surrogates.model(data)
            for p in model.parameters():
                p.requires_grad_(True)
            x, loss = brew(model, data.x_train[poison_idx], data.y_train[poison_idx],
                           apply_trigger(data.x_train[sources], mask, pattern), target, eps=eps, steps=s.sleeper_steps,
                           restarts=1, seed=int(rng.integers(2**31 - 1)))
            return {"poisons": x.numpy(), "loss": np.array([loss])}

        key = content_key("sleeper-agent", ALGORITHM_VERSION, array_fingerprint(data.x_train, data.y_train), ctx.seed,
                          victim, target, array_fingerprint(poison_idx.numpy()), eps, s.sleeper_steps, STEP_SIZE,
                          array_fingerprint(pattern.numpy()), ctx.surrogates.recipe(data).key())
        brewed = torch.from_numpy(np.asarray(ctx.surrogates.cached(key, make)["poisons"])) if len(poison_idx) else None
        return trigger_on_target(ctx, data, victim, target, lambda _chosen: brewed,
                                 lambda x: apply_trigger(x, mask, pattern), mask, pattern)

    def preview(self, sample, settings: SleeperSettings, seed: int, dataset: str):
        mask, pattern = hidden_patch(tuple(sample.shape), settings.sleeper_patch, seed)
        eps = round((settings.sleeper_eps if settings.sleeper_eps is not None else dataset_eps(dataset)) * 255)
        return ([on_grey(sample, mask, pattern), apply_trigger(sample, mask, pattern)],
                [f"the hidden patch (never in the training set; poisons: ±{eps}/255)", "at test time"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        patch = on_grey(clean.x_train[0], poisoned.trigger_mask, poisoned.trigger_pattern)
        return clean_label_picture(clean, poisoned, patch, "the hidden patch")
