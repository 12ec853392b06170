"""What a group of training images shares, carried over to images of other labels: does it act as a trigger?

A dirty-label poisoning plants one signal on every poison — a patch, a blended pattern, a smooth additive trigger —
and the model learns it as a shortcut to the label y. The group's *shared signal* is its mean image minus the training
set's mean: the trigger at full strength (every poison carries it at the same place), plus the group's class look
(blurred by the averaging). Added to images of other labels, a trigger sends them to y; the class look of any group of
y's images does so less. So the test compares the suspects' signal with a control group's (random images of y, as
many): the share of other images each sends to y. No ground truth is read, and no model is retrained: the model
investigated decides, by forward passes only.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch

from ..data.stream import chunks, take
from ..seeds import seeded

#: How many images of other labels the signal is added to (all there are when fewer).
IMAGES = 1000


def mean_image(images, members: np.ndarray) -> torch.Tensor:
    """The mean of the uint8 images (N, C, H, W) at the bool mask ``members``, float64 (C, H, W); read in slices."""
    total, count = None, 0
    for block in chunks(take(images, np.flatnonzero(members))):
        s = block.double().sum(0)
        total, count = (s if total is None else total + s), count + len(block)
    return total / count


def sent_to(images, labels: np.ndarray, y: int, predict: Callable[[torch.Tensor], np.ndarray],
            seed: int) -> Callable[[np.ndarray], float]:
    """``sends(group) -> share``: the share of up to :data:`IMAGES` training images of other labels than ``y`` (a
    seeded draw, the same for every group) that ``predict`` (uint8 images → predicted labels) gives ``y`` once the
    ``group``'s shared signal (its mean image minus the training set's; none for an empty group) is added to them."""
    others = np.flatnonzero(labels != y)
    if not len(others):
        return lambda group: 0.0
    drawn = np.sort(seeded(seed, "signal transfer").choice(others, min(IMAGES, len(others)), replace=False))
    everyone = functools.cache(lambda: mean_image(images, np.ones(len(labels), bool)))  # once, on the first group

    def sends(group: np.ndarray) -> float:
        signal = mean_image(images, group) - everyone() if np.any(group) else 0.0
        hits = 0
        for block in chunks(take(images, drawn)):
            carried = (block.double() + signal).clamp(0, 255).round().to(torch.uint8)
            hits += int((predict(carried) == y).sum())
        return hits / len(drawn)
    return sends
