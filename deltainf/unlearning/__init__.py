"""Unlearning methods, one file each, registered in :data:`UNLEARNERS`; the re-check and the until-clean loop
(``recheck.py``), and the stage that runs them for an investigation (``stage.py``).

A method is ``fn(inputs: UnlearnInput, settings) -> nn.Module``: it removes the flagged training points
from the trained (poisoned) model. Its ``version`` (default 1) is part of its results' cache keys: bump it
when the method changes; ``from_scratch=True`` marks one that trains a new model (EU) rather than changing
the trained one, which the re-check reads differently. All use shuffled seeded mini-batches and count epochs
as full passes over the data they iterate (never steps called epochs). None of them sees ground truth.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.training import Recipe, predict_logits, to_float
from ..progress import ProgressFn, silent
from ..registry import Registry
from ..seeds import seeded

UNLEARNERS = Registry("unlearning method")
register = UNLEARNERS.register


@dataclass
class UnlearnInput:
    """What an unlearning method may use: the trained model, the training set, which points to forget,
    and the recipe that trains this architecture (for retraining and fine-tuning). A method that can harm the
    model checks itself on :meth:`holdout` (never the test set), backs off past ``max_damage``, and writes
    what it chose into ``notes``."""

    model: nn.Module
    x: torch.Tensor        # training images, uint8 (N, 3, H, W)
    y: torch.Tensor        # training labels (N,)
    flagged: np.ndarray    # bool (N,): the points to forget
    recipe: Recipe
    progress: ProgressFn = silent
    max_damage: float = 0.015  # the most accuracy a method may cost on the held-out slice
    notes: dict = field(default_factory=dict)
    _holdout: np.ndarray | None = field(default=None, init=False, repr=False)
    _right_before: np.ndarray | None = field(default=None, init=False, repr=False)

    def holdout(self) -> tuple[np.ndarray, np.ndarray]:
        """(held-out slice, the rest) of the retained points; the method's own updates never see the slice. A
        seeded sample from each class (10 % of the retained points, at most 500, at least 10 a class where there
        are that many), so a class whose points are mostly flagged is still measured."""
        if self._holdout is None:
            labels, retained = self.y.numpy(), ~self.flagged
            n = max(1, min(500, int(retained.sum()) // 10))
            rng = seeded(self.seed, "unlearning holdout")
            picks = []
            for c, share in enumerate(np.bincount(labels) / len(labels)):
                of_c = np.flatnonzero(retained & (labels == c))
                if len(of_c):
                    size = min(max(1, len(of_c) // 2), max(10, round(n * share)))
                    picks.append(rng.choice(of_c, size=size, replace=False))
            self._holdout = np.sort(np.concatenate(picks))
        return self._holdout, np.setdiff1d(np.flatnonzero(~self.flagged), self._holdout)

    def damage(self, model: nn.Module) -> float:
        """Accuracy ``model`` lost against the trained model on the held-out slice: per class, weighted as the
        classes are in the training set — the drop a balanced test set would see."""
        idx = self.holdout()[0]
        labels = self.y.numpy()[idx]
        x = self.x[torch.as_tensor(idx)]
        if self._right_before is None:  # the trained model's answers, asked once for every attempt
            self._right_before = np.asarray(predict_logits(self.model, x, self.device)).argmax(1) == labels
        before = self._right_before
        after = np.asarray(predict_logits(model, x, self.device)).argmax(1) == labels
        share = np.bincount(self.y.numpy(), minlength=int(labels.max()) + 1) / len(self.y)
        classes = np.unique(labels)
        drop = np.array([before[labels == c].mean() - after[labels == c].mean() for c in classes])
        return float(share[classes] @ drop / share[classes].sum())

    @property
    def device(self) -> torch.device:
        return self.recipe.device

    @property
    def seed(self) -> int:
        return self.recipe.seed

    def tensors(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [0, 1] and labels of the points ``idx``, on the device."""
        t = torch.as_tensor(idx, dtype=torch.long)
        return to_float(self.x[t], self.device), self.y[t].to(self.device)

    def optimizer(self, model: nn.Module, share: float) -> torch.optim.Optimizer:
        """The recipe's optimiser at ``share`` of its learning rate (Adam, or SGD with momentum)."""
        if self.recipe.optimizer == "adam":
            return torch.optim.Adam(model.parameters(), lr=self.recipe.lr * share)
        return torch.optim.SGD(model.parameters(), lr=self.recipe.lr * share, momentum=0.9)


def backed_off(inputs: UnlearnInput, attempts: list[dict], run) -> nn.Module:
    """``run(attempt)`` for each attempt in turn (from the method's settings to gentler ones) until one costs at
    most ``max_damage`` on the held-out slice. When none does, the model is left as it was (and the re-check says
    the backdoor lives). Notes what was chosen."""
    for n, attempt in enumerate(attempts, 1):
        model = run(attempt)
        damage = inputs.damage(model)
        if damage <= inputs.max_damage:
            inputs.notes.update(attempt, damage=round(float(damage), 4), attempts=n)
            return model
    inputs.notes.update(attempts=len(attempts), damage=0.0, left_as_it_was=True,
                        least_damage_tried=round(float(damage), 4))
    return copy.deepcopy(inputs.model).eval()


def from_scratch(method: str) -> bool:
    """Whether ``method`` trains a new model without the forgotten points (EU) instead of changing the trained one."""
    return bool(UNLEARNERS[method].attrs.get("from_scratch", False))


def exact_method() -> str:
    """The registered method that retrains from scratch (EU): the re-check's reference, where escalation goes."""
    return next(name for name in UNLEARNERS if from_scratch(name))


def batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A shuffled pass over ``n`` items in mini-batches."""
    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened outputs, scaled by T² (Hinton et al.)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, -1), F.softmax(teacher_logits / temperature, -1),
                    reduction="batchmean") * temperature ** 2


UNLEARNERS.discover(__name__, __path__)
