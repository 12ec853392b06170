"""The paper's image-only ablation of Δ-Influence."""
from __future__ import annotations

from . import Detection, DetectorInput, delta_rule, register


@register("delta_image_only", label="Δ, image-only copies", order=2, modes=("image-only",))
def delta_image_only(inputs: DetectorInput, settings=None) -> Detection:
    """Ablation: transformed images keeping the predicted label."""
    return delta_rule(inputs, "image-only", "delta_image_only")
