"""The paper's label-only ablation of Δ-Influence."""
from __future__ import annotations

from . import Detection, DetectorInput, delta_rule, register


@register("delta_label_only", label="Δ, label-only copies", order=1, modes=("label-only",))
def delta_label_only(inputs: DetectorInput, settings=None) -> Detection:
    """Ablation: random labels on the unchanged image."""
    return delta_rule(inputs, "label-only", "delta_label_only")
