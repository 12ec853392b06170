"""Detectors: Δ-Influence (and its ablations) plus the naive EK-FAC baseline, as a registry.

Every detector returns a :class:`Detection` (flags, a per-point score, parameters) and knows
nothing of how it is shown. Registered detectors take the :class:`~deltainf.pipeline.Pipeline`
and pull what they need from it (score matrices, the model), so each is computed lazily.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

DETECTORS: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        DETECTORS[name] = fn
        return fn
    return deco


@dataclass
class Detection:
    """Which training points a detector flags, and why."""

    name: str
    flagged: np.ndarray  # bool (N,)
    score: np.ndarray    # float (N,): higher = more suspicious
    params: dict = field(default_factory=dict)

    @property
    def indices(self) -> np.ndarray:
        return np.flatnonzero(self.flagged)


def delta_matrix(scores: np.ndarray) -> np.ndarray:
    """Δ[t, i] = score(copy t, train i) − score(original, train i) for a (T+1, N) score matrix."""
    return scores[1:] - scores[0:1]


def drop_counts(delta: np.ndarray, tau: float) -> np.ndarray:
    """#{t : Δ[t, i] < τ} for every training point i."""
    return (delta < tau).sum(axis=0)


def delta_flags(delta: np.ndarray, tau: float, k: int) -> np.ndarray:
    """Influence collapse: flag i when at least T − k of its Δ fall below τ."""
    return drop_counts(delta, tau) >= delta.shape[0] - k


def detection_metrics(flagged: np.ndarray, is_poison: np.ndarray) -> dict:
    """TPR, precision, their harmonic mean F1 and the number flagged against the ground truth (fractions in [0, 1])."""
    flagged = np.asarray(flagged, bool)
    hits = int((flagged & is_poison).sum())
    n_flagged = int(flagged.sum())
    n_poison = int(is_poison.sum())
    tpr = hits / n_poison if n_poison else 0.0
    precision = hits / n_flagged if n_flagged else 0.0
    return {
        "tpr": tpr,
        "precision": precision,
        "f1": 2 * tpr * precision / (tpr + precision) if hits else 0.0,
        "n_flagged": n_flagged,
    }


def score_scale(scores: np.ndarray) -> float:
    """A robust unit for raw influence scores: the median |score| on the original query.

    Raw EK-FAC scores depend on the model and the data (they can be 1e5); τ shown in this unit
    means the same thing everywhere.
    """
    s = float(np.median(np.abs(scores[0]))) if scores.size else 0.0
    return s if s > 0 else 1.0


#: τ candidates for the suggestion, in units of :func:`score_scale`.
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


def _over_test_points(pipe, single: Callable, name: str) -> Detection | None:
    """With several known poisoned test points, flag only what every point's detection flags."""
    if pipe.config.test_points == 1:
        return None
    runs = [single(pipe if i == pipe.test_index else pipe.sibling(i)) for i in pipe.test_points]
    flagged = np.logical_and.reduce([r.flagged for r in runs])
    return Detection(name, flagged, np.mean([r.score for r in runs], axis=0),
                     {**runs[0].params, "test_points": list(pipe.test_points)})


def _delta_detector(pipe, mode: str, name: str) -> Detection:
    multi = _over_test_points(pipe, lambda p: _delta_detector_single(p, mode, name), name)
    return multi if multi is not None else _delta_detector_single(pipe, mode, name)


def _delta_detector_single(pipe, mode: str, name: str) -> Detection:
    delta = delta_matrix(pipe.scores(mode))
    tau, k, suggested = pipe.tau_k(mode)
    counts = drop_counts(delta, tau)
    flagged = counts >= delta.shape[0] - k
    return Detection(name, flagged, counts.astype(float),
                     {"tau": tau, "k": k, "T": delta.shape[0], "mode": mode, "suggested": suggested})


@register("delta_influence")
def delta_influence(pipe) -> Detection:
    """Δ-Influence with full transformations (new image and random label)."""
    return _delta_detector(pipe, "full", "delta_influence")


@register("delta_label_only")
def delta_label_only(pipe) -> Detection:
    """Ablation: random labels on the unchanged image."""
    return _delta_detector(pipe, "label-only", "delta_label_only")


@register("delta_image_only")
def delta_image_only(pipe) -> Detection:
    """Ablation: transformed images keeping the predicted label."""
    return _delta_detector(pipe, "image-only", "delta_image_only")


@register("ekfac")
def ekfac(pipe) -> Detection:
    """Naive EK-FAC: flag every training point whose influence on the original query exceeds a threshold
    (with several test points: above it for every one of them, the paper's boosted EK-FAC)."""
    return _over_test_points(pipe, _ekfac_single, "ekfac") or _ekfac_single(pipe)


def _ekfac_single(pipe) -> Detection:
    original = pipe.scores(pipe.config.mode)[0]
    thr = pipe.config.ekfac_threshold
    return Detection("ekfac", original > thr, original.astype(float), {"threshold": thr})
from . import baselines  # noqa: E402,F401  (registers actclust, specsig, freqdef)
