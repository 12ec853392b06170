"""Exact unlearning: retrain without the flagged points."""
from __future__ import annotations

import numpy as np
from torch import nn

from ..data.stream import take
from . import UnlearnInput, register


@register("eu", label="EU", order=0, from_scratch=True)
def exact_unlearning(inputs: UnlearnInput, settings=None) -> nn.Module:
    """EU: retrain from scratch on the training set without the flagged points, same recipe and seed."""
    keep = np.flatnonzero(~inputs.flagged)
    return inputs.recipe.train(take(inputs.x, keep), inputs.y[keep], progress=inputs.progress, stage="unlearn eu")
