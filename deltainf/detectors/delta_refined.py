"""Δ-Influence, refined: of the points whose influence collapses, keep those that look like the test image.

Influence collapse also catches clean training images of the test image's label y: they supported y, and a
copy with a random label no longer needs them. The poisons differ in what the model sees: they carry what
makes the test image differ from a typical image of y (the trigger), so in the last hidden layer their own
difference from the typical image of y points the same way as the test image's (:func:`likeness`; the
typical image is the coordinate-wise median). The refinement keeps a collapsed point only when its likeness
is at least the ``refined_quantile`` quantile of the likeness of every training point labelled y (flagged or
not; no ground truth is used).

Its candidates are the τ/k rule's flags with τ raised to 0 when it is lower: the refinement removes the
clean points itself, so it starts from every point whose influence falls on T − k copies at all (a suggested
τ below 0 trades poisons with small Δ for precision, which the refinement gives back anyway).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..influence.delta import delta_flags, delta_matrix
from ..models.features import label_quantile, likeness
from ..options import option
from . import Detection, DetectorInput, register
from .delta_influence import delta_rule


@dataclass(frozen=True)
class RefinedSettings:
    refined_quantile: float = option(0.4, "Δ refined: keep the collapsed points at least as like the test image as "
                                          "this quantile of the training points labelled like it",
                                     kind="fraction")


@register("delta_refined", label="Δ-Influence, refined", order=5, settings=RefinedSettings, modes=("full",),
          features=True)
def delta_refined(inputs: DetectorInput, s: RefinedSettings) -> Detection:
    """Δ-Influence refined: of the collapsed points (τ no lower than 0), those that differ from a typical image of
    the test image's label the way the test image does, more than the 40 % of that label's images least so."""
    rule = delta_rule(inputs, "full", "delta_refined")
    candidate_tau = max(rule.params["tau"], 0.0)
    collapsed = delta_flags(delta_matrix(inputs.scores["full"]), candidate_tau, rule.params["k"])
    like = likeness(inputs.features, inputs.query_features, inputs.labels, inputs.query_label)
    threshold = label_quantile(like, inputs.labels, inputs.query_label, s.refined_quantile)
    kept = collapsed & (like >= threshold)
    return Detection("delta_refined", kept, np.where(collapsed, like, -1.0), {
        **rule.params, "candidate_tau": candidate_tau, "quantile": s.refined_quantile,
        "likeness_threshold": round(threshold, 4), "n_collapsed": int(collapsed.sum()),
        "n_dropped_as_unlike_the_query": int((collapsed & ~kept).sum())})
