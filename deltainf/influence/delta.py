"""Δ and the flag rule of influence collapse: the one place they are written."""
from __future__ import annotations

import numpy as np


def delta_matrix(scores: np.ndarray) -> np.ndarray:
    """Δ[t, i] = score(copy t, train i) − score(original, train i) for a (T+1, N) score matrix."""
    return scores[1:] - scores[0:1]


def drop_counts(delta: np.ndarray, tau: float) -> np.ndarray:
    """#{t : Δ[t, i] < τ} for every training point i."""
    return (delta < tau).sum(axis=0)


def delta_flags(delta: np.ndarray, tau: float, k: int) -> np.ndarray:
    """Influence collapse: flag i when at least T − k of its Δ fall below τ."""
    return drop_counts(delta, tau) >= delta.shape[0] - k


def score_scale(scores: np.ndarray) -> float:
    """A robust unit for raw influence scores: the median |score| on the original query.

    Raw EK-FAC scores depend on the model and the data (they can be 1e5); τ shown in this unit
    means the same thing everywhere.
    """
    s = float(np.median(np.abs(scores[0]))) if scores.size else 0.0
    return s if s > 0 else 1.0
