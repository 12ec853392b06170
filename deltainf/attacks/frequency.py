"""Smooth (low-frequency) trigger, after Zeng et al. (ICCV 2021, "Rethinking the backdoor attacks'
triggers: a frequency perspective").

The trigger is a universal additive pattern over the whole image whose energy sits in the lowest
few 2-D DCT frequencies, so it has none of the high-frequency artefacts a patch leaves. As in
Zeng et al., it is *learned*: a universal perturbation towards the target class on the attacker's
clean surrogate model, restricted to the low band. The engine makes it itself from the seed:

1. random Gaussian coefficients on the DCT frequencies (u, v) with 1 ≤ u + v ≤ ``trigger_freq_radius``
   (the DC term is left out: a pure brightness shift is not a pattern), one set per channel;
2. ``trigger_opt_steps`` Adam steps on those coefficients only (so the pattern stays smooth by
   construction) minimising the surrogate's cross-entropy towards the target on the victim
   class's training images, the pattern rescaled to max |value| = ``trigger_amplitude`` at each step;
3. inverse DCT (orthonormal), rounding to whole grey levels.

It is added to ``poison_count`` victim-class training images (clipped to [0, 255]) whose labels
become the target, and to every victim-class test image for the triggered test set — the same
bookkeeping as BadNet. A purely random smooth pattern (``trigger_opt_steps = 0``) did not implant on the
built-in digits even at 48/255 (poison success ≤ 0.32); the learned one at 32/255 reaches
0.86–0.92. Being a universal perturbation, it also fools a model that never saw a poison (3–37 % of
triggered victim images on the digits, up to 76 % on a weak CIFAR-10 model): the floor under poison
success after any unlearning, which ``--counterfactual`` measures. The surrogate (the experiment's
small-CNN recipe, another seed) and the pattern are cached in the experiment's cache folder, so runs
see a bit-identical trigger.

:class:`~deltainf.attacks.Poisoned` fields: ``trigger_mask`` is all True (the trigger touches every
pixel) and ``trigger_pattern`` holds the additive pattern *offset-encoded*: ``pattern.int() - 128``
is the signed offset in grey levels (see :func:`decode_pattern`); :func:`visualise_pattern`
stretches it to the full 0–255 range for display.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import idct, idctn
from torch import nn

from ..data import ImageData
from ..errors import ConfigError
from ..options import option
from ..seeds import seeded
from ..store import array_fingerprint, content_key
from . import (Attack, AttackContext, Poisoned, register, relabel_with_trigger, relabelled_picture, stretched_difference,
               victim_and_target)

SURROGATE = "cnn"       # the attacker's model for the optimisation (a universal pattern transfers)
ALGORITHM_VERSION = 2   # bump when the pattern generation changes (cached patterns are keyed by it)
OFFSET = 128            # trigger_pattern = OFFSET + additive pattern


@dataclass(frozen=True)
class FrequencySettings:
    trigger_amplitude: int = option(32, "frequency trigger: largest change in grey levels (32/255: faint blotches, "
                                        "what it takes to implant on the digits)", low=1)
    trigger_freq_radius: int = option(3, "frequency trigger: DCT frequencies (u, v) with 1 ≤ u + v ≤ this carry it",
                                      low=1)
    trigger_opt_steps: int = option(200, "frequency trigger: Adam steps optimising it on the attacker's surrogate "
                                         "(0 = purely random)", low=0)


def dct_basis(n: int) -> np.ndarray:
    """Orthonormal inverse-DCT basis (n, n): column j is the j-th cosine (``scipy.fft.idct`` of e_j)."""
    return idct(np.eye(n), axis=0, norm="ortho")


def _band(h: int, w: int, radius: int) -> np.ndarray:
    u, v = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return ((u + v) >= 1) & ((u + v) <= radius)


def random_pattern(shape: tuple[int, int, int], seed: int, amplitude: float, radius: int) -> np.ndarray:
    """A random smooth pattern, float (C, H, W): Gaussian coefficients on the low DCT band, inverse DCT,
    scaled to max |value| = ``amplitude``."""
    c, h, w = shape
    if radius < 1 or radius > min(h, w) - 1:
        raise ConfigError(f"frequency radius {radius} does not fit {h}×{w} images")
    band = _band(h, w, radius)
    coeffs = np.zeros((c, h, w))
    coeffs[:, band] = seeded(seed, "frequency trigger").standard_normal((c, int(band.sum())))
    pattern = idctn(coeffs, axes=(1, 2), norm="ortho")
    return pattern * (amplitude / np.abs(pattern).max())


def optimise_pattern(model: nn.Module, x_victim: torch.Tensor, target: int, init: np.ndarray, amplitude: float,
                     radius: int, steps: int) -> np.ndarray:
    """Zeng et al.'s smooth trigger: a universal perturbation restricted to the low DCT band that pushes
    the (clean) ``model``'s predictions for ``x_victim`` (uint8) towards ``target``.

    Only the band's DCT coefficients are free, so the pattern stays smooth by construction; it is
    rescaled to max |value| = ``amplitude`` at every step.
    """
    c, h, w = init.shape
    device = next(model.parameters()).device
    bh = torch.tensor(dct_basis(h), dtype=torch.float32, device=device)
    bw = torch.tensor(dct_basis(w), dtype=torch.float32, device=device)
    band = torch.tensor(_band(h, w, radius), device=device)
    init = torch.tensor(init / np.abs(init).max(), dtype=torch.float32, device=device)
    coeffs = (bh.T @ init @ bw) * band  # the DCT of the initial pattern, at unit scale
    coeffs = coeffs.requires_grad_(True)
    x = x_victim.to(device).float() / 255
    y = torch.full((len(x),), target, device=device)
    opt = torch.optim.Adam([coeffs], lr=0.05)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def pattern():
        p = bh @ (coeffs * band) @ bw.T
        return p * (amplitude / p.abs().amax().clamp_min(1e-8))

    for _ in range(steps):
        loss = F.cross_entropy(model((x + pattern() / 255).clamp(0, 1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return pattern().cpu().double().numpy()


def smooth_pattern(data: ImageData, ctx: AttackContext, s: FrequencySettings, victim: int,
                   target: int) -> np.ndarray:
    """The trigger for this experiment, int16 (C, H, W): the seeded random smooth pattern, optimised on
    the attacker's clean surrogate (cached)."""
    init = random_pattern(data.image_shape, ctx.seed, s.trigger_amplitude, s.trigger_freq_radius)
    if s.trigger_opt_steps == 0:
        return np.round(init).astype(np.int16)
    surrogate = ctx.surrogates.recipe(data, SURROGATE)

    def make():
        model = ctx.surrogates.model(data, SURROGATE)
        x_victim = data.x_train[data.y_train == victim]
        pattern = optimise_pattern(model, x_victim, target, init, s.trigger_amplitude, s.trigger_freq_radius,
                                   s.trigger_opt_steps)
        return {"pattern": np.round(pattern).astype(np.int16)}

    key = content_key("frequency-trigger", ALGORITHM_VERSION, array_fingerprint(data.x_train, data.y_train), ctx.seed,
                      victim, target, s.trigger_amplitude, s.trigger_freq_radius, s.trigger_opt_steps,
                      surrogate.key())
    return ctx.surrogates.cached(key, make)["pattern"]


def add_pattern(x: torch.Tensor, pattern: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Add the signed pattern to uint8 images (…, C, H, W), clipping to [0, 255]."""
    p = torch.as_tensor(np.asarray(pattern), dtype=torch.int16)
    return (x.to(torch.int16) + p).clamp_(0, 255).to(torch.uint8)


def decode_pattern(trigger_pattern: torch.Tensor) -> torch.Tensor:
    """The signed additive pattern (int16) from the offset-encoded ``Poisoned.trigger_pattern``."""
    return trigger_pattern.to(torch.int16) - OFFSET


def visualise_pattern(trigger_pattern: torch.Tensor) -> torch.Tensor:
    """uint8 (C, H, W) picture of the pattern stretched to 0–255 (mid-grey = no change)."""
    p = decode_pattern(trigger_pattern).float()
    m = p.abs().max().clamp_min(1)
    return (127.5 + 127.5 * p / m).round().clamp(0, 255).to(torch.uint8)


@register("frequency", label="Frequency trigger", order=1, settings=FrequencySettings)
class Frequency(Attack):
    """Frequency trigger: a faint, smooth pattern over the whole image (low DCT frequencies), optimised towards the
    target on a surrogate model; relabelled like BadNet."""

    def poison(self, data: ImageData, ctx: AttackContext, settings: FrequencySettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        pattern = smooth_pattern(data, ctx, settings, victim, target)
        h, w = data.image_shape[1:]
        encoded = torch.from_numpy((pattern.astype(np.int32) + OFFSET).clip(0, 255).astype(np.uint8))
        return relabel_with_trigger(ctx, data, victim, target, lambda x: add_pattern(x, pattern),
                                    torch.ones(h, w, dtype=torch.bool), encoded)

    def preview(self, sample, settings: FrequencySettings, seed: int, dataset: str):
        pattern = random_pattern(tuple(sample.shape), seed, settings.trigger_amplitude, settings.trigger_freq_radius)
        encoded = torch.from_numpy((np.round(pattern).astype(np.int32) + OFFSET).clip(0, 255).astype(np.uint8))
        return ([visualise_pattern(encoded), add_pattern(sample, np.round(pattern))],
                ["a smooth pattern (contrast stretched)", f"added at ±{settings.trigger_amplitude} grey levels"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        i = int(poisoned.poison_idx[0])
        stretched, m = stretched_difference(poisoned.data.x_train[i], clean.x_train[i])
        return relabelled_picture(clean, poisoned, stretched, f"the pattern (±{m} grey levels, stretched)")
