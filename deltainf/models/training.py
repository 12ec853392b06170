"""Seeded training and prediction, and :class:`Recipe`: how the engine trains one architecture."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import numerics_tag
from ..progress import ProgressFn, silent
from ..seeds import seeded
from .spec import Architecture, resolve


def to_float(x_uint8: torch.Tensor, device=None) -> torch.Tensor:
    """uint8 pixels → float in [0, 1]."""
    return x_uint8.to(device).float().div_(255)


def random_shift_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Per-sample random translation (±pad px, reflect padding) and horizontal flip (CIFAR-style augmentation)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    out = torch.empty_like(x)
    for dy, dx in offsets.unique(dim=0).tolist():  # at most (2·pad+1)² slices, not one per sample
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().flatten().to(x.device)
        out[rows] = padded[rows, :, dy:dy + h, dx:dx + w]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def train_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, batch_size: int,
                weight_decay: float, label_smoothing: float, seed: int, device: torch.device, augment: bool,
                optimizer: str = "adam", progress: ProgressFn = silent, stage: str = "train",
                precision: str = "fp32") -> nn.Module:
    """Train ``model`` on uint8 images ``x`` with labels ``y``; every random choice comes from ``seed``.

    Adam (small CNN) or SGD with Nesterov momentum (ResNet), one-cycle learning rate over ``epochs``
    full passes of shuffled mini-batches. The data sit on the device (images read from disk: each batch is sent
    there); augmentation runs there too.
    On a GPU with ``precision="bf16"``: bf16 autocast and channels-last memory layout.
    """
    gen = torch.Generator().manual_seed(seed)
    fast = device.type == "cuda" and precision == "bf16"
    model.to(device).train()
    if fast:
        model.to(memory_format=torch.channels_last)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    held = isinstance(x, torch.Tensor)  # else read from disk a batch at a time (DiskImages)
    xf = to_float(x, device) if held else x
    yd = y.to(device)
    progress(stage, 0, epochs)
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            xb = xf[idx.to(device)] if held else to_float(xf[idx], device)
            idx = idx.to(device)
            if augment:
                xb = random_shift_flip(xb, gen)
            if fast:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = model(xb.contiguous(memory_format=torch.channels_last))
            else:
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yd[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        progress(stage, epoch + 1, epochs)
    if fast:
        model.to(memory_format=torch.contiguous_format)  # saved weights and kronfluence expect the usual layout
    return model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Logits for uint8 (or [0, 1] float) images, on the CPU."""
    model.to(device).eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        xb = to_float(xb, device) if xb.dtype == torch.uint8 else xb.to(device)
        out.append(model(xb).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Fraction of ``x`` predicted as ``y``."""
    if len(y) == 0:
        return float("nan")
    return float((predict_logits(model, x, device).argmax(1) == y).float().mean())


@dataclass(frozen=True)
class Recipe:
    """How the engine trains an architecture: the same recipe trains the model under investigation, retrains
    it for exact unlearning, fine-tunes it for CF and trains the attacker's surrogate (with another seed)."""

    model: str                  # a model spec (see :mod:`~deltainf.models.spec`): cnn, resnet18, torchvision:…, file.py:fn
    num_classes: int
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    label_smoothing: float
    seed: int
    device: torch.device = field(compare=False)
    precision: str = "fp32"     # "bf16": autocast and channels-last on a GPU
    mean: torch.Tensor = field(default=None, repr=False, compare=False)  # normalisation inside the model
    std: torch.Tensor = field(default=None, repr=False, compare=False)
    input_norm: str = "inside"  # who normalises a user's model's input (see INPUT_NORMS)

    @property
    def architecture(self) -> Architecture:
        return resolve(self.model)

    @property
    def optimizer(self) -> str:
        return self.architecture.recipe["optimizer"]

    @property
    def augment(self) -> bool:
        """Shift/flip augmentation where the architecture's recipe has it (the ResNet; the small CNN trains
        without, so poisons implant on small data)."""
        return self.architecture.recipe["augment"]

    def key(self) -> dict:
        """Everything about the recipe that determines the weights (part of model cache keys)."""
        r = {"model": self.model, "epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
             "weight_decay": self.weight_decay, "label_smoothing": self.label_smoothing, "seed": self.seed,
             "augment": self.augment}
        if self.precision != "fp32":
            r["precision"] = self.precision
        if numerics_tag(self.device):
            r["numerics"] = numerics_tag(self.device)
        arch = self.architecture
        if arch.kind != "builtin":
            r.update(code=arch.fingerprint, input_norm=self.input_norm)
        return r

    def new_model(self) -> nn.Module:
        """An untrained network of this architecture (initialised from the recipe's seed)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self.architecture.build(self.num_classes, self.mean, self.std, self.input_norm)

    def train(self, x: torch.Tensor, y: torch.Tensor, *, init: nn.Module | None = None, epochs: int | None = None,
              lr: float | None = None, progress: ProgressFn = silent, stage: str = "train") -> nn.Module:
        """Train on uint8 images ``x`` with labels ``y``, from scratch or from ``init``, for the recipe's epochs
        and learning rate unless ``epochs``/``lr`` are given."""
        model = init if init is not None else self.new_model()
        return train_model(model, x, y, epochs=epochs or self.epochs, lr=lr or self.lr, batch_size=self.batch_size,
                           weight_decay=self.weight_decay, label_smoothing=self.label_smoothing, seed=self.seed,
                           device=self.device, augment=self.augment, optimizer=self.optimizer, progress=progress,
                           stage=stage, precision=self.precision)


@dataclass
class TrainedModel:
    """The model under investigation: its weights, the content key of what determined them, and the recipe
    that trains its architecture again (exact unlearning, fine-tuning, the re-check)."""

    module: nn.Module
    key: str
    recipe: Recipe


def rebalanced(keep: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the ``keep`` points (bool mask), each class's kept points drawn again (with replacement, seeded)
    up to the class's full count: a model trained on them learns a class even when most of it was set aside."""
    idx = np.flatnonzero(keep)
    rng = seeded(seed, "rebalanced classes")
    extra = []
    for c, full in enumerate(np.bincount(labels)):
        of_c = idx[labels[idx] == c]
        if 0 < len(of_c) < full:
            extra.append(rng.choice(of_c, full - len(of_c), replace=True))
    return np.sort(np.concatenate([idx, *extra]))
