"""Spectral Signatures (Tran et al., 2018), a baseline the paper compares against.

Per class, centred activations, their top right singular vector; a point's outlier score is its
squared projection on it. Tran et al. remove the top 1.5·ε·n of each class, with ε the poison
fraction — unknown to a defender, so ε is fixed (``specsig_eps``, 5 %): the top 7.5 % of every
class is flagged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import option
from . import Detection, DetectorInput, register


@dataclass(frozen=True)
class SpecSigSettings:
    specsig_eps: float = option(0.05, "SpecSig: the assumed poison fraction ε (unknown to a defender)",
                                kind="probability")
    specsig_multiplier: float = option(1.5, "SpecSig: flag the top multiplier·ε of every class", kind="positive")


def spectral_signatures(emb: np.ndarray, labels: np.ndarray, eps: float = 0.05,
                        multiplier: float = 1.5) -> tuple[np.ndarray, np.ndarray, dict]:
    """Tran et al.'s outlier scores. Returns (flagged, score, per-class counts).

    The score is the squared projection on the class's top singular vector, divided by its class
    mean so that scores are comparable across classes (1 = typical).
    """
    from scipy.linalg import svd

    n = len(labels)
    flagged, score = np.zeros(n, bool), np.zeros(n)
    removed = {}
    for c in (int(c) for c in np.unique(labels)):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        x = emb[idx].astype(np.float64)
        x = x - x.mean(0)
        _, _, vt = svd(x, full_matrices=False)
        s = (x @ vt[0]) ** 2
        s = s / (s.mean() + 1e-12)
        score[idx] = s
        m = min(len(idx), int(np.ceil(multiplier * eps * len(idx))))
        flagged[idx[np.argsort(-s, kind="stable")[:m]]] = True
        removed[c] = m
    return flagged, score, removed


@register("specsig", label="Spectral Signatures", order=11, settings=SpecSigSettings, features=True)
def specsig(inputs: DetectorInput, s: SpecSigSettings) -> Detection:
    """Spectral Signatures (Tran et al.): per class, the top 1.5·ε·n projections on the top singular vector.

    The singular vector of the class's centred last-layer activations; ε, the poison fraction, is fixed
    since a defender does not know it."""
    flagged, score, removed = spectral_signatures(inputs.features, inputs.labels, s.specsig_eps, s.specsig_multiplier)
    return Detection("specsig", flagged, score, {"eps": s.specsig_eps, "multiplier": s.specsig_multiplier,
                                                 "removed_per_class": removed})
