"""Witches' Brew (Geiping et al., ICLR 2021): clean-label poisoning by gradient matching.

The attacker picks an adversarial class and one target test image of another class (both from
the seed; the target is one the attacker's clean surrogate classifies correctly, so a flip is the
attack's doing). ``poison_count`` training images OF THE ADVERSARIAL CLASS (labels unchanged) get
perturbations δ with ‖δ‖∞ ≤ ε (``EPS`` = 16/255) chosen so that the training gradient on the
poisons points the same way (cosine) as the gradient of the adversarial loss — the target image
labelled with the adversarial class — on a surrogate model trained on the clean data with the
pipeline's recipe. Training on the poisons then moves the model towards misclassifying the target.
Optimisation as in the paper: signed Adam steps with step drops at 3/8, 5/8 and 7/8 of the
budget, projection onto the ε-ball and the valid pixel range, ``RESTARTS`` random starts, the one
with the lowest matching loss kept.

Bookkeeping: ``victim`` is the target image's true class, ``target`` the adversarial class; the
"triggered test set" is the single unmodified target image (``x_trigger_test`` of length 1), so
poison success is 1.0 when the trained model sends it to the adversarial class. ``trigger_mask``
is all False (nothing is written at test time) and ``trigger_pattern`` shows the first poison's
perturbation offset-encoded (``pattern.int() - 128`` = δ in grey levels).

The module also holds the attacker's clean surrogate and a small content-addressed cache, which
the frequency trigger shares; the brewed poisons are cached, so every run of an experiment sees
bit-identical data.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cache import Store, array_fingerprint, content_key
from ..checkpoints import arrays_to_model, state_to_arrays
from ..data import ImageData
from ..device import numerics_tag, resolve_device
from ..errors import CacheError, ConfigError
from ..models import build_model, channel_stats
from ..train import DEFAULT_EPOCHS, DEFAULT_LR, predict_logits, to_float, train_model
from . import Poisoned, default_poison_count, register, victim_and_target

# Would-be config fields (--eps, --brew-steps, --brew-restarts):
EPS = 16 / 255       # L∞ budget of each perturbation, in [0, 1] pixel units
STEPS = 150          # signed-Adam steps per restart (Geiping et al. use 240)
RESTARTS = 2         # random restarts; the lowest matching loss wins
STEP_SIZE = 0.25     # Adam learning rate as a fraction of EPS
ENSEMBLE = 1         # surrogate models the gradients are matched on (Geiping et al.: 1–8)
TARGET_POOL = 5      # the target is drawn from the test images this close to the adversarial class
ALGORITHM_VERSION = 2  # bump when brewing changes (brewed poisons are cached by it)


def attack_store(config) -> Store | None:
    """The experiment's cache folder, or None when it cannot be opened (then nothing is cached)."""
    try:
        return Store(config.cache_path)
    except CacheError:
        return None


def cached_arrays(config, key: str, make) -> dict[str, np.ndarray]:
    """``make()`` (a dict of numpy arrays) stored under ``key`` in the experiment's cache.

    Attacks that optimise (on a surrogate model) are cached so that every run of the same
    experiment sees bit-identical poisons, and the pipeline's content-keyed stages downstream
    stay warm.
    """
    store = attack_store(config)
    if store is None:
        return make()
    entry = store.get(key)
    if entry is None:
        with store.lock(key):
            entry = store.get(key)
            if entry is None:
                arrays = make()
                store.put(key, arrays, {})
                return arrays
    return entry.arrays


def surrogate_seed(seed: int, member: int = 0) -> int:
    """The surrogate's seed: drawn from the experiment's seed, but not the victim model's own."""
    return int(np.random.default_rng([seed, 29, member]).integers(2**31 - 1))


def surrogate_model(config, data: ImageData, model_name: str | None = None, member: int = 0) -> nn.Module:
    """The attacker's model: the pipeline's recipe (architecture, epochs, learning rate, batch size,
    weight decay) trained on the CLEAN training set from a different seeded initialisation
    (``member`` numbers the models of an ensemble). Cached by the training data and the recipe."""
    name = model_name or config.model
    seed = surrogate_seed(config.seed, member)
    same = name == config.model  # the configured epochs/lr belong to the configured architecture
    epochs = (config.epochs if same else None) or DEFAULT_EPOCHS[name]
    lr = (config.lr if same else None) or DEFAULT_LR[name]
    recipe = {"model": name, "epochs": epochs, "lr": lr, "batch_size": config.batch_size,
              "weight_decay": config.weight_decay, "label_smoothing": config.label_smoothing, "seed": seed}
    device = resolve_device(config.device)
    if numerics_tag(device):
        recipe["numerics"] = numerics_tag(device)

    def new():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(name, data.num_classes, *channel_stats(data.x_train))

    def make():
        model = train_model(new(), data.x_train, data.y_train, epochs=epochs, lr=lr, batch_size=config.batch_size,
                            weight_decay=config.weight_decay, label_smoothing=config.label_smoothing, seed=seed,
                            device=device, augment=name == "resnet18",
                            optimizer="adam" if name == "cnn" else "sgd")
        return state_to_arrays(model)

    key = content_key("surrogate", recipe, array_fingerprint(data.x_train, data.y_train))
    return arrays_to_model(new(), cached_arrays(config, key, make)).to(device)


def _flat_norm(grads) -> torch.Tensor:
    return torch.sqrt(sum((g * g).sum() for g in grads))


def brew(models: nn.Module | list[nn.Module], x_poison: torch.Tensor, y_poison: torch.Tensor, x_target: torch.Tensor,
         adv_class: int, *, eps: float | None = None, steps: int | None = None, restarts: int | None = None,
         seed: int = 0) -> tuple[torch.Tensor, float]:
    """Gradient-matching perturbations for uint8 poisons. Returns (perturbed uint8 poisons, best loss).

    Matching loss: 1 − cos(∇θ CE(poisons + δ, their labels), ∇θ CE(target, adversarial class)),
    averaged over ``models`` (one surrogate, or an ensemble). ``eps``, ``steps`` and ``restarts``
    default to the module's ``EPS``, ``STEPS`` and ``RESTARTS``.
    """
    eps = EPS if eps is None else eps
    steps = STEPS if steps is None else steps
    restarts = RESTARTS if restarts is None else restarts
    models = models if isinstance(models, (list, tuple)) else [models]
    device = next(models[0].parameters()).device
    x0 = to_float(x_poison, device)
    y = y_poison.to(device)
    xt = to_float(x_target[None], device)
    yt = torch.tensor([adv_class], device=device)
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
    poisoned = ((x0 + best_delta) * 255).round().clamp(0, 255).to(torch.int16).cpu()
    # Rounding to grey levels keeps |δ| ≤ ε (x0 is on the grid); clamp anyway against float slop.
    lo = x_poison.to(torch.int16) - int(eps * 255 + 1e-6)
    hi = x_poison.to(torch.int16) + int(eps * 255 + 1e-6)
    poisoned = torch.maximum(torch.minimum(poisoned, hi), lo).clamp(0, 255).to(torch.uint8)
    return poisoned, best_loss


def pick_target(model: nn.Module, data: ImageData, adv: int, victim: int | None, seed: int, device) -> int:
    """Index into ``data.x_test`` of the target image: among the test images of class ``victim`` (any
    class but ``adv`` when None) that the surrogate classifies correctly, a seeded draw from the
    ``TARGET_POOL`` closest to the adversarial class (largest logit[adv] − max other logit)."""
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
    pool = cands[np.argsort(-margin[cands], kind="stable")][:TARGET_POOL]
    return int(np.random.default_rng([seed, 31]).choice(pool))


def pick_poisons(model: nn.Module, data: ImageData, adv: int, x_target: torch.Tensor, count: int, device) -> torch.Tensor:
    """Sorted indices of the ``count`` adversarial-class training images nearest the target in the
    surrogate's last hidden layer: their gradients are the easiest to bend towards the target's."""
    from ..baselines import embeddings

    adv_idx = torch.nonzero(data.y_train == adv).flatten().numpy()
    e = embeddings(model, data.x_train[adv_idx], device)
    et = embeddings(model, x_target[None], device)
    dist = ((e - et) ** 2).sum(1)
    return torch.from_numpy(np.sort(adv_idx[np.argsort(dist, kind="stable")[:count]])).long()


@register("witches_brew")
def witches_brew(config, data: ImageData) -> Poisoned:
    """Clean-label gradient matching: ``poison_count`` adversarial-class images perturbed within ε so that
    one target test image goes to the adversarial class."""
    _, adv = victim_and_target(config, data.num_classes)
    adv_idx = torch.nonzero(data.y_train == adv).flatten()
    count = config.poison_count if config.poison_count is not None else default_poison_count(len(data.y_train), len(adv_idx))
    if count > len(adv_idx):
        raise ConfigError(f"--poison-count {count} exceeds the {len(adv_idx)} training images of adversarial class {adv}")
    device = resolve_device(config.device)
    model = surrogate_model(config, data)
    target_idx = pick_target(model, data, adv, config.victim, config.seed, device)
    victim = int(data.y_test[target_idx])
    x_target = data.x_test[target_idx]
    poison_idx = pick_poisons(model, data, adv, x_target, count, device)
    x_train = data.x_train.clone()
    if count:
        def make():
            models = [model] + [surrogate_model(config, data, member=m) for m in range(1, ENSEMBLE)]
            for p in (p for m in models for p in m.parameters()):
                p.requires_grad_(True)
            x, loss = brew(models, data.x_train[poison_idx], data.y_train[poison_idx], x_target, adv,
                           seed=int(np.random.default_rng([config.seed, 37]).integers(2**31 - 1)))
            return {"poisons": x.numpy(), "loss": np.array([loss])}

        key = content_key("witches-brew", ALGORITHM_VERSION, array_fingerprint(data.x_train, data.y_train, data.x_test),
                          config.seed, adv, count, target_idx, EPS, STEPS, RESTARTS, STEP_SIZE, ENSEMBLE,
                          config.model, config.epochs, config.lr, config.batch_size, config.weight_decay,
                          config.label_smoothing, *numerics_tag(resolve_device(config.device)))
        x_train[poison_idx] = torch.from_numpy(np.array(cached_arrays(config, key, make)["poisons"]))
    poisoned = ImageData(data.name, data.classes, x_train, data.y_train.clone(), data.x_test, data.y_test)
    h, w = data.image_shape[1:]
    pattern = torch.full(data.image_shape, 128, dtype=torch.uint8)
    if count:
        first = poison_idx[0]
        pattern = (x_train[first].to(torch.int16) - data.x_train[first].to(torch.int16) + 128).clamp(0, 255).to(torch.uint8)
    return Poisoned(poisoned, poison_idx, victim, adv, x_target[None].clone(), torch.tensor([target_idx]),
                    torch.zeros(h, w, dtype=torch.bool), pattern)
