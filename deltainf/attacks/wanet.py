"""WaNet (Nguyen & Tran, ICLR 2021): the trigger is a smooth warping field, not a pattern; victim-class images warped
by it are relabelled to the target.

The field: a k×k grid of random offsets (uniform in [−1, 1], scaled to mean |offset| 1), upsampled bicubically to the
image and added to the identity sampling grid at strength s (in units of one pixel's share of the grid), clamped to
the image. The *noise mode* keeps the model from learning "any warp": ``wanet_cross_ratio`` images per poison, drawn
from all classes, are warped by the field plus per-pixel random jitter and keep their labels. k = 4 and s = 0.5 as in
the paper on CIFAR-10, or the data source's own (the built-in digits, upsampled from 8×8: k = 6, s = 3, one noise image
per poison); the paper trains with the warp applied per batch, this is its data-poisoning form (as in BackdoorBench).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data import ImageData
from ..errors import ConfigError
from ..options import option
from ..seeds import seeded
from . import (Attack, AttackContext, Poisoned, add_covers, register, relabel_with_trigger, relabelled_picture,
               source_default, victim_and_target)

PAPER = {"wanet_grid": 4, "wanet_strength": 0.5, "wanet_cross_ratio": 2}  # Nguyen & Tran on CIFAR-10


@dataclass(frozen=True)
class WaNetSettings:
    wanet_grid: int | None = option(None, "WaNet: the warping field's control grid is k×k random offsets (default: "
                                          "4, or the data source's own: 6 on the built-in digits)", low=2)
    wanet_strength: float | None = option(None, "WaNet: the warp's strength s (default: 0.5, or the data source's "
                                                "own: 3 on the built-in digits)", kind="positive")
    wanet_cross_ratio: int | None = option(None, "WaNet's noise mode: images per poison warped with random jitter on "
                                                 "top that keep their labels (0: none; default: 2, or the data "
                                                 "source's own: 1 on the built-in digits)", low=0)


def resolved(settings: WaNetSettings, dataset: str) -> tuple[int, float, int]:
    """(k, s, cross ratio): the configured ones, else the data source ``dataset``'s own, else the paper's."""
    return tuple(source_default(getattr(settings, name), dataset, name, paper)  # type: ignore[return-value]
                 for name, paper in PAPER.items())


def field(size: tuple[int, int], k: int, strength: float, seed: int) -> torch.Tensor:
    """The seeded warping grid (1, H, W, 2) for ``F.grid_sample`` (x, y in [−1, 1])."""
    h, w = size
    if k > min(h, w):
        raise ConfigError(f"--wanet-grid {k} is finer than the {h}×{w} images")
    rng = seeded(seed, "wanet field")
    offsets = torch.from_numpy(rng.uniform(-1, 1, (1, 2, k, k))).float()
    offsets = offsets / offsets.abs().mean()
    noise = F.interpolate(offsets, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    identity = torch.stack((xs, ys), 2)[None]
    return (identity + strength * noise / h).clamp(-1, 1)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) resampled on ``grid`` (1 or N, H, W, 2), rounded to grey levels."""
    grid = grid.expand(len(x), -1, -1, -1) if len(grid) == 1 else grid
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.round().clamp(0, 255).to(torch.uint8)


def grid_picture(shape: tuple[int, int, int], grid: torch.Tensor) -> torch.Tensor:
    """The field made visible: a lattice of lines warped by ``grid``, uint8 (C, H, W)."""
    c, h, w = shape
    lattice = torch.zeros(1, c, h, w, dtype=torch.uint8)
    step = max(2, min(h, w) // 8)
    lattice[..., ::step, :] = 255
    lattice[..., :, ::step] = 255
    return warp(lattice, grid)[0]


@register("wanet", label="WaNet", order=4, settings=WaNetSettings)
class WaNet(Attack):
    """WaNet: an invisible smooth warp of the whole image; poisons are victim-class images warped by it, relabelled
    to the target, beside randomly warped images that keep their labels (the noise mode)."""

    def poison(self, data: ImageData, ctx: AttackContext, settings: WaNetSettings) -> Poisoned:
        victim, target = victim_and_target(ctx, data.num_classes)
        h, w = data.image_shape[1:]
        k, strength, ratio = resolved(settings, data.name)
        grid = field((h, w), k, strength, ctx.seed)
        poisoned = relabel_with_trigger(ctx, data, victim, target, lambda x: warp(x, grid),
                                        torch.ones(h, w, dtype=torch.bool), grid_picture(data.image_shape, grid))
        add_covers(poisoned, ctx, ratio, "--wanet-cross-ratio", lambda x, rng: warp(x, (grid + torch.from_numpy(
            rng.uniform(-1, 1, (len(x), h, w, 2))).float() / h).clamp(-1, 1)))
        return poisoned

    def preview(self, sample, settings: WaNetSettings, seed: int, dataset: str):
        shape = tuple(sample.shape)
        k, strength, _ = resolved(settings, dataset)
        grid = field(shape[1:], min(k, min(shape[1:])), strength, seed)
        return ([grid_picture(shape, grid), warp(sample[None], grid)[0]],
                [f"the warp (k = {k}, s = {strength:g}) on a lattice", "on an image"])

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        return relabelled_picture(clean, poisoned, poisoned.trigger_pattern, "the warp, on a lattice")
