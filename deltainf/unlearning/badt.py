"""Bad-teacher distillation (Chundawat et al. 2023)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..options import option
from . import UnlearnInput, backed_off, batches, kl, register


@dataclass(frozen=True)
class BadTSettings:
    badt_epochs: int = option(2, "BadT: epochs over one shuffled stream of all points", low=1)
    badt_lr_share: float = option(0.25, "BadT: share of the training learning rate", kind="positive")
    badt_temperature: float = option(1.0, "BadT: distillation temperature", kind="positive")


@register("badt", label="BadT", order=4, settings=BadTSettings, version=2)  # 2: backs off on the held-out slice
def bad_teacher(inputs: UnlearnInput, s: BadTSettings) -> nn.Module:
    """BadT: distil the trained model on retained points and a random (incompetent) teacher on flagged points.

    One shuffled stream of both, for a few epochs. Past ``max_damage`` on the held-out slice it backs off to
    half the learning rate, three times at most, then leaves the model as it was."""
    attempts = [{"lr_share": s.badt_lr_share / 2 ** i} for i in range(4)]
    return backed_off(inputs, attempts, lambda a: _bad_teacher(inputs, s, a["lr_share"]))


def _bad_teacher(inputs: UnlearnInput, s: BadTSettings, lr_share: float) -> nn.Module:
    good = copy.deepcopy(inputs.model).to(inputs.device).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(inputs.seed + 1)
        bad = copy.deepcopy(inputs.recipe.new_model()).to(inputs.device).eval()
        for m in bad.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    student = copy.deepcopy(inputs.model).to(inputs.device)
    _, rest = inputs.holdout()
    stream = np.sort(np.concatenate([rest, np.flatnonzero(inputs.flagged)]))
    x, _ = inputs.tensors(stream)
    is_forget = torch.as_tensor(inputs.flagged[stream], device=inputs.device)
    opt = inputs.optimizer(student, lr_share)
    gen = torch.Generator().manual_seed(inputs.seed)
    for epoch in range(s.badt_epochs):
        student.train()
        for idx in batches(len(x), inputs.recipe.batch_size, gen):
            with torch.no_grad():
                target = torch.where(is_forget[idx, None], bad(x[idx]), good(x[idx]))
            loss = kl(student(x[idx]), target, s.badt_temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        inputs.progress("unlearn badt", epoch + 1, s.badt_epochs)
    return student.eval()
