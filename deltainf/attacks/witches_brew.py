"""Witches' Brew (Geiping et al., ICLR 2021): clean-label poisoning by gradient matching.

(Attack added below; this module also holds the attacker's clean surrogate model and a small
content-addressed cache, which the frequency trigger shares.)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..cache import Store, array_fingerprint, content_key
from ..checkpoints import arrays_to_model, state_to_arrays
from ..data import ImageData
from ..device import resolve_device
from ..errors import CacheError
from ..models import build_model, channel_stats
from ..train import DEFAULT_EPOCHS, DEFAULT_LR, train_model


def attack_store(config) -> Store | None:
    """The experiment's cache folder, or None when it cannot be opened (then nothing is cached)."""
    try:
        return Store(config.cache_path)
    except CacheError:
        return None


def cached_arrays(config, key: str, make) -> dict[str, np.ndarray]:
    """``make()`` (a dict of numpy arrays) stored under ``key`` in the experiment's cache.

    Attacks that optimise (on a surrogate model) are cached so that every run of the same
    experiment sees bit-identical poisons, and the pipeline's content-keyed stages downstream
    stay warm.
    """
    store = attack_store(config)
    if store is None:
        return make()
    entry = store.get(key)
    if entry is None:
        with store.lock(key):
            entry = store.get(key)
            if entry is None:
                arrays = make()
                store.put(key, arrays, {})
                return arrays
    return entry.arrays


def surrogate_seed(seed: int) -> int:
    """The surrogate's seed: drawn from the experiment's seed, but not the victim model's own."""
    return int(np.random.default_rng([seed, 29]).integers(2**31 - 1))


def surrogate_model(config, data: ImageData, model_name: str | None = None) -> nn.Module:
    """The attacker's model: the pipeline's recipe (architecture, epochs, learning rate, batch size,
    weight decay) trained on the CLEAN training set from a different seeded initialisation.
    Cached by the training data and the recipe."""
    name = model_name or config.model
    seed = surrogate_seed(config.seed)
    epochs, lr = config.epochs or DEFAULT_EPOCHS[name], config.lr or DEFAULT_LR[name]
    recipe = {"model": name, "epochs": epochs, "lr": lr, "batch_size": config.batch_size,
              "weight_decay": config.weight_decay, "label_smoothing": config.label_smoothing, "seed": seed}
    device = resolve_device(config.device)

    def new():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(name, data.num_classes, *channel_stats(data.x_train))

    def make():
        model = train_model(new(), data.x_train, data.y_train, epochs=epochs, lr=lr, batch_size=config.batch_size,
                            weight_decay=config.weight_decay, label_smoothing=config.label_smoothing, seed=seed,
                            device=device, augment=name == "resnet18",
                            optimizer="adam" if name == "cnn" else "sgd")
        return state_to_arrays(model)

    key = content_key("surrogate", recipe, array_fingerprint(data.x_train, data.y_train))
    return arrays_to_model(new(), cached_arrays(config, key, make)).to(device)
