"""SIG (Barni et al. 2019, "A new backdoor attack in CNNs by training set corruption without label poisoning"):
clean-label. A horizontal sinusoid x' = x + Δ·sin(2π·j·f / W) (column j, f periods across the image) is added to
target-class training images, which keep their label; at test time it is added to images of another class.

Δ = 20 grey levels at training and 30 at test time, f = 6, as in the paper (its test signal is stronger than the
training one), or the data source's own (``sig_delta``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageData
from ..options import option
from . import (Attack, AttackContext, Poisoned, clean_label_picture, register, source_default, trigger_on_target,
               victim_and_target)

PAPER_DELTA, TEST_OVER_TRAIN = 20, 1.5


@dataclass(frozen=True)
class SigSettings:
    sig_delta: int | None = option(None, "SIG: the sinusoid's amplitude in grey levels on the poisons (default: 20, "
                                         "or the data source's own; the test images get 1.5× it, as in the paper)",
                                   low=1)
    sig_frequency: int = option(6, "SIG: periods of the sinusoid across the image", low=1)


def signal(shape: tuple[int, int, int], delta: float, frequency: int) -> torch.Tensor:
    """The sinusoid (C, H, W), float grey levels: constant down each column."""
    c, h, w = shape
    wave = delta * np.sin(2 * np.pi * np.arange(w) * frequency / w)
    return torch.from_numpy(np.broadcast_to(wave, (c, h, w)).copy()).float()


def add_signal(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """uint8 images (…, C, H, W) plus the signal, rounded and clipped."""
    return (x.float() + s).round().clamp(0, 255).to(torch.uint8)


def deltas(settings: SigSettings, dataset: str) -> tuple[int, int]:
    """(Δ on the poisons, Δ at test time)."""
    train = int(source_default(settings.sig_delta, dataset, "sig_delta", PAPER_DELTA))
    return train, round(TEST_OVER_TRAIN * train)


@register("sig", label="SIG (clean label)", order=5, settings=SigSettings)
class Sig(Attack):
    """SIG: clean-label. A faint horizontal sinusoid added to images of the target class, labels kept; images of
    another class carrying it go to the target."""

    def poison(self, data: ImageData, ctx: AttackContext, settings: SigSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        train, test = deltas(settings, data.name)
        s_train = signal(data.image_shape, train, settings.sig_frequency)
        s_test = signal(data.image_shape, test, settings.sig_frequency)
        h, w = data.image_shape[1:]
        return trigger_on_target(ctx, data, victim, target, lambda x: add_signal(x, s_train),
                                 lambda x: add_signal(x, s_test), torch.ones(h, w, dtype=torch.bool),
                                 add_signal(torch.full(data.image_shape, 128, dtype=torch.uint8), s_test))

    def preview(self, sample, settings: SigSettings, seed: int, dataset: str):
        train, test = deltas(settings, dataset)
        s = signal(tuple(sample.shape), test, settings.sig_frequency)
        return ([add_signal(torch.full_like(sample, 128), s), add_signal(sample, s)],
                [f"the sinusoid (±{test} at test time, ±{train} on the poisons)", "on an image of another class"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        return clean_label_picture(clean, poisoned, poisoned.trigger_pattern, "the sinusoid, on grey")
