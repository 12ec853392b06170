"""Unlearning methods as a registry: name → function ``(pipeline, flagged mask) -> model``."""
from __future__ import annotations

from typing import Callable

import numpy as np

UNLEARNERS: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        UNLEARNERS[name] = fn
        return fn
    return deco


@register("eu")
def exact_unlearning(pipe, flagged: np.ndarray):
    """EU: retrain from scratch on the training set without the flagged points, same recipe and seed."""
    keep = np.flatnonzero(~np.asarray(flagged, bool))
    return pipe.train_on(keep, stage="unlearn eu")
