"""What a model trained without the suspects makes of them: a dirty-label poison (an image of another class carrying
the trigger, labelled y) goes back to its own class once the poisons are gone, a clean image of y stays an image of
y."""
from __future__ import annotations

from typing import Callable

import numpy as np


def relabelling_rounds(candidates: np.ndarray, labels: np.ndarray,
                       predict_without: Callable[[np.ndarray], np.ndarray], rounds: int,
                       kin_of: Callable[[np.ndarray], np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``candidates`` that a model trained without the suspects (and their kin: poisons left in the data would
    keep the backdoor alive) labels otherwise than their own label; the suspects set aside again until they no
    longer change (at most ``rounds`` models). Returns, for each round, (the candidates still suspected, that
    model's predicted labels)."""
    suspects, history = candidates, []
    for _ in range(rounds):
        predicted = predict_without(suspects | kin_of(suspects))
        still = candidates & (predicted != labels)
        history.append((still, predicted))
        done = np.array_equal(still, suspects) or not still.any()
        suspects = still
        if done:
            break
    return history


def relabelled(candidates: np.ndarray, labels: np.ndarray, predict_without: Callable[[np.ndarray], np.ndarray],
               rounds: int, kin_of: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """:func:`relabelling_rounds`' last round: (suspects, how many after each round, the last model's predicted
    labels)."""
    history = relabelling_rounds(candidates, labels, predict_without, rounds, kin_of)
    return history[-1][0], [int(still.sum()) for still, _ in history], history[-1][1]


def agreement(suspects: np.ndarray, predicted: np.ndarray) -> tuple[dict[int, int], float]:
    """Where the model sends the ``suspects``: ({class: how many}, the share of the largest class; 0 for none).
    Dirty-label poisons come from one source class and go back to it together."""
    sent = {int(c): int(n) for c, n in zip(*np.unique(predicted[suspects], return_counts=True))}
    return sent, (max(sent.values()) / sum(sent.values()) if sent else 0.0)


def dirty_label(suspects: np.ndarray, candidates: np.ndarray, min_share: float) -> bool:
    """Whether the relabelling check found poisons that carry a label not their own: at least ``min_share`` of the
    candidates (and one)."""
    return bool(suspects.any() and suspects.sum() >= min_share * candidates.sum())
