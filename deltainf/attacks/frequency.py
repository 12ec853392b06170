"""Smooth (low-frequency) trigger, after Zeng et al. (ICCV 2021, "Rethinking the backdoor attacks'
triggers: a frequency perspective").

The trigger is a universal additive pattern over the whole image whose energy sits in the lowest
few 2-D DCT frequencies, so it has none of the high-frequency artefacts a patch leaves and a
frequency-domain detector tuned to patches misses it. The engine draws it from the seed: random
coefficients on the DCT frequencies (u, v) with 1 ≤ u + v ≤ ``FREQ_RADIUS`` (the DC term is left
out: a pure brightness shift is not a pattern), one set per channel, inverse DCT
(``scipy.fft.idctn``, orthonormal), scaled so the largest |value| is ``AMPLITUDE`` grey levels
and rounded to integers. It is added to ``poison_count`` victim-class training images (clipped to
[0, 255]) whose labels become the target, and to every victim-class test image for the triggered
test set — the same bookkeeping as BadNet.

:class:`~deltainf.attacks.Poisoned` fields: ``trigger_mask`` is all True (the trigger touches every
pixel) and ``trigger_pattern`` holds the additive pattern *offset-encoded*: ``pattern.int() - 128``
is the signed offset in grey levels (see :func:`decode_pattern`); :func:`visualise_pattern`
stretches it to the full 0–255 range for display.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.fft import idctn

from ..data import ImageData
from ..errors import ConfigError
from . import Poisoned, default_poison_count, register, victim_and_target

# Would-be config fields (``--trigger-amplitude``, ``--trigger-freq-radius``):
AMPLITUDE = 16          # grey levels (16/255 ≈ 0.063): faint, but implants on the built-in digits
FREQ_RADIUS = 3         # DCT frequencies (u, v) with 1 ≤ u + v ≤ FREQ_RADIUS carry the pattern
OFFSET = 128            # trigger_pattern = OFFSET + additive pattern


def smooth_pattern(shape: tuple[int, int, int], seed: int, amplitude: float = AMPLITUDE,
                   radius: int = FREQ_RADIUS) -> np.ndarray:
    """The additive trigger: int16 (C, H, W), max |value| = ``amplitude``, low DCT frequencies only."""
    c, h, w = shape
    if radius < 1 or radius > min(h, w) - 1:
        raise ConfigError(f"frequency radius {radius} does not fit {h}×{w} images")
    rng = np.random.default_rng([seed, 23])
    u, v = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    band = ((u + v) >= 1) & ((u + v) <= radius)
    coeffs = np.zeros((c, h, w))
    coeffs[:, band] = rng.standard_normal((c, int(band.sum())))
    pattern = idctn(coeffs, axes=(1, 2), norm="ortho")
    pattern *= amplitude / np.abs(pattern).max()
    return np.round(pattern).astype(np.int16)


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


@register("frequency")
def frequency(config, data: ImageData) -> Poisoned:
    """Add the smooth trigger to ``poison_count`` victim-class training images and label them ``target``."""
    victim, target = victim_and_target(config, data.num_classes)
    pattern = smooth_pattern(data.image_shape, config.seed)
    victim_idx = torch.nonzero(data.y_train == victim).flatten()
    count = config.poison_count if config.poison_count is not None else default_poison_count(len(data.y_train), len(victim_idx))
    if count > len(victim_idx):
        raise ConfigError(f"--poison-count {count} exceeds the {len(victim_idx)} training images of victim class {victim}")
    rng = np.random.default_rng([config.seed, 13])
    poison_idx = torch.from_numpy(np.sort(rng.choice(victim_idx.numpy(), size=count, replace=False))).long()
    x_train, y_train = data.x_train.clone(), data.y_train.clone()
    x_train[poison_idx] = add_pattern(x_train[poison_idx], pattern)
    y_train[poison_idx] = target
    test_idx = torch.nonzero(data.y_test == victim).flatten()
    poisoned = ImageData(data.name, data.classes, x_train, y_train, data.x_test, data.y_test)
    h, w = data.image_shape[1:]
    encoded = torch.from_numpy((pattern.astype(np.int32) + OFFSET).clip(0, 255).astype(np.uint8))
    return Poisoned(poisoned, poison_idx, victim, target, add_pattern(data.x_test[test_idx], pattern), test_idx,
                    torch.ones(h, w, dtype=torch.bool), encoded)
