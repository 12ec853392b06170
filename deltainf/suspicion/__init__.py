"""Evidence against training images, shared by the detectors, the verdict and the re-check: likeness to the test
image (:mod:`.likeness`, :mod:`.activations`), a stamp or texture shared with it (:mod:`.stamp`), the coarse
look a group shares and other images of its label lack (:mod:`.look`), what a group shares carried over to other
images (:mod:`.transfer`), and the relabelling by a model trained without the suspects
(:mod:`.relabel`). Nothing here reads ground truth or imports a detector; :class:`SuspicionOptions` are the
settings its users share."""
from __future__ import annotations

from dataclasses import dataclass

from ..options import option


@dataclass(frozen=True)
class SuspicionOptions:
    """The settings of the shared evidence, read by Δ refined and by --until-clean's give-back."""

    refined_rounds: int = option(4, "the relabelling: the most times the images still suspected are set aside and a "
                                    "model is trained without them (Δ refined; --until-clean's give-back)", low=1)
    refined_min_share: float = option(0.1, "the relabelling: when a model trained without the suspects gives fewer "
                                           "than this share of them another label (clean-label poisons), it is no "
                                           "evidence (Δ refined then lets the likeness split decide; --until-clean "
                                           "gives nothing back)", kind="fraction")
    kin_quantile: float = option(0.1, "the kin of a suspected set: the other images of the test image's label at "
                                      "least as like it as this quantile of the suspected ones like it (poisons a "
                                      "detector missed). Δ refined sets them aside with its candidates; "
                                      "--until-clean removes them with the flags, and again while the backdoor is "
                                      "found", kind="fraction")
