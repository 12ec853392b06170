"""Δ-Influence, refined: of the points whose influence collapses, keep those that look like the test image.

Influence collapse also catches clean training images of the test image's label y: they supported y, and a
copy with a random label no longer needs them. The poisons differ in what the model sees: they carry what
makes the test image misbehave (a trigger), so in the last hidden layer they lie closer to the test image
than the typical image labelled y. The refinement keeps a Δ-flagged point only when its cosine similarity to
the test image is at least the ``refined_quantile`` quantile of the similarities of every training point
labelled y (flagged or not; no ground truth is used).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import option
from ..models.features import similarity
from . import Detection, DetectorInput, register
from .delta_influence import delta_rule


@dataclass(frozen=True)
class RefinedSettings:
    refined_quantile: float = option(0.5, "Δ refined: keep the flagged points at least as similar to the test image "
                                          "as this quantile of the training points labelled like it",
                                     kind="fraction")


@register("delta_refined", label="Δ-Influence, refined", order=5, settings=RefinedSettings, modes=("full",),
          features=True)
def delta_refined(inputs: DetectorInput, s: RefinedSettings) -> Detection:
    """Δ-Influence refined: the collapsed points at least as like the test image as a typical image of its label.

    Similarity is the cosine in the model's last hidden layer; "typical" is the ``refined_quantile`` quantile
    over every training point labelled like the test image."""
    rule = delta_rule(inputs, "full", "delta_refined")
    sim = similarity(inputs.features, inputs.query_features)
    same = inputs.labels == inputs.query_label
    threshold = float(np.quantile(sim[same], s.refined_quantile)) if same.any() else -1.0
    kept = rule.flagged & (sim >= threshold)
    return Detection("delta_refined", kept, np.where(rule.flagged, sim, -1.0), {
        **rule.params, "quantile": s.refined_quantile, "similarity_threshold": round(threshold, 4),
        "n_collapsed": int(rule.flagged.sum()), "n_dropped_as_unlike_the_query": int((rule.flagged & ~kept).sum())})
