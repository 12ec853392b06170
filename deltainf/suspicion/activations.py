"""What the model makes of the images: last-hidden-layer activations of the training set and the test image, the
model's probability of the test image's label y for each training image, and each one's likeness to the test
image — read by the detectors that look at features, the re-check and the verdict."""
from __future__ import annotations

import numpy as np

from ..models.features import embeddings
from ..store import Store, content_key
from .likeness import likeness


class Activations:
    """The activations of one investigation's model (a :class:`~deltainf.models.training.TrainedModel`) on its
    training set (cached by the model key) and on the test image ``query``."""

    def __init__(self, model, data, query, store: Store):
        self.model, self.data, self.query, self.store = model, data, query, store
        self._seen: dict[str, np.ndarray] = {}

    def train(self) -> np.ndarray:
        """Last-hidden-layer activations of the training set under the model."""
        if "train" not in self._seen:
            entry, _ = self.store.get_or_make(content_key("activations", "probabilities", self.model.key), lambda: (
                dict(zip(("emb", "prob"), embeddings(self.model.module, self.data.x_train, self.model.recipe.device,
                                                     probabilities=True))), {}))
            self._seen["train"], self._seen["prob"] = entry.arrays["emb"], entry.arrays["prob"]
        return self._seen["train"]

    def confidence(self) -> np.ndarray:
        """The model's probability of the test image's label y for every training image (read with the features)."""
        self.train()
        return self._seen["prob"][:, self.query.label]

    def of_query(self) -> np.ndarray:
        """The test image's last-hidden-layer activations under the model."""
        if "query" not in self._seen:
            self._seen["query"] = embeddings(self.model.module, self.query.image[None], self.model.recipe.device)[0]
        return self._seen["query"]

    def likeness(self) -> np.ndarray:
        """Every training image's :func:`~deltainf.suspicion.likeness.likeness` to the test image (relative to the
        median image of its label y): what the refined Δ-Influence thresholds and the kin are chosen by."""
        if "likeness" not in self._seen:
            self._seen["likeness"] = likeness(self.train(), self.of_query(), self.data.y_train.numpy(),
                                              self.query.label)
        return self._seen["likeness"]
