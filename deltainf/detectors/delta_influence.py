"""Δ-Influence: flag the training points whose influence collapses on the transformed copies."""
from __future__ import annotations

from ..influence.delta import delta_matrix, drop_counts
from ..influence.suggest import resolve_tau_k
from . import Detection, DetectorInput, register


def delta_rule(inputs: DetectorInput, mode: str, name: str) -> Detection:
    """Flag i when #{t : Δ[t, i] < τ} ≥ T − k on the copies of ``mode``; τ/k suggested from Δ when unset."""
    scores = inputs.scores[mode]
    delta = delta_matrix(scores)
    tau, k, suggested = resolve_tau_k(scores, inputs.tau, inputs.k)
    counts = drop_counts(delta, tau)
    flagged = counts >= delta.shape[0] - k
    return Detection(name, flagged, counts.astype(float),
                     {"tau": tau, "k": k, "T": delta.shape[0], "mode": mode, "suggested": suggested})


@register("delta_influence", label="Δ-Influence", order=0, modes=("full",))
def delta_influence(inputs: DetectorInput, settings=None) -> Detection:
    """Δ-Influence: flag when #{t : Δ < τ} ≥ T − k, copies with a new image and a random label."""
    return delta_rule(inputs, "full", "delta_influence")
