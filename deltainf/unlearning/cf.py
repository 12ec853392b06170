"""Continued fine-tuning on the retained points."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from torch import nn

from ..data.stream import take
from ..options import option
from . import UnlearnInput, register


@dataclass(frozen=True)
class CFSettings:
    cf_epoch_share: float = option(0.5, "CF: this share of the training epochs", kind="positive")
    cf_lr_factor: float = option(3.0, "CF: one-cycle peak at this multiple of the training learning rate "
                                      "(a gentler rate leaves BadNet backdoors in place)", kind="positive")


@register("cf", label="CF", order=1, settings=CFSettings)
def continued_finetuning(inputs: UnlearnInput, s: CFSettings) -> nn.Module:
    """CF: fine-tune the trained model on the retained points (half the epochs, one-cycle peak at 3× the LR)."""
    keep = np.flatnonzero(~inputs.flagged)
    r = inputs.recipe
    return r.train(take(inputs.x, keep), inputs.y[keep], init=copy.deepcopy(inputs.model),
                   epochs=max(1, round(s.cf_epoch_share * r.epochs)), lr=s.cf_lr_factor * r.lr,
                   progress=inputs.progress, stage="unlearn cf")
