"""Unlearning methods, one file each, registered in :data:`UNLEARNERS`, and the re-check loop
(``recheck.py``).

A method is ``fn(inputs: UnlearnInput, settings) -> nn.Module``: it removes the flagged training points
from the trained (poisoned) model. All use shuffled seeded mini-batches and count epochs as full passes
over the data they iterate (never steps called epochs). None of them sees ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.training import Recipe, to_float
from ..progress import ProgressFn, silent
from ..registry import Registry

UNLEARNERS = Registry("unlearning method")
register = UNLEARNERS.register


@dataclass
class UnlearnInput:
    """What an unlearning method may use: the trained model, the training set, which points to forget,
    and the recipe that trains this architecture (for retraining and fine-tuning)."""

    model: nn.Module
    x: torch.Tensor        # training images, uint8 (N, 3, H, W)
    y: torch.Tensor        # training labels (N,)
    flagged: np.ndarray    # bool (N,): the points to forget
    recipe: Recipe
    progress: ProgressFn = silent

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


def batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A shuffled pass over ``n`` items in mini-batches."""
    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened outputs, scaled by T² (Hinton et al.)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, -1), F.softmax(teacher_logits / temperature, -1),
                    reduction="batchmean") * temperature ** 2


UNLEARNERS.discover(__name__, __path__)
