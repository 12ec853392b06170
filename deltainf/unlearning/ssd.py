"""Selective synaptic dampening (Foster et al. 2024)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.training import accuracy
from ..options import option
from . import UnlearnInput, register


@dataclass(frozen=True)
class SSDSettings:
    ssd_alpha: float | None = option(None, "SSD selection threshold α (default: picked from --ssd-alphas)",
                                     kind="positive")
    ssd_lambda: float = option(1.0, "SSD dampening constant λ", kind="positive")
    ssd_alphas: tuple[float, ...] = option((1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
                                           "SSD: the α searched when none is given", cli=False)


def importances(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Diagonal Fisher importances: the mean over mini-batches of squared loss gradients, per parameter."""
    params = {n: p for n, p in model.named_parameters()}
    imp = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    batches = range(0, len(y), batch_size)
    for start in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[start:start + batch_size]), y[start:start + batch_size]).backward()
        for n, p in params.items():
            if p.grad is not None:
                imp[n] += p.grad.detach() ** 2
    return {n: v / max(1, len(batches)) for n, v in imp.items()}


@torch.no_grad()
def dampen(model: nn.Module, imp_retain: dict, imp_forget: dict, alpha: float, lam: float) -> nn.Module:
    """Scale down parameters far more important to the forget set than to the retained set:
    where imp_f > α·imp_r, θ ← θ · min(λ·imp_r / imp_f, 1)."""
    for n, p in model.named_parameters():
        r, f = imp_retain[n], imp_forget[n]
        selected = f > alpha * r
        beta = torch.clamp(lam * r / f.clamp_min(1e-30), max=1.0)
        p.mul_(torch.where(selected, beta, torch.ones_like(beta)))
    return model


@register("ssd", label="SSD", order=2, settings=SSDSettings, version=2)  # 2: backs off on the held-out slice
def selective_synaptic_dampening(inputs: UnlearnInput, s: SSDSettings) -> nn.Module:
    """SSD: dampen the parameters far more important to the flagged points than to the retained ones.

    α is picked on a held-out slice of the retained training points (never the test set): the best forgetting
    among the α that cost at most ``max_damage`` there; when none does, the model is left as it was (and the
    re-check says the backdoor lives)."""
    forget = np.flatnonzero(inputs.flagged)
    _, rest = inputs.holdout()
    model = copy.deepcopy(inputs.model).to(inputs.device)
    if len(forget) == 0:
        return model
    xr, yr = inputs.tensors(rest)
    xf, yf = inputs.tensors(forget)
    imp_r, imp_f = importances(model, xr, yr), importances(model, xf, yf)
    alphas = (s.ssd_alpha,) if s.ssd_alpha is not None else s.ssd_alphas
    best, best_score, chosen = model, -np.inf, {"alpha": None, "damage": 0.0}
    for i, alpha in enumerate(alphas):
        candidate = dampen(copy.deepcopy(model), imp_r, imp_f, alpha, s.ssd_lambda)
        damage = inputs.damage(candidate)
        score = -damage - accuracy(candidate, xf, yf.cpu(), inputs.device)
        if damage <= inputs.max_damage and score > best_score:
            best, best_score, chosen = candidate, score, {"alpha": alpha, "damage": round(float(damage), 4)}
        inputs.progress("unlearn ssd", i + 1, len(alphas))
    inputs.notes.update(chosen, **({"left_as_it_was": True} if chosen["alpha"] is None else {}))
    return best.eval()
