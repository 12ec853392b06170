"""The attacker's clean surrogate models, and a cache for what attacks optimise on them.

An attacker who optimises poisons (Witches' Brew, the learned frequency trigger) trains their own model on
the clean data with the victim's recipe but another seed. Those models and the optimised poisons are
cached, so every run of an experiment sees bit-identical data and the stages downstream stay warm.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..data import ImageData
from ..models import ARCHITECTURES, channel_stats
from ..models.training import Recipe
from ..seeds import seeded
from ..store import Store, array_fingerprint, content_key
from ..store.checkpoints import arrays_to_model, state_to_arrays


def surrogate_seed(seed: int, member: int = 0) -> int:
    """The surrogate's seed: drawn from the experiment's seed, but not the victim model's own."""
    return int(seeded(seed, "surrogate", member).integers(2**31 - 1))


class Surrogates:
    """Clean surrogate models with the experiment's recipe (architecture, epochs, learning rate, batch size,
    weight decay, label smoothing), each from its own seeded initialisation; None for ``epochs``/``lr``
    means the architecture's default. Without a store nothing is cached."""

    def __init__(self, *, model: str, epochs: int | None, lr: float | None, batch_size: int, weight_decay: float,
                 label_smoothing: float, seed: int, device: torch.device, store: Store | None):
        self.model_name, self.epochs, self.lr = model, epochs, lr
        self.batch_size, self.weight_decay, self.label_smoothing = batch_size, weight_decay, label_smoothing
        self.seed, self.device, self.store = seed, device, store

    def recipe(self, data: ImageData, architecture: str | None = None, member: int = 0) -> Recipe:
        """The recipe of surrogate ``member`` (the configured epochs/lr belong to the configured architecture)."""
        name = architecture or self.model_name
        same = name == self.model_name
        arch = ARCHITECTURES[name].attrs
        mean, std = channel_stats(data.x_train)
        epochs = (self.epochs if same else None) or arch["epochs"]
        return Recipe(model=name, num_classes=data.num_classes, epochs=epochs,
                      lr=(self.lr if same else None) or arch["lr"], batch_size=self.batch_size,
                      weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                      seed=surrogate_seed(self.seed, member), device=self.device, precision="fp32",
                      mean=mean, std=std)

    def model(self, data: ImageData, architecture: str | None = None, member: int = 0) -> nn.Module:
        """A surrogate trained on the clean ``data`` (cached by the data and the recipe)."""
        recipe = self.recipe(data, architecture, member)
        key = content_key("surrogate", recipe.key(), array_fingerprint(data.x_train, data.y_train))
        arrays = self.cached(key, lambda: state_to_arrays(recipe.train(data.x_train, data.y_train)))
        return arrays_to_model(recipe.new_model(), arrays).to(self.device)

    def cached(self, key: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """``make()`` (a dict of numpy arrays) stored under ``key``."""
        if self.store is None:
            return make()
        entry, _ = self.store.get_or_make(key, lambda: (make(), {}))
        return entry.arrays
