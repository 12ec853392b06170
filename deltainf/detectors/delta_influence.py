"""Δ-Influence: flag the training points whose influence collapses on the transformed copies."""
from __future__ import annotations

from . import Detection, DetectorInput, delta_rule, register


@register("delta_influence", label="Δ-Influence", order=0, modes=("full",))
def delta_influence(inputs: DetectorInput, settings=None) -> Detection:
    """Δ-Influence: flag when #{t : Δ < τ} ≥ T − k, copies with a new image and a random label."""
    return delta_rule(inputs, "full", "delta_influence")
