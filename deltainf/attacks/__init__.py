"""Poisoning attacks, one file each, registered in :data:`ATTACKS`: BadNet, the smooth frequency trigger and
Witches' Brew. They belong to experiments: an investigation never knows which attack, if any, it faces.

An attack is a class with ``poison(data, ctx, settings) -> Poisoned`` (the poisoned training set and its
ground truth), ``preview(sample, settings, seed, dataset)`` (a picture before anything is trained, for the
chosen data source) and
``picture(clean, poisoned)`` (this experiment's trigger), the last two as (uint8 images, captions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data import SOURCES, ImageData
from ..errors import ConfigError
from ..registry import Registry
from ..seeds import seeded
from .surrogate import Surrogates

ATTACKS = Registry("attack")
register = ATTACKS.register


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


@dataclass
class AttackContext:
    """What an attack may use besides the data and its settings: the seed, the classes and poison count
    asked for (None: drawn / the default), and the attacker's clean surrogate models (cached)."""

    seed: int
    victim: int | None
    target: int | None
    poison_count: int | None
    surrogates: Surrogates


class Attack:
    """Base class of the registered attacks."""

    def poison(self, data: ImageData, ctx: AttackContext, settings) -> Poisoned:
        raise NotImplementedError

    def preview(self, sample: torch.Tensor, settings, seed: int, dataset: str) -> tuple[list[torch.Tensor], list[str]]:
        """The trigger drawn on one clean uint8 image (3, H, W), before anything is trained or optimised, as it
        would be on the data source ``dataset``."""
        return [], []

    def picture(self, clean: ImageData, poisoned: Poisoned) -> tuple[list[torch.Tensor], list[str]]:
        """This experiment's trigger: uint8 images and their captions."""
        return [], []


def stretched_difference(poison: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(poison − clean, stretched to 0–255 around mid-grey; its largest |value| in grey levels)."""
    diff = poison.to(torch.int16) - clean.to(torch.int16)
    m = int(diff.abs().max()) or 1
    return (128 + diff.float() * 127 / m).round().clamp(0, 255).to(torch.uint8), m


def victim_and_target(ctx: AttackContext, num_classes: int) -> tuple[int, int]:
    """The classes asked for, or a pair drawn from the seed; checked against ``num_classes``."""
    for option, value in (("victim", ctx.victim), ("target", ctx.target)):
        if value is not None and not 0 <= value < num_classes:
            raise ConfigError(f"--{option} {value} is out of range: this dataset has classes 0..{num_classes - 1}")
    order = [int(c) for c in seeded(ctx.seed, "class pair").permutation(num_classes)]
    victim = ctx.victim if ctx.victim is not None else next(c for c in order if c != ctx.target)
    target = ctx.target if ctx.target is not None else next(c for c in order if c != victim)
    return victim, target


def source_default(value, dataset: str, name: str, fallback):
    """A setting's ``value``, or when it is None the data source ``dataset``'s own ``name`` (a registry attribute: the
    paper's setting scaled to its images), else ``fallback`` (the paper's)."""
    if value is not None:
        return value
    return SOURCES[dataset].attrs.get(name, fallback) if dataset in SOURCES else fallback


def default_poison_count(n_train: int, n_victim: int) -> int:
    """About 3.5 % of the training set, at most half the victim class."""
    return max(1, min(round(0.035 * n_train), n_victim // 2))


def seeded_poisons(ctx: AttackContext, data: ImageData, cls: int, role: str) -> torch.Tensor:
    """``poison_count`` (default :func:`default_poison_count`) training images of class ``cls`` drawn from the seed,
    sorted; ``role`` names the class in the message when there are too few."""
    of_class = torch.nonzero(data.y_train == cls).flatten()
    count = ctx.poison_count if ctx.poison_count is not None else default_poison_count(len(data.y_train), len(of_class))
    if count > len(of_class):
        raise ConfigError(f"--poison-count {count} exceeds the {len(of_class)} training images of {role} class {cls}")
    rng = seeded(ctx.seed, "poisons")
    return torch.from_numpy(np.sort(rng.choice(of_class.numpy(), size=count, replace=False))).long()


def relabel_with_trigger(ctx: AttackContext, data: ImageData, victim: int, target: int,
                         stamp: Callable[[torch.Tensor], torch.Tensor], trigger_mask: torch.Tensor,
                         trigger_pattern: torch.Tensor,
                         test_stamp: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Poisoned:
    """Dirty-label bookkeeping (BadNet, the frequency trigger, …): ``poison_count`` seeded victim-class training
    images get ``stamp`` (uint8 → uint8) and the target label; every victim-class test image with ``test_stamp``
    (default: ``stamp``) is the triggered test set."""
    poison_idx = seeded_poisons(ctx, data, victim, "victim")
    x_train, y_train = data.x_train.clone(), data.y_train.clone()
    x_train[poison_idx] = stamp(x_train[poison_idx])
    y_train[poison_idx] = target
    test_idx = torch.nonzero(data.y_test == victim).flatten()
    poisoned = ImageData(data.name, data.classes, x_train, y_train, data.x_test, data.y_test, data.train_paths)
    return Poisoned(poisoned, poison_idx, victim, target, (test_stamp or stamp)(data.x_test[test_idx]), test_idx,
                    trigger_mask, trigger_pattern)


def add_covers(poisoned: Poisoned, ctx: AttackContext, ratio: int, option: str,
               stamp: Callable[[torch.Tensor, np.random.Generator], torch.Tensor]) -> torch.Tensor:
    """Regularisation samples (WaNet's noise mode, Adaptive-Blend's covers): ``ratio`` seeded training images per
    poison, of any class, not poisons, get ``stamp(images, rng)`` in place and keep their labels; their indices.
    ``option`` names the ratio's flag in the message when there are too few images."""
    count = ratio * len(poisoned.poison_idx)
    others = np.setdiff1d(np.arange(len(poisoned.data.y_train)), poisoned.poison_idx.numpy())
    if count > len(others):
        raise ConfigError(f"{option} {ratio} asks for {count} images beside the poisons; there are {len(others)}")
    rng = seeded(ctx.seed, "covers")
    covers = torch.from_numpy(np.sort(rng.choice(others, count, replace=False))).long()
    if count:
        poisoned.data.x_train[covers] = stamp(poisoned.data.x_train[covers], rng)
    return covers


def trigger_on_target(ctx: AttackContext, data: ImageData, victim: int, target: int,
                      stamp: Callable[[torch.Tensor], torch.Tensor], test_stamp: Callable[[torch.Tensor], torch.Tensor],
                      trigger_mask: torch.Tensor, trigger_pattern: torch.Tensor) -> Poisoned:
    """Clean-label bookkeeping (SIG, label-consistent): ``poison_count`` seeded target-class training images get
    ``stamp`` (uint8 → uint8, the whole batch at once) and keep their label; every victim-class test image with
    ``test_stamp`` is the triggered test set."""
    poison_idx = seeded_poisons(ctx, data, target, "target")
    x_train = data.x_train.clone()
    if len(poison_idx):
        x_train[poison_idx] = stamp(x_train[poison_idx])
    test_idx = torch.nonzero(data.y_test == victim).flatten()
    poisoned = ImageData(data.name, data.classes, x_train, data.y_train.clone(), data.x_test, data.y_test,
                         data.train_paths)
    return Poisoned(poisoned, poison_idx, victim, target, test_stamp(data.x_test[test_idx]), test_idx, trigger_mask,
                    trigger_pattern)


def clean_label_picture(clean: ImageData, poisoned: Poisoned, first: torch.Tensor,
                        first_caption: str) -> tuple[list[torch.Tensor], list[str]]:
    """A clean-label trigger: ``first`` (the trigger itself), one poison's clean original, the poison."""
    i = int(poisoned.poison_idx[0])
    label = clean.classes[int(clean.y_train[i])]
    return [first, clean.x_train[i], poisoned.data.x_train[i]], [
        first_caption, f"#{i} clean ({label})", f"#{i} poisoned, still labelled {label}"]


def relabelled_picture(clean: ImageData, poisoned: Poisoned, first: torch.Tensor,
                       first_caption: str) -> tuple[list[torch.Tensor], list[str]]:
    """A dirty-label trigger: ``first`` (the trigger itself), one poison's clean original, the poison."""
    i = int(poisoned.poison_idx[0])
    classes = clean.classes
    return [first, clean.x_train[i], poisoned.data.x_train[i]], [
        first_caption, f"#{i} clean ({classes[int(clean.y_train[i])]})",
        f"#{i} poisoned, labelled {classes[int(poisoned.data.y_train[i])]}"]


ATTACKS.discover(__name__, __path__)
