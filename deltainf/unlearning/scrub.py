"""SCRUB (Kurmanji et al. 2023): teacher–student, forget-set ascent then retained-set descent."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..options import option
from . import UnlearnInput, backed_off, batches, kl, register


@dataclass(frozen=True)
class ScrubSettings:
    scrub_epochs: int = option(5, "SCRUB: epochs over the retained points", low=1)
    scrub_msteps: int = option(3, "SCRUB: the first this many epochs also ascend on the forget set", low=0)
    scrub_lr_share: float = option(0.25, "SCRUB: share of the training learning rate", kind="positive")
    scrub_temperature: float = option(4.0, "SCRUB: distillation temperature", kind="positive")
    scrub_kl_weight: float = option(1.0, "SCRUB: weight of the KL term on retained points", kind="finite")
    scrub_ce_weight: float = option(1.0, "SCRUB: weight of the cross-entropy on retained points", kind="finite")
    scrub_forget_batch_size: int = option(8, "SCRUB: batch size of the forget-set ascent", low=1)


@register("scrub", label="SCRUB", order=3, settings=ScrubSettings, version=2)  # 2: backs off on the held-out slice
def scrub(inputs: UnlearnInput, s: ScrubSettings) -> nn.Module:
    """SCRUB: a student leaves the teacher on the forget set, and stays close to it on the retained points.

    Ascent of the divergence on the forget set for the first ``scrub_msteps`` epochs; KL + CE descent on
    the retained set every epoch. Past ``max_damage`` on the held-out slice it backs off: half the learning
    rate and one ascent epoch fewer each time, down to no ascent (distillation on the retained points alone),
    then leaves the model as it was."""
    attempts = [{"lr_share": s.scrub_lr_share / 2 ** i, "msteps": s.scrub_msteps - i}
                for i in range(s.scrub_msteps + 1)]
    return backed_off(inputs, attempts, lambda a: _scrub(inputs, s, a["lr_share"], a["msteps"]))


def _scrub(inputs: UnlearnInput, s: ScrubSettings, lr_share: float, msteps: int) -> nn.Module:
    teacher = copy.deepcopy(inputs.model).to(inputs.device).eval()
    student = copy.deepcopy(inputs.model).to(inputs.device)
    _, rest = inputs.holdout()
    xr, yr = inputs.tensors(rest)
    xf, _ = inputs.tensors(np.flatnonzero(inputs.flagged))
    opt = inputs.optimizer(student, lr_share)
    gen = torch.Generator().manual_seed(inputs.seed)
    bs = inputs.recipe.batch_size
    for epoch in range(s.scrub_epochs):
        student.train()
        if epoch < msteps and len(xf):
            # max step: ascend the divergence on forget data
            for idx in batches(len(xf), s.scrub_forget_batch_size, gen):
                with torch.no_grad():
                    t = teacher(xf[idx])
                loss = -kl(student(xf[idx]), t, s.scrub_temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        for idx in batches(len(xr), bs, gen):  # min step: stay faithful on retained data
            with torch.no_grad():
                t = teacher(xr[idx])
            out = student(xr[idx])
            loss = (s.scrub_kl_weight * kl(out, t, s.scrub_temperature)
                    + s.scrub_ce_weight * F.cross_entropy(out, yr[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        inputs.progress("unlearn scrub", epoch + 1, s.scrub_epochs)
    return student.eval()
