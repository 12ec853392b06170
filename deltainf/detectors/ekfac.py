"""Naive EK-FAC: the baseline that thresholds influence on the original query alone."""
from __future__ import annotations

from dataclasses import dataclass

from ..options import option
from . import CONFIGURED, Detection, DetectorInput, register


@dataclass(frozen=True)
class EkfacSettings:
    ekfac_threshold: float = option(0.0, "naive EK-FAC flags scores above this", kind="finite")


@register("ekfac", label="naive EK-FAC", order=3, settings=EkfacSettings, modes=(CONFIGURED,))
def ekfac(inputs: DetectorInput, settings: EkfacSettings) -> Detection:
    """Naive EK-FAC: flag influence on the original query above a threshold.

    Over several known test points, what is above it for every one: the paper's boosted EK-FAC."""
    original = inputs.scores[inputs.mode][0]
    thr = settings.ekfac_threshold
    return Detection("ekfac", original > thr, original.astype(float), {"threshold": thr})
