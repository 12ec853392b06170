"""What is investigated: a :class:`Source` gives a model, its training data, one misbehaving test image and the
:class:`~deltainf.investigation.Investigation` of it. Two kinds exist — an :class:`~deltainf.experiment.Experiment`
(the engine plants an attack and trains the model: it knows the poisons) and a :class:`~deltainf.case.Case` (an
analyst's folder, model code, weights and test image: nobody knows the poisons, unless the analyst lists some). The
CLI, the reports and the app ask a source what it knows (``truth``, ``planted``), never which class it is.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from .data import ImageData
from .detectors import Detection
from .investigation import Investigation, Query, TrainedModel


@runtime_checkable
class Source(Protocol):
    """A model, its data and one test image to investigate; ``kind`` names it in words ("experiment", "case")."""

    kind: str
    config: Any

    @property
    def train_set(self) -> ImageData:
        """The training set as the model saw it."""

    @property
    def trained(self) -> TrainedModel:
        """The model under investigation (trained, or loaded from the analyst's weights; cached)."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def query(self) -> Query:
        """The misbehaving test image and its label y."""

    @property
    def query_image(self) -> torch.Tensor: ...

    @property
    def query_label(self) -> int: ...

    @property
    def investigation(self) -> Investigation: ...

    @property
    def truth(self) -> np.ndarray | None:
        """Which training points are poisons — for evaluation only — or None when nobody knows."""

    @property
    def planted(self):
        """The attack the source planted (its victim, target and triggered test images), or None (nobody planted
        one: an analyst's own case)."""

    @property
    def model_metrics(self) -> dict:
        """What is measured of the model before any unlearning: clean accuracy where there is a test split (None
        otherwise), and what the source can add (poison success)."""

    def detect(self, name: str, tau: float | None = None, k: int | None = None) -> Detection: ...

    def overview(self) -> dict:
        """What the Experiment page and the sidebar say about the model and the test image."""

    def export_weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s weights in the layout the source's model reads back (a download, ``--weights``)."""

    def evaluate_model(self, module: nn.Module, key: str) -> dict: ...

    def evaluate_removal(self, removed: np.ndarray) -> dict: ...
