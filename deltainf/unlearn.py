"""Unlearning methods as a registry: name → function ``(pipeline, flagged mask) -> model``.

All start from the same trained (poisoned) model or recipe, use shuffled seeded mini-batches, and
count epochs as full passes over the data they iterate (never steps called epochs):

- ``eu``: exact unlearning, retrain from scratch without the flagged points.
- ``cf``: continued fine-tuning of the trained model on the retained points.
- ``ssd``: selective synaptic dampening (Foster et al. 2024).
- ``scrub``: teacher–student, forget-set ascent then retained-set descent (Kurmanji et al. 2023).
- ``badt``: bad-teacher distillation (Chundawat et al. 2023).
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .train import accuracy, to_float

UNLEARNERS: dict[str, Callable] = {}

#: Per-method settings (epochs are full passes over the data each method iterates).
CF_EPOCH_SHARE = 0.5         # CF: this share of the training epochs ...
CF_LR_FACTOR = 3.0           # ... with a one-cycle peak at this multiple of the training learning rate
SSD_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0)  # SSD selection thresholds searched when --ssd-alpha is not given
SCRUB = {"epochs": 5, "msteps": 3, "lr_share": 0.25, "temperature": 4.0, "kl_weight": 1.0, "ce_weight": 1.0,
         "forget_batch_size": 8}
BADT = {"epochs": 2, "lr_share": 0.25, "temperature": 1.0}


def register(name: str):
    def deco(fn):
        UNLEARNERS[name] = fn
        return fn
    return deco


def method_settings(method: str, config) -> dict:
    """Everything besides the data that determines ``method``'s result (part of its cache key)."""
    return {"eu": {}, "cf": {"share": CF_EPOCH_SHARE, "lr": CF_LR_FACTOR}, "ssd": {"alpha": config.ssd_alpha, "lambda": config.ssd_lambda,
            "grid": SSD_ALPHAS}, "scrub": SCRUB, "badt": BADT}[method]


@register("eu")
def exact_unlearning(pipe, flagged: np.ndarray) -> nn.Module:
    """EU: retrain from scratch on the training set without the flagged points, same recipe and seed."""
    return pipe.train_on(np.flatnonzero(~flagged), stage="unlearn eu")


@register("cf")
def continued_finetuning(pipe, flagged: np.ndarray) -> nn.Module:
    """CF: fine-tune the trained model on the retained points for half the training epochs, one-cycle
    learning rate peaking at 3× the training rate (a gentler rate leaves BadNet backdoors in place)."""
    epochs = max(1, round(CF_EPOCH_SHARE * pipe.epochs))
    return pipe.train_on(np.flatnonzero(~flagged), stage="unlearn cf", init=copy.deepcopy(pipe.model), epochs=epochs,
                         lr=CF_LR_FACTOR * pipe.lr)


def _data(pipe, idx):
    p = pipe.poisoned.data
    t = torch.as_tensor(idx, dtype=torch.long)
    return to_float(p.x_train[t], pipe.device), p.y_train[t].to(pipe.device)


def _batches(n: int, batch_size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _optimizer(pipe, model: nn.Module, share: float):
    if pipe.config.model == "cnn":
        return torch.optim.Adam(model.parameters(), lr=pipe.lr * share)
    return torch.optim.SGD(model.parameters(), lr=pipe.lr * share, momentum=0.9)


def _kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened outputs, scaled by T² (Hinton et al.)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, -1), F.softmax(teacher_logits / temperature, -1),
                    reduction="batchmean") * temperature ** 2


# ------------------------------------------------------------------------------------------ SSD
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


@register("ssd")
def selective_synaptic_dampening(pipe, flagged: np.ndarray) -> nn.Module:
    """SSD: dampen forget-specific parameters; α picked on a held-out slice of the retained training points
    (maximise retained accuracy minus forget-set accuracy), never on the test set."""
    forget, retain = np.flatnonzero(flagged), np.flatnonzero(~flagged)
    rng = np.random.default_rng([pipe.config.seed, 23])
    val = rng.choice(retain, size=max(1, len(retain) // 10), replace=False)
    model = copy.deepcopy(pipe.model).to(pipe.device)
    if len(forget) == 0:
        return model
    xr, yr = _data(pipe, retain)
    xf, yf = _data(pipe, forget)
    xv, yv = _data(pipe, val)
    imp_r, imp_f = importances(model, xr, yr), importances(model, xf, yf)
    alphas = (pipe.config.ssd_alpha,) if pipe.config.ssd_alpha is not None else SSD_ALPHAS
    best, best_score = None, -np.inf
    for i, alpha in enumerate(alphas):
        candidate = dampen(copy.deepcopy(model), imp_r, imp_f, alpha, pipe.config.ssd_lambda)
        score = accuracy(candidate, xv, yv.cpu(), pipe.device) - accuracy(candidate, xf, yf.cpu(), pipe.device)
        if score > best_score:
            best, best_score = candidate, score
        pipe.progress("unlearn ssd", i + 1, len(alphas))
    return best.eval()


# ------------------------------------------------------------------------------------------ SCRUB
@register("scrub")
def scrub(pipe, flagged: np.ndarray) -> nn.Module:
    """SCRUB: the student (a copy of the trained model) moves away from the teacher on the forget set
    for the first ``msteps`` epochs, and stays close to it (KL + CE) on the retained set every epoch."""
    s = SCRUB
    teacher = copy.deepcopy(pipe.model).to(pipe.device).eval()
    student = copy.deepcopy(pipe.model).to(pipe.device)
    xr, yr = _data(pipe, np.flatnonzero(~flagged))
    xf, _ = _data(pipe, np.flatnonzero(flagged))
    opt = _optimizer(pipe, student, s["lr_share"])
    gen = torch.Generator().manual_seed(pipe.config.seed)
    bs = pipe.config.batch_size
    for epoch in range(s["epochs"]):
        student.train()
        if epoch < s["msteps"] and len(xf):
            for idx in _batches(len(xf), s["forget_batch_size"], gen):  # max step: ascend the divergence on forget data
                with torch.no_grad():
                    t = teacher(xf[idx])
                loss = -_kl(student(xf[idx]), t, s["temperature"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        for idx in _batches(len(xr), bs, gen):  # min step: stay faithful on retained data
            with torch.no_grad():
                t = teacher(xr[idx])
            out = student(xr[idx])
            loss = s["kl_weight"] * _kl(out, t, s["temperature"]) + s["ce_weight"] * F.cross_entropy(out, yr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        pipe.progress("unlearn scrub", epoch + 1, s["epochs"])
    return student.eval()


# ------------------------------------------------------------------------------------------ BadT
@register("badt")
def bad_teacher(pipe, flagged: np.ndarray) -> nn.Module:
    """BadT: distil the competent teacher on retained points and a randomly initialised (incompetent)
    teacher on flagged points, over one shuffled stream of both."""
    b = BADT
    good = copy.deepcopy(pipe.model).to(pipe.device).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(pipe.config.seed + 1)
        bad = copy.deepcopy(pipe.new_model()).to(pipe.device).eval()
        for m in bad.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    student = copy.deepcopy(pipe.model).to(pipe.device)
    x, _ = _data(pipe, np.arange(len(flagged)))
    is_forget = torch.as_tensor(flagged, device=pipe.device)
    opt = _optimizer(pipe, student, b["lr_share"])
    gen = torch.Generator().manual_seed(pipe.config.seed)
    for epoch in range(b["epochs"]):
        student.train()
        for idx in _batches(len(x), pipe.config.batch_size, gen):
            with torch.no_grad():
                target = torch.where(is_forget[idx, None], bad(x[idx]), good(x[idx]))
            loss = _kl(student(x[idx]), target, b["temperature"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        pipe.progress("unlearn badt", epoch + 1, b["epochs"])
    return student.eval()
