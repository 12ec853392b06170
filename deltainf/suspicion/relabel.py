"""What a model trained without the suspects makes of them: a dirty-label poison (an image of another class carrying
the trigger, labelled y) goes back to its own class once the poisons are gone, a clean image of y stays an image of
y."""
from __future__ import annotations

from typing import Callable

import numpy as np


def relabelled(candidates: np.ndarray, labels: np.ndarray, predict_without: Callable[[np.ndarray], np.ndarray],
               rounds: int, kin_of: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """The ``candidates`` that a model trained without the suspects (and their kin: poisons left in the data would
    keep the backdoor alive) labels otherwise than their own label; the suspects set aside again until they no
    longer change (at most ``rounds`` models). Returns (suspects, how many after each round, the last model's
    predicted labels)."""
    suspects, counts = candidates, []
    for _ in range(rounds):
        predicted = predict_without(suspects | kin_of(suspects))
        still = candidates & (predicted != labels)
        counts.append(int(still.sum()))
        done = np.array_equal(still, suspects) or not still.any()
        suspects = still
        if done:
            break
    return suspects, counts, predicted


def dirty_label(suspects: np.ndarray, candidates: np.ndarray, min_share: float) -> bool:
    """Whether the relabelling check found poisons that carry a label not their own: at least ``min_share`` of the
    candidates (and one)."""
    return bool(suspects.any() and suspects.sum() >= min_share * candidates.sum())
