"""τ and k from Δ alone, without ground truth."""
from __future__ import annotations

import numpy as np

from .delta import delta_matrix, drop_counts, score_scale

#: τ candidates for the suggestion, in units of :func:`~deltainf.influence.delta.score_scale`.
TAU_GRID = (0.0, -0.1, -0.5, -1.0, -2.0)
#: The suggestion's cut T − k goes at most this far below T.
SUGGEST_K_MAX = 3
#: Bins just below T that estimate the clean background there.
BACKGROUND_BINS = 3


def suggest_tau_k(delta: np.ndarray, scale: float, tau: float | None = None, k: int | None = None,
                  k_max: int = SUGGEST_K_MAX) -> tuple[float, int]:
    """Suggest (τ, k) from Δ alone, without ground truth.

    Influence collapse piles poisons up at count T of the per-point count histogram h (counts of
    #{t : Δ < τ}), above the clean points that thin out towards T.

    * τ ∈ TAU_GRID × scale: the one whose pile h[T] stands most significantly above the clean
      background b (the mean of the ``BACKGROUND_BINS`` bins below T): z = (h[T] − b) / √(b + 1).
      A count-aware test, so a low τ that leaves a sparse tail (few points, a "cleaner" ratio by
      chance) does not beat a tall pile.
    * k ∈ 0..k_max at that τ: the cut T − k in the deepest valley, maximising
      mean(h[T−k..T]) / (h[T−k−1] + 1) — poisons that missed a copy or two sit just below T.

    A given τ or k is kept and only the other is searched.
    """
    T = delta.shape[0]
    if tau is None:
        best_z = -np.inf
        for t in (t * scale for t in TAU_GRID):
            h = np.bincount(drop_counts(delta, t), minlength=T + 1).astype(float)
            b = h[max(0, T - BACKGROUND_BINS):T].mean()  # T ≥ 1 (Config checks it)
            z = (h[T] - b) / np.sqrt(b + 1)
            if z > best_z:
                tau, best_z = float(t), z
    if k is None:
        h = np.bincount(drop_counts(delta, tau), minlength=T + 1)
        best_q = -1.0
        for kk in range(min(k_max, T - 1) + 1):
            below = h[T - kk - 1] if T - kk - 1 >= 0 else 0
            q = h[T - kk:].mean() / (below + 1)
            if q > best_q:
                k, best_q = kk, q
    return float(tau), int(k)


def resolve_tau_k(scores: np.ndarray, tau: float | None, k: int | None) -> tuple[float, int, bool]:
    """(τ, k, suggested?): the given values, with any that is None suggested from the Δ of ``scores``."""
    if tau is not None and k is not None:
        return tau, k, False
    tau, k = suggest_tau_k(delta_matrix(scores), score_scale(scores), tau, k)
    return tau, k, True
