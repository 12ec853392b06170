"""Detectors, one file each, registered in :data:`DETECTORS`: Δ-Influence, its two ablations, naive EK-FAC
and the paper's baselines (Activation Clustering, Spectral Signatures, the frequency defence).

A detector is ``fn(inputs: DetectorInput, settings) -> Detection``. It declares what it reads
(``modes``: score matrices of those query modes; ``features``; ``images``; ``reference``; ``retrains``: models
trained without a set of points) and gets exactly that: never the orchestrator, never ground truth.
The τ/k rule the Δ detectors share is :func:`delta_rule`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..influence.delta import delta_matrix, drop_counts
from ..influence.suggest import resolve_tau_k
from ..registry import Registry

DETECTORS = Registry("detector")
register = DETECTORS.register

#: In a detector's ``modes``: the query mode the investigation is configured with.
CONFIGURED = "configured"


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


@dataclass
class DetectorInput:
    """What a detector may read. Fields it did not ask for are None."""

    labels: np.ndarray                        # training labels (N,)
    seed: int
    mode: str                                 # the investigation's configured query mode
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # mode → (T+1, N) influence scores
    tau: float | None = None                  # the τ/k rule's settings (None: suggested from Δ)
    k: int | None = None
    features: np.ndarray | None = None        # last-hidden-layer activations (N, D)
    query_features: np.ndarray | None = None  # the test image's (D,), with ``features``
    confidence: np.ndarray | None = None      # the model's probability of y for every training point (N,), with them
    query_label: int | None = None            # y, the label the test image is investigated with
    images: torch.Tensor | None = None        # training images, uint8 (N, 3, H, W)
    query_image: torch.Tensor | None = None   # the test image, uint8 (3, H, W), with ``images``
    reference: torch.Tensor | None = None     # held-out images trusted to be clean, uint8 (M, 3, H, W)
    #: ``predict_without(removed)``: the labels a model trained without the ``removed`` points (bool (N,); the
    #: investigation's recipe, classes rebalanced) predicts for every training point. With ``retrains``.
    predict_without: Callable[[np.ndarray], np.ndarray] | None = None
    #: ``query_without(removed)``: the probability a model retrained without the ``removed`` points (exact unlearning:
    #: the recipe on the rest, not rebalanced) gives the test image its label y. With ``retrains``.
    query_without: Callable[[np.ndarray], float] | None = None


def needs(name: str) -> dict:
    """What detector ``name`` reads: {"modes": (...), "features": bool, "images": bool, "reference": bool,
    "retrains": bool}."""
    a = DETECTORS[name].attrs
    return {"modes": tuple(a.get("modes", ())), "features": a.get("features", False),
            "images": a.get("images", False), "reference": a.get("reference", False),
            "retrains": a.get("retrains", False)}


def intersect(name: str, runs: list[Detection], extra: dict | None = None) -> Detection:
    """One detection from several known poisoned test points: flag only what every run flags."""
    flagged = np.logical_and.reduce([r.flagged for r in runs])
    return Detection(name, flagged, np.mean([r.score for r in runs], axis=0), {**runs[0].params, **(extra or {})})


def delta_rule(inputs: DetectorInput, mode: str, name: str) -> Detection:
    """Flag i when #{t : Δ[t, i] < τ} ≥ T − k on the copies of ``mode``; τ/k suggested from Δ when unset."""
    scores = inputs.scores[mode]
    delta = delta_matrix(scores)
    tau, k, suggested = resolve_tau_k(scores, inputs.tau, inputs.k)
    counts = drop_counts(delta, tau)
    flagged = counts >= delta.shape[0] - k
    return Detection(name, flagged, counts.astype(float),
                     {"tau": tau, "k": k, "T": delta.shape[0], "mode": mode, "suggested": suggested})


DETECTORS.discover(__name__, __path__)


def explained(name: str, det: Detection, classes: list[str]) -> list[dict] | None:
    """Detector ``name``'s detection ``det`` told as steps, [{"step", "count", "what"}] (a detector that registers
    ``explain``, e.g. Δ refined), or None."""
    explain = DETECTORS[name].attrs.get("explain")
    return None if explain is None else explain(det.params, int(det.flagged.sum()), classes)
