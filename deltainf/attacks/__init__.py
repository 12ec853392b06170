"""Poisoning attacks as a registry: name → function ``(config, data) -> Poisoned``.

Adding an attack is one module that calls :func:`register`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data import ImageData
from ..errors import ConfigError

ATTACKS: dict[str, Callable] = {}


def register(name: str):
    def deco(fn):
        ATTACKS[name] = fn
        return fn
    return deco


@dataclass
class Poisoned:
    """A poisoned training set with its ground truth and the test images that carry the trigger."""

    data: ImageData              # x_train / y_train already poisoned
    poison_idx: torch.Tensor     # sorted indices of poisoned training images
    victim: int
    target: int
    x_trigger_test: torch.Tensor  # victim-class test images with the trigger (uint8)
    trigger_test_idx: torch.Tensor  # their indices in data.x_test
    trigger_mask: torch.Tensor   # (H, W) bool: where the trigger writes
    trigger_pattern: torch.Tensor  # uint8 (3, H, W): what it writes there

    @property
    def is_poison(self) -> np.ndarray:
        mask = np.zeros(len(self.data.y_train), dtype=bool)
        mask[self.poison_idx.numpy()] = True
        return mask


def victim_and_target(config, num_classes: int) -> tuple[int, int]:
    """The configured classes, or a pair drawn from the seed; checked against ``num_classes``."""
    for option, value in (("victim", config.victim), ("target", config.target)):
        if value is not None and not 0 <= value < num_classes:
            raise ConfigError(f"--{option} {value} is out of range: this dataset has classes 0..{num_classes - 1}")
    order = [int(c) for c in np.random.default_rng([config.seed, 7]).permutation(num_classes)]
    victim = config.victim if config.victim is not None else next(c for c in order if c != config.target)
    target = config.target if config.target is not None else next(c for c in order if c != victim)
    return victim, target


def default_poison_count(n_train: int, n_victim: int) -> int:
    """About 3.5 % of the training set, at most half the victim class."""
    return max(1, min(round(0.035 * n_train), n_victim // 2))


def relabel_with_trigger(config, data: ImageData, victim: int, target: int, stamp: Callable[[torch.Tensor], torch.Tensor],
                         trigger_mask: torch.Tensor, trigger_pattern: torch.Tensor) -> Poisoned:
    """Dirty-label bookkeeping (BadNet, the frequency trigger): ``poison_count`` seeded victim-class training
    images get ``stamp`` (uint8 → uint8) and the target label; every victim-class test image, stamped,
    is the triggered test set."""
    victim_idx = torch.nonzero(data.y_train == victim).flatten()
    count = config.poison_count if config.poison_count is not None else default_poison_count(len(data.y_train), len(victim_idx))
    if count > len(victim_idx):
        raise ConfigError(f"--poison-count {count} exceeds the {len(victim_idx)} training images of victim class {victim}")
    rng = np.random.default_rng([config.seed, 13])
    poison_idx = torch.from_numpy(np.sort(rng.choice(victim_idx.numpy(), size=count, replace=False))).long()
    x_train, y_train = data.x_train.clone(), data.y_train.clone()
    x_train[poison_idx] = stamp(x_train[poison_idx])
    y_train[poison_idx] = target
    test_idx = torch.nonzero(data.y_test == victim).flatten()
    poisoned = ImageData(data.name, data.classes, x_train, y_train, data.x_test, data.y_test)
    return Poisoned(poisoned, poison_idx, victim, target, stamp(data.x_test[test_idx]), test_idx, trigger_mask,
                    trigger_pattern)


from . import badnet  # noqa: E402,F401  (registers)
from . import frequency, witches_brew  # noqa: E402,F401  (registers)
