"""A stamped trigger: pixels the suspected images share with the test image and almost no other training image has;
and the traces of triggers that leave no such pixel — a pattern's fine texture, an ε-bounded perturbation.

A patch trigger is stamped verbatim on every poison and on the test image; an additive one leaves the same values
where the images themselves are flat (a digit's black background). Where the candidates of the test image's label
match the test image far more often than the rest of the training set does, those pixels are the stamp; the images
of that label then fall into two groups by the share of the stamp they carry, and when the two are well apart (a
stamp is carried whole or not at all, where likeness between natural images is a matter of degree) the upper group
carries the trigger. No ground truth is used: the test image and the candidates define the stamp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.stream import chunks
from .likeness import two_means

#: A pixel is part of the stamp when at least this share of the candidates match the test image there …
MIN_SHARE = 0.1
#: … and at least this share of the pixel the candidates match most often (the stamp's pixels are carried together).
OF_STRONGEST = 0.5
#: A stamp has at least this many pixels: one pixel is carried whole or not at all whatever it is, so a split on it
#: proves nothing (a value many images share by chance, a clipped perturbation).
MIN_PIXELS = 2
#: A perturbed group holds at least this many candidates: a few warped or noisy images of the label (an attack's
#: regularisation samples, a scan's artefacts) do not make one …
MIN_PERTURBED = 10
#: … and carries at least this many times the test image's fine-texture energy (a clean-label attack's test image is
#: itself unperturbed; a trigger the test image carries is the stamp's or the texture's to find).
OVER_QUERY = 1.3


@dataclass
class Stamp:
    """The stamp found: its pixels, the share of them each training image carries, and the split of those shares."""

    pixels: np.ndarray   # bool (H, W)
    carried: np.ndarray  # float (N,): the share of the stamp's pixels each training image matches
    cut: float           # images of the label carrying at least this share (the upper group's least) carry it
    separation: float    # between-group share of the variance among the candidates of the label (1: two values)

    def carriers(self, labels: np.ndarray, label: int) -> np.ndarray:
        """The images labelled ``label`` in the upper group."""
        return (labels == label) & (self.carried >= self.cut)


def matches(images, query: torch.Tensor, tolerance: int):
    """Bool (B, H, W) for each slice of the uint8 images (N, C, H, W), in order: where each image is within
    ``tolerance`` grey levels of ``query`` (C, H, W) in every channel (images on disk are read a slice at a time)."""
    q = torch.as_tensor(query).to(torch.int16)
    for block in chunks(images):
        yield ((block.to(torch.int16) - q).abs() <= tolerance).all(1).numpy()


def shared_stamp(images, query: torch.Tensor, candidates: np.ndarray, rest: np.ndarray, tolerance: int,
                 enrichment: float, seed: int) -> Stamp | None:
    """The stamp the ``candidates`` (bool (N,)) share with the test image ``query`` (:func:`matches`): the pixels at
    least ``enrichment`` times as often matched among the candidates as among the ``rest``, and matched by at least
    :data:`MIN_SHARE` of them (and :data:`OF_STRONGEST` of the most matched such pixel's share); the candidates' shares
    of it split by 2-means. None when fewer than :data:`MIN_PIXELS` pixels qualify or every candidate carries the same
    share. Two passes over the images; what is held is a count per pixel, then a share per image."""
    if candidates.sum() < 2 or not rest.any():
        return None
    among, outside, start = 0, 0, 0
    for m in matches(images, query, tolerance):
        among = among + m[candidates[start:start + len(m)]].sum(0)
        outside = outside + m[rest[start:start + len(m)]].sum(0)
        start += len(m)
    among, outside = among / candidates.sum(), outside / rest.sum()
    enriched = (among >= MIN_SHARE) & (among >= enrichment * outside)
    if not enriched.any():
        return None
    pixels = enriched & (among >= OF_STRONGEST * among[enriched].max())
    if pixels.sum() < MIN_PIXELS:
        return None
    carried = np.concatenate([m[:, pixels].mean(1) for m in matches(images, query, tolerance)])
    split = two_means(carried[candidates], seed)
    return None if split is None else Stamp(pixels, carried, *split)


def residual(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) minus their 3×3 local mean (edges replicated), flattened (N, C·H·W), in grey levels."""
    x = x.float()
    return (x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)).flatten(1)


def fine_texture(x: torch.Tensor) -> torch.Tensor:
    """Each image's fine texture: its :func:`residual`, centred and scaled to unit length (N, C·H·W) — what a pattern
    mixed into the whole image (a blended trigger) adds, and what two different natural images hardly share."""
    r = residual(x)
    r = r - r.mean(1, keepdim=True)
    return r / r.norm(dim=1, keepdim=True).clamp_min(1e-8)


def shared_texture(images, query: torch.Tensor, candidates: np.ndarray, seed: int) -> Stamp | None:
    """The fine texture (:func:`fine_texture`) the ``candidates`` share with the test image ``query``: each training
    image's correlation with the test image's texture, the candidates' correlations split by 2-means. A stamp over the
    whole image (``pixels`` all True); None when fewer than two candidates or every one correlates alike."""
    if candidates.sum() < 2:
        return None
    q = fine_texture(torch.as_tensor(query)[None])[0]
    carried = np.concatenate([(fine_texture(block) @ q).numpy() for block in chunks(images)]).astype(np.float64)
    split = two_means(carried[candidates], seed)
    return None if split is None else Stamp(np.ones(tuple(query.shape[-2:]), dtype=bool), carried, *split)


def texture_energy(images) -> np.ndarray:
    """Each image's fine-texture energy (N,): the mean |image − its 3×3 local mean| over pixels and channels, in grey
    levels — what an ε-bounded perturbation adds everywhere, where a natural image has it at its edges."""
    return np.concatenate([residual(block).abs().mean(1).numpy() for block in chunks(images)]).astype(np.float64)


def perturbed(images, query: torch.Tensor, candidates: np.ndarray, seed: int, z: float) -> Stamp | None:
    """The ``candidates`` that carry a perturbation the test image ``query`` does not (clean-label poisons): their
    :func:`texture_energy` split by 2-means; the upper group stands when it holds at least :data:`MIN_PERTURBED`
    images, its least energy lies ``z`` robust standard deviations (1.4826 × the median absolute deviation) above the
    training set's median, and its mean is :data:`OVER_QUERY` times the test image's. A stamp over the whole image
    (``carried``: each image's energy); None otherwise."""
    if candidates.sum() < MIN_PERTURBED:
        return None
    energy = texture_energy(images)
    split = two_means(energy[candidates], seed)
    if split is None:
        return None
    upper = candidates & (energy >= split[0])
    median = np.median(energy)
    spread = 1.4826 * np.median(np.abs(energy - median))
    own = texture_energy(torch.as_tensor(query)[None])[0]
    if upper.sum() < MIN_PERTURBED or split[0] < median + z * spread or energy[upper].mean() < OVER_QUERY * own:
        return None
    return Stamp(np.ones(tuple(query.shape[-2:]), dtype=bool), energy, *split)


def shared_energy(images, query: torch.Tensor, suspected: np.ndarray, labels: np.ndarray, label: int) -> float:
    """How unusual a fine-texture level (:func:`texture_energy`) the ``suspected`` images share with the test image
    ``query``: their median's distance from the median of the other images labelled ``label``, in robust standard
    deviations of that label's images (1.4826 × the median absolute deviation) — signed, higher positive — when the
    test image lies on the same side, at least half as far (its own level varies with its content), else 0. A
    trigger over the whole image that leaves no stamp or shared pattern (a warp resamples every pixel) moves the level
    of its poisons and of the test image alike; the look-alikes behind an honest mistake have the level of their
    label."""
    own = labels == label
    others = own & ~suspected
    if suspected.sum() < MIN_PERTURBED or not others.any():
        return 0.0
    energy = texture_energy(images)
    spread = 1.4826 * np.median(np.abs(energy[own] - np.median(energy[own])))
    if spread == 0:
        return 0.0
    base = np.median(energy[others])
    z = (np.median(energy[suspected]) - base) / spread
    z_query = (texture_energy(torch.as_tensor(query)[None])[0] - base) / spread
    return float(z) if z * z_query > 0 and abs(z_query) >= abs(z) / 2 else 0.0
