"""The core of Δ-Influence: one misbehaving test image, investigated.

(model, training images + labels, one query image + its label) → EK-FAC factors → the T + 1 queries →
scores → Δ → the verdict → detections → unlearning → re-check. :class:`Investigation` composes the stages,
each cached by the content of what determines it: influence (:class:`~deltainf.influence.stages.Influence`), what the
model makes of the images (:class:`~deltainf.suspicion.activations.Activations`), the detectors' registry, the
verdict (:func:`~deltainf.verdict.verdict_of`) and unlearning with the re-check
(:class:`~deltainf.unlearning.stage.Unlearning`). It needs no ground truth and knows no attack; a source that knows
more (an :class:`~deltainf.experiment.Experiment`) can pass an :class:`Evaluator` that adds its own figures.
"""
from __future__ import annotations

import numpy as np
import torch

from .data import ImageData
from .detectors import CONFIGURED, DETECTORS, Detection, DetectorInput, needs
from .influence.queries import Queries, Query
from .influence.stages import Influence
from .models.training import TrainedModel
from .progress import Reporter, Timings
from .store import Store
from .suspicion.activations import Activations
from .unlearning.stage import Evaluator, Unlearning
from .verdict import Verdict, verdict_of

__all__ = ["Evaluator", "Investigation", "Query", "TrainedModel"]


class Investigation:
    """Δ-Influence on one query. ``config`` carries the options (Δ, detectors, unlearning; see
    :class:`~deltainf.config.Config`); ``data`` the training set (and a held-out split, maybe empty). Its stages:
    ``influence``, ``activations`` and ``unlearning``."""

    def __init__(self, model: TrainedModel, data: ImageData, query: Query, config, store: Store, *,
                 reporter: Reporter | None = None, timings: Timings | None = None, evaluator: Evaluator | None = None):
        self.model, self.data, self.query, self.config, self.store = model, data, query, config, store
        self.reporter = reporter or Reporter()
        self.timings = timings or Timings()
        self.evaluator = evaluator
        self.influence = Influence(model, data, query, config, store, self.reporter, self.timings)
        self.activations = Activations(model, data, query, store)
        self.unlearning = Unlearning(model, data, query, config, store, self.reporter, self.timings,
                                     self.influence, self.activations, evaluator)
        self._detections: dict[tuple, Detection] = {}
        self._verdict: Verdict | None = None

    @property
    def device(self) -> torch.device:
        return self.model.recipe.device

    # ----------------------------------------------------------------- influence (the stage's most asked)
    def queries(self, mode: str | None = None) -> Queries:
        """The original query plus its T transformed copies, for ``mode`` (default: the configured one)."""
        return self.influence.queries(mode)

    def scores(self, mode: str | None = None) -> np.ndarray:
        """EK-FAC influence, shape (T+1, N): row 0 the original query, rows 1..T its copies."""
        return self.influence.scores(mode)

    def delta(self, mode: str | None = None) -> np.ndarray:
        """Δ (T, N): each copy's score minus the original's."""
        return self.influence.delta(mode)

    def tau_k(self, mode: str | None = None, tau: float | None = None, k: int | None = None) -> tuple[float, int, bool]:
        """(τ, k, suggested?): ``tau``/``k``, else the configured ones, with any still unset suggested from Δ."""
        return self.influence.tau_k(mode, tau, k)

    # ----------------------------------------------------------------- the verdict and detection
    def verdict(self) -> Verdict:
        """Whether there is evidence of poisoning behind the test image (:func:`~deltainf.verdict.verdict_of`)."""
        self._verdict = self._verdict or verdict_of(self)
        return self._verdict

    def accused(self, flagged: np.ndarray) -> np.ndarray:
        """``flagged`` as the suspect set when the verdict finds evidence of poisoning (or ``despite_verdict``
        overrides it), else empty: the flags stay an exploration."""
        poisoned = self.config.despite_verdict or self.verdict().poisoned
        return np.asarray(flagged, bool) & poisoned

    def detect(self, name: str, tau: float | None = None, k: int | None = None) -> Detection:
        """Run detector ``name`` with exactly the inputs it declares; τ/k default to the configured ones."""
        tau, k = (self.config.tau if tau is None else tau), (self.config.k if k is None else k)
        if (name, tau, k) not in self._detections:
            entry, want, seen, retrain = DETECTORS[name], needs(name), self.activations, self.unlearning
            modes = [self.config.mode if m == CONFIGURED else m for m in want["modes"]]
            inputs = DetectorInput(
                labels=self.data.y_train.numpy(), seed=self.config.seed, mode=self.config.mode,
                scores={m: self.scores(m) for m in modes}, tau=tau, k=k, query_label=self.query.label,
                **({"features": seen.train(), "query_features": seen.of_query(),
                    "confidence": seen.confidence()} if want["features"] else {}),
                **({"images": self.data.x_train, "query_image": self.query.image} if want["images"] else {}),
                reference=self.data.x_test if want["reference"] and len(self.data.x_test) else None,
                predict_without=retrain.predict_without if want["retrains"] else None,
                query_without=retrain.query_without if want["retrains"] else None)
            self._detections[(name, tau, k)] = entry(inputs, entry.settings_from(self.config))
        return self._detections[(name, tau, k)]
