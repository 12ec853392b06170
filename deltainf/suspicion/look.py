"""The coarse look a group of suspects shares and the other images of their label lack.

Dirty-label poisons are images of another class (the victim's) carrying one trigger; both leave a mark on their
coarse look — the image averaged down to a few cells per channel: the victim class's colours and layout, and a smooth
trigger's blotches, which sit in the lowest frequencies. Clean images of the label y that collapse with them have
the look of y. So a linear discriminant (Fisher's) fitted between a first guess at the group (the likeness split's
upper group) and the images of y outside the candidates scores every candidate, and 2-means on that score keeps the
upper group; fitted again on that group, once more. Each candidate is scored by a discriminant fitted without it
(two folds, seeded), so a member is not kept for having shaped the direction that scores it. No ground truth is read;
like any split it finds two groups behind an honest mistake too, and the verdict asks what the kept group does.
"""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from ..data.stream import chunks, take
from ..seeds import seeded
from .likeness import two_means

#: Cells per side of the coarse look (3 × 3 per channel).
CELLS = 3
#: Fits of the discriminant: on the first guess, then on the group the first fit kept.
ROUNDS = 2


def coarse_look(images, members: np.ndarray) -> np.ndarray:
    """The uint8 images (N, C, H, W) at the indices ``members``, each averaged down to ``CELLS`` × ``CELLS`` cells per
    channel: (len(members), C · CELLS²) float64; read in slices."""
    return np.concatenate([F.adaptive_avg_pool2d(block.double(), CELLS).flatten(1).numpy()
                           for block in chunks(take(images, members))])


def _direction(group: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Fisher's discriminant from ``rest`` towards ``group`` (rows: coarse looks), scaled so that ``rest`` projects
    with unit standard deviation (folds fitted apart then score alike)."""
    centred = np.concatenate([group - group.mean(0), rest - rest.mean(0)])
    cov = np.atleast_2d(np.cov(centred.T))
    ridge = 1e-3 * np.trace(cov) / len(cov)  # too few images for the cells: keep the solve well posed
    w = np.linalg.solve(cov + ridge * np.eye(len(cov)), group.mean(0) - rest.mean(0))
    spread = float(((rest - rest.mean(0)) @ w).std())
    return w / spread if spread > 0 else w


def look_split(images, first: np.ndarray, among: np.ndarray, rest: np.ndarray,
               seed: int) -> tuple[np.ndarray, float, float] | None:
    """The images of ``among`` (bool mask) whose coarse look sets them apart from the images of ``rest`` the way
    the ``first`` group's does (see the module). Returns (that group, the least score kept, the share of the score's
    variance between the two groups); None when there are too few images to fit the discriminant on."""
    idx, ref = np.flatnonzero(among), np.flatnonzero(rest)
    group = np.asarray(first, bool)[idx]
    if len(ref) < 2 or group.sum() < 4:
        return None
    looks, reference = coarse_look(images, idx), coarse_look(images, ref)
    fold = seeded(seed, "look folds").integers(0, 2, len(idx))
    split = None
    for _ in range(ROUNDS):
        score = np.zeros(len(idx))
        for f in (0, 1):
            fit = group & (fold != f)
            if fit.sum() < 2:
                return None
            score[fold == f] = (looks[fold == f] - reference.mean(0)) @ _direction(looks[fit], reference)
        split = two_means(score, seed)
        if split is None:
            return None
        group = score >= split[0]
    kept = np.zeros_like(np.asarray(among, bool))
    kept[idx[group]] = True
    return kept, split[0], split[1]
