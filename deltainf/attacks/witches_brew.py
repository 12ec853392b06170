"""Witches' Brew (Geiping et al., ICLR 2021): clean-label poisoning by gradient matching.

The attacker picks an adversarial class and one target test image of another class: of the test images its
clean surrogate classifies correctly, the one it puts closest to the adversarial class (``brew_target_pool``
widens this to a seeded draw), so a flip is the attack's doing. ``poison_count`` training images OF THE
ADVERSARIAL CLASS (labels unchanged) get perturbations δ with ‖δ‖∞ ≤ ε chosen so that the training gradient on
the poisons points the same way (cosine) as the gradient of the adversarial loss — the target image labelled
with the adversarial class — on a surrogate model trained on the clean data with the experiment's recipe.
Training on the poisons then moves the model towards misclassifying the target. ε (``brew_eps``) is 16/255 as
Geiping et al. set it for CIFAR and ImageNet, or the data source's own: the built-in digits have 17 grey levels,
one of them 16/255, and get 40/255. Optimisation as in the paper: signed Adam steps with step drops at 3/8, 5/8
and 7/8 of the budget, projection onto the ε-ball and the valid pixel range, ``brew_restarts`` random starts,
the one with the lowest matching loss kept.

Bookkeeping: ``victim`` is the target image's true class, ``target`` the adversarial class; the
"triggered test set" is the single unmodified target image (``x_trigger_test`` of length 1), so
poison success is 1.0 when the trained model sends it to the adversarial class. ``trigger_mask``
is all False (nothing is written at test time) and ``trigger_pattern`` shows the first poison's
perturbation offset-encoded (``pattern.int() - 128`` = δ in grey levels).

The brewed poisons are cached, so every run of an experiment sees bit-identical data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageData
from ..errors import ConfigError
from ..models.features import embeddings
from ..models.training import predict_logits, to_float
from ..options import option
from ..seeds import seeded
from ..store import array_fingerprint, content_key
from . import (Attack, AttackContext, Poisoned, default_poison_count, register, source_default, stretched_difference,
               victim_and_target)

STEP_SIZE = 0.25     # Adam learning rate as a fraction of ε
NATURAL_EPS = 16 / 255
ALGORITHM_VERSION = 2  # bump when brewing changes (brewed poisons are cached by it)


@dataclass(frozen=True)
class BrewSettings:
    brew_eps: float | None = option(None, "Witches' Brew: L∞ budget of each perturbation, in [0, 1] pixel units "
                                          "(default: 16/255, or the dataset's own: 40/255 on the built-in digits)",
                                    kind="probability")
    brew_steps: int = option(150, "Witches' Brew: signed-Adam steps per restart (Geiping et al. use 240)", low=1)
    brew_restarts: int = option(2, "Witches' Brew: random restarts; the lowest matching loss wins", low=1)
    brew_target_pool: int = option(1, "Witches' Brew: the target is a seeded draw from this many test images of the "
                                      "victim class the surrogate puts closest to the adversarial class (1: the "
                                      "closest, the attacker's easiest)", low=1)
    brew_ensemble: int = option(1, "Witches' Brew: surrogate models the gradients are matched on (Geiping et al.: 1–8)",
                                low=1)


def _flat_norm(grads) -> torch.Tensor:
    return torch.sqrt(sum((g * g).sum() for g in grads))


def brew(models: nn.Module | list[nn.Module], x_poison: torch.Tensor, y_poison: torch.Tensor, x_target: torch.Tensor,
         adv_class: int, *, eps: float = 16 / 255, steps: int = 150, restarts: int = 2,
         seed: int = 0) -> tuple[torch.Tensor, float]:
    """Gradient-matching perturbations for uint8 poisons. Returns (perturbed uint8 poisons, best loss).

    Matching loss: 1 − cos(∇θ CE(poisons + δ, their labels), ∇θ CE(target, adversarial class)),
    averaged over ``models`` (one surrogate, or an ensemble). ``x_target``: one image (C, H, W), or a batch whose mean
    loss is matched (Sleeper Agent's triggered images).
    """
    models = models if isinstance(models, (list, tuple)) else [models]
    device = next(models[0].parameters()).device
    x0 = to_float(x_poison, device)
    y = y_poison.to(device)
    xt = to_float(x_target if x_target.dim() == 4 else x_target[None], device)
    yt = torch.full((len(xt),), adv_class, device=device)
    setups = []
    for model in models:
        model.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        target_grad = [g.detach() for g in torch.autograd.grad(F.cross_entropy(model(xt), yt), params)]
        setups.append((model, params, target_grad, _flat_norm(target_grad)))

    def matching_loss(delta):
        total = 0.0
        for model, params, target_grad, target_norm in setups:
            grads = torch.autograd.grad(F.cross_entropy(model(x0 + delta), y), params, create_graph=True)
            dot = sum((g * t).sum() for g, t in zip(grads, target_grad))
            total = total + 1 - dot / (_flat_norm(grads) * target_norm + 1e-12)
        return total / len(setups)

    gen = torch.Generator().manual_seed(seed)
    best_delta, best_loss = None, float("inf")
    for _ in range(restarts):
        delta = ((torch.rand(x0.shape, generator=gen) * 2 - 1) * eps).to(device)
        delta = ((x0 + delta).clamp(0, 1) - x0).requires_grad_(True)
        opt = torch.optim.Adam([delta], lr=STEP_SIZE * eps)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps * 3 // 8, steps * 5 // 8, steps * 7 // 8], 0.1)
        for _ in range(steps):
            loss = matching_loss(delta)
            delta.grad = torch.autograd.grad(loss, delta)[0].sign()
            opt.step()
            sched.step()
            with torch.no_grad():
                delta.clamp_(-eps, eps)
                delta.copy_((x0 + delta).clamp(0, 1) - x0)
        final = float(matching_loss(delta).detach())
        if final < best_loss:
            best_loss, best_delta = final, delta.detach().clone()
    return grey_levels_within(x0 + best_delta, x_poison, eps), best_loss


def grey_levels_within(x: torch.Tensor, original: torch.Tensor, eps: float) -> torch.Tensor:
    """Perturbed float images ``x`` in [0, 1] back to uint8, within ε of the uint8 ``original`` (rounding keeps
    |δ| ≤ ε, as the original is on the grid; the clamp guards against float slop)."""
    out = (x.detach() * 255).round().clamp(0, 255).to(torch.int16).cpu()
    lim, base = int(eps * 255 + 1e-6), original.to(torch.int16)
    return torch.maximum(torch.minimum(out, base + lim), base - lim).clamp(0, 255).to(torch.uint8)


def dataset_eps(name: str) -> float:
    """The perturbation budget on the data source ``name``: its own ``brew_eps``, else Geiping et al.'s 16/255."""
    return float(source_default(None, name, "brew_eps", NATURAL_EPS))


def pick_target(model: nn.Module, data: ImageData, adv: int, victim: int | None, seed: int, device,
                pool_size: int = 1) -> int:
    """Index into ``data.x_test`` of the target image: among the test images of class ``victim`` (any
    class but ``adv`` when None) that the surrogate classifies correctly, a seeded draw from the
    ``pool_size`` closest to the adversarial class (largest logit[adv] − max other logit)."""
    y = data.y_test.numpy()
    logits = predict_logits(model, data.x_test, device)
    others = logits.clone()
    others[:, adv] = -torch.inf
    margin = (logits[:, adv] - others.max(1).values).numpy()
    ok = (logits.argmax(1).numpy() == y) & (y != adv)
    if victim is not None:
        ok &= y == victim
    cands = np.flatnonzero(ok)
    if len(cands) == 0:  # the surrogate gets none right: fall back to any image of the class
        cands = np.flatnonzero((y == victim) if victim is not None else (y != adv))
    if len(cands) == 0:
        raise ConfigError(f"class {victim} has no test images to pick the Witches' Brew target from")
    pool = cands[np.argsort(-margin[cands], kind="stable")][:pool_size]
    return int(seeded(seed, "brew target").choice(pool))


def pick_poisons(model: nn.Module, data: ImageData, adv: int, x_target: torch.Tensor, count: int, device) -> torch.Tensor:
    """Sorted indices of the ``count`` adversarial-class training images nearest the target in the
    surrogate's last hidden layer: their gradients are the easiest to bend towards the target's."""
    adv_idx = torch.nonzero(data.y_train == adv).flatten().numpy()
    e = embeddings(model, data.x_train[adv_idx], device)
    et = embeddings(model, x_target[None], device)
    dist = ((e - et) ** 2).sum(1)
    return torch.from_numpy(np.sort(adv_idx[np.argsort(dist, kind="stable")[:count]])).long()


@register("witches_brew", label="Witches' Brew", order=2, settings=BrewSettings)
class WitchesBrew(Attack):
    """Witches' Brew: clean-label. Target-class images get invisible ε-bounded perturbations (gradient matching) so
    that one chosen test image of another class goes to the target."""

    def poison(self, data: ImageData, ctx: AttackContext, s: BrewSettings) -> Poisoned:
        _, adv = victim_and_target(ctx, data.num_classes)
        adv_idx = torch.nonzero(data.y_train == adv).flatten()
        count = ctx.poison_count if ctx.poison_count is not None else default_poison_count(len(data.y_train),
                                                                                             len(adv_idx))
        if count > len(adv_idx):
            raise ConfigError(f"--poison-count {count} exceeds the {len(adv_idx)} training images of adversarial "
                              f"class {adv}")
        eps = s.brew_eps if s.brew_eps is not None else dataset_eps(data.name)
        device = ctx.surrogates.device
        model = ctx.surrogates.model(data)
        target_idx = pick_target(model, data, adv, ctx.victim, ctx.seed, device, s.brew_target_pool)
        victim = int(data.y_test[target_idx])
        x_target = data.x_test[target_idx]
        poison_idx = pick_poisons(model, data, adv, x_target, count, device)
        x_train = data.x_train.clone()
        if count:
            def make():
                models = [model] + [ctx.surrogates.model(data, member=m) for m in range(1, s.brew_ensemble)]
                for p in (p for m in models for p in m.parameters()):
                    p.requires_grad_(True)
                x, loss = brew(models, data.x_train[poison_idx], data.y_train[poison_idx], x_target, adv,
                               eps=eps, steps=s.brew_steps, restarts=s.brew_restarts,
                               seed=int(seeded(ctx.seed, "brew").integers(2**31 - 1)))
                return {"poisons": x.numpy(), "loss": np.array([loss])}

            key = content_key("witches-brew", ALGORITHM_VERSION, array_fingerprint(data.x_train, data.y_train, data.x_test),
                              ctx.seed, adv, count, target_idx, eps, s.brew_steps, s.brew_restarts, STEP_SIZE,
                              s.brew_ensemble, ctx.surrogates.recipe(data).key())
            x_train[poison_idx] = torch.from_numpy(np.array(ctx.surrogates.cached(key, make)["poisons"]))
        poisoned = ImageData(data.name, data.classes, x_train, data.y_train.clone(), data.x_test, data.y_test,
                             data.train_paths)
        h, w = data.image_shape[1:]
        pattern = torch.full(data.image_shape, 128, dtype=torch.uint8)
        if count:
            first = poison_idx[0]
            pattern = (x_train[first].to(torch.int16) - data.x_train[first].to(torch.int16) + 128).clamp(0, 255).to(torch.uint8)
        return Poisoned(poisoned, poison_idx, victim, adv, x_target[None].clone(), torch.tensor([target_idx]),
                        torch.zeros(h, w, dtype=torch.bool), pattern)

    def preview(self, sample, settings: BrewSettings, seed: int, dataset: str):
        eps = round((settings.brew_eps if settings.brew_eps is not None else dataset_eps(dataset)) * 255)
        noise = seeded(seed, "brew preview").choice([-eps, eps], size=tuple(sample.shape))
        delta = torch.from_numpy((128 + noise * 127 / eps).astype(np.uint8))
        triggered = (sample.to(torch.int16) + torch.from_numpy(noise).to(torch.int16)).clamp(0, 255).to(torch.uint8)
        return [delta, triggered], [f"a ±{eps}/255 perturbation (stretched)", "added: hard to see"]

    def picture(self, clean: ImageData, poisoned: Poisoned):
        if len(poisoned.poison_idx) == 0:
            return [], []
        i = int(poisoned.poison_idx[0])
        classes = clean.classes
        stretched, m = stretched_difference(poisoned.data.x_train[i], clean.x_train[i])
        return [poisoned.x_trigger_test[0], stretched, poisoned.data.x_train[i]], [
            f"test image #{int(poisoned.trigger_test_idx[0])} ({classes[poisoned.victim]}) to send to "
            f"{classes[poisoned.target]}", f"#{i}'s perturbation (±{m}/255, stretched)",
            f"#{i} poisoned, still labelled {classes[int(poisoned.data.y_train[i])]}"]
