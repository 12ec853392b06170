"""Spectral Signatures (Tran et al., 2018), a baseline the paper compares against.

Per class, the top right singular vector of the centred activations; a point's outlier score is its
projection on it: of the centred activation (Tran et al., the default) or of the activation itself
(``--specsig-projection raw``: IBM ART 1.20's ``SpectralSignatureDefense``). Tran et al. remove the top
1.5·ε·n of each class, with ε the poison fraction — unknown to a defender, so ε is fixed (``specsig_eps``,
5 %). The cut is ART's: a class's points at or above the (1 − 1.5·ε) quantile of its scores, so ART with
``expected_pp_poison = ε`` and the raw projection flags the same points
(``tests/detectors/test_art_crosscheck.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import option
from . import Detection, DetectorInput, register


@dataclass(frozen=True)
class SpecSigSettings:
    specsig_eps: float = option(0.05, "SpecSig: the assumed poison fraction ε (unknown to a defender; ART's "
                                      "expected_pp_poison)", kind="probability")
    specsig_multiplier: float = option(1.5, "SpecSig: flag the top multiplier·ε of every class", kind="positive")
    specsig_projection: str = option("centred", "SpecSig: project the centred activations (Tran et al.) or the raw "
                                                "ones (IBM ART 1.20)", choices=("centred", "raw"))


def spectral_signatures(emb: np.ndarray, labels: np.ndarray, eps: float = 0.05, multiplier: float = 1.5,
                        projection: str = "centred") -> tuple[np.ndarray, np.ndarray, dict]:
    """Tran et al.'s outlier scores and ART's cut. Returns (flagged, score, flagged per class).

    The returned score is divided by its class mean so that scores are comparable across classes (1 = typical).
    """
    n = len(labels)
    flagged, score = np.zeros(n, bool), np.zeros(n)
    removed = {}
    for c in (int(c) for c in np.unique(labels)):
        idx = np.flatnonzero(labels == c)
        x = emb[idx]
        centred = x - x.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        s = np.abs(vt[:1] @ (centred if projection == "centred" else x).T)[0]  # ART's order of operations
        cut = s >= np.quantile(s, max(1 - multiplier * eps, 0.0))
        flagged[idx[cut]] = True
        score[idx] = s / (s.mean() + 1e-12)
        removed[c] = int(cut.sum())
    return flagged, score, removed


@register("specsig", label="Spectral Signatures", order=11, settings=SpecSigSettings, features=True)
def specsig(inputs: DetectorInput, s: SpecSigSettings) -> Detection:
    """Spectral Signatures (Tran et al.): per class, the top 1.5·ε of projections on the top singular vector.

    The singular vector of the class's centred last-layer activations; ε, the poison fraction, is fixed
    since a defender does not know it."""
    flagged, score, removed = spectral_signatures(inputs.features, inputs.labels, s.specsig_eps,
                                                  s.specsig_multiplier, s.specsig_projection)
    return Detection("specsig", flagged, score, {"eps": s.specsig_eps, "multiplier": s.specsig_multiplier,
                                                 "projection": s.specsig_projection, "removed_per_class": removed})
