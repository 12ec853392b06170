"""One validated configuration for a whole Δ-Influence experiment.

Every option the CLI and the app expose is a field here, checked in ``__post_init__`` so a bad
value fails at construction with one readable line. Pipeline stages are keyed by the content
they are computed from (data, weights, queries), never by this object as a whole, so changing τ
never retrains a model.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
MODELS = ("cnn", "resnet18")
MODES = ("full", "label-only", "image-only")
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
TRIGGER_PATTERNS = ("checker", "white", "random")
CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
# The registries' names, for help texts without importing torch (a test keeps them equal).
ATTACK_NAMES = ("badnet", "frequency", "witches_brew")
DETECTOR_NAMES = ("delta_influence", "delta_label_only", "delta_image_only", "ekfac", "actclust", "specsig", "freqdef")

def default_cache_dir() -> Path:
    """``$DELTAINF_CACHE_DIR``, else the user's cache directory (XDG) ``/deltainf``."""
    env = os.environ.get("DELTAINF_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "deltainf"


@dataclass(frozen=True)
class Config:
    """Everything that determines an experiment. ``None`` means "the dataset's default"."""

    dataset: str = field(default="digits", metadata={"help": "digits (built in), cifar10, cifar100 or imagefolder"})
    data_root: str | None = field(default=None, metadata={"help": "folder with the data (imagefolder: train/<class>/, test/<class>/)"})
    n_train: int | None = field(default=None, metadata={"help": "use a seeded, class-balanced subset of this many training images"})
    n_test: int | None = field(default=None, metadata={"help": "use a seeded, class-balanced subset of this many test images"})
    image_size: int = field(default=32, metadata={"help": "imagefolder images are resized to this square size"})
    attack: str = field(default="badnet", metadata={"help": "poisoning attack"})
    victim: int | None = field(default=None, metadata={"help": "victim (source) class; drawn from the seed if omitted"})
    target: int | None = field(default=None, metadata={"help": "target class; drawn from the seed if omitted"})
    poison_count: int | None = field(default=None, metadata={"help": "number of poisoned training images"})
    trigger_size: int | None = field(default=None, metadata={"help": "BadNet patch side in pixels"})
    trigger_pattern: str = field(default="checker", metadata={"help": "BadNet patch: checker, white or random"})
    trigger_corner: str = field(default="bottom-right", metadata={"help": "where the BadNet patch goes"})
    model: str = field(default="cnn", metadata={"help": "cnn (small, CPU) or resnet18 (CIFAR ResNet-18)"})
    epochs: int | None = field(default=None, metadata={"help": "training epochs"})
    lr: float | None = field(default=None, metadata={"help": "learning rate"})
    batch_size: int = field(default=64, metadata={"help": "training batch size"})
    weight_decay: float = field(default=5e-4, metadata={"help": "training weight decay"})
    label_smoothing: float = field(default=0.0, metadata={"help": "training label smoothing"})
    seed: int = field(default=0, metadata={"help": "seeds every random choice"})
    test_index: int | None = field(default=None, metadata={"help": "which triggered test image is the query"})
    transforms: int = field(default=50, metadata={"help": "T, the number of transformed copies of the query"})
    mode: str = field(default="full", metadata={"help": "full, label-only or image-only transformations"})
    transform_seed: int | None = field(default=None, metadata={
        "help": "seeds the draws of the T copies (augmentation, random label); None = the experiment's seed"})
    tau: float | None = field(default=None, metadata={"help": "τ: a Δ below τ counts as a drop; None = suggested from Δ"})
    k: int | None = field(default=None, metadata={"help": "k: flag when at least T - k copies drop; None = suggested"})
    test_points: int = field(default=1, metadata={"help": "known poisoned test points; flags are intersected"})
    counterfactual: bool = field(default=False, metadata={"help": "also retrain without detected / without missed poisons"})
    damping: float | None = field(default=None, metadata={"help": "EK-FAC damping; None = heuristic (0.1 × mean eigenvalue)"})
    ekfac_threshold: float = field(default=0.0, metadata={"help": "naive EK-FAC flags scores above this"})
    detectors: tuple[str, ...] = ("delta_influence", "ekfac")
    unlearn: tuple[str, ...] = ()
    ssd_alpha: float | None = field(default=None, metadata={"help": "SSD selection threshold α; None = pick from a grid"})
    ssd_lambda: float = field(default=1.0, metadata={"help": "SSD dampening constant λ"})
    until_clean: bool = field(default=False, metadata={"help": "re-check the query after unlearning and repeat"})
    max_rounds: int = field(default=3, metadata={"help": "most detect → unlearn rounds with until_clean"})
    clean_below: float = field(default=0.01, metadata={
        "help": "with until_clean: the test image is clean once it is not predicted as the target AND the target's "
                "probability on it is at most this (1 = the prediction alone)"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16 on a GPU, fp32 on the CPU), fp32 or bf16: training autocast and kronfluence's dtypes"})
    cache_dir: str | None = field(default=None, metadata={"help": "cache folder (default: $DELTAINF_CACHE_DIR or ~/.cache/deltainf)"})

    def __post_init__(self) -> None:
        from .attacks import ATTACKS
        from .detect import DETECTORS
        from .unlearn import UNLEARNERS

        _choice("dataset", self.dataset, DATASETS)
        _choice("attack", self.attack, tuple(ATTACKS))
        _choice("model", self.model, MODELS)
        _choice("mode", self.mode, MODES)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("trigger-pattern", self.trigger_pattern, TRIGGER_PATTERNS)
        _choice("trigger-corner", self.trigger_corner, CORNERS)
        for name in self.detectors:
            _choice("detectors", name, tuple(DETECTORS))
        for name in self.unlearn:
            _choice("unlearn", name, tuple(UNLEARNERS))
        if self.tau is not None and (not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau)):
            raise ConfigError(f"--tau must be a finite number, got {self.tau!r}")
        if not isinstance(self.ekfac_threshold, (int, float)) or not math.isfinite(self.ekfac_threshold):
            raise ConfigError(f"--ekfac-threshold must be a finite number, got {self.ekfac_threshold!r}")
        _at_least("transforms", self.transforms, 1)
        if self.k is not None and not (isinstance(self.k, int) and 0 <= self.k < self.transforms):
            raise ConfigError(f"--k must be in 0..T-1 = 0..{self.transforms - 1} (T = --transforms), got {self.k}")
        for name, lo in (("epochs", 1), ("poison_count", 0), ("n_train", 10), ("n_test", 10),
                         ("trigger_size", 1), ("victim", 0), ("target", 0), ("test_index", 0),
                         ("transform_seed", 0)):
            value = getattr(self, name)
            if value is not None:
                _at_least(name, value, lo)
        _at_least("image_size", self.image_size, 8)
        _at_least("max_rounds", self.max_rounds, 1)
        _at_least("test_points", self.test_points, 1)
        for name in ("ssd_alpha", "ssd_lambda"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
        if not (isinstance(self.clean_below, (int, float)) and 0 < self.clean_below <= 1):
            raise ConfigError(f"--clean-below must be a probability in (0, 1], got {self.clean_below!r}")
        _at_least("batch_size", self.batch_size, 1)
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr!r}")
        if self.damping is not None and not (self.damping > 0 and math.isfinite(self.damping)):
            raise ConfigError(f"--damping must be a positive number (or omitted for the heuristic), got {self.damping!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.victim is not None and self.victim == self.target:
            raise ConfigError(f"--victim and --target must differ (both are {self.victim})")
        if self.dataset == "imagefolder" and not self.data_root:
            raise ConfigError("--dataset imagefolder needs --data-root PATH holding train/<class>/ and test/<class>/")

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["detectors"], d["unlearn"] = list(self.detectors), list(self.unlearn)
        return d

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def _choice(option: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown --{option.replace('_', '-')} {value!r}; choose one of: {', '.join(map(str, allowed))}")


def _at_least(option: str, value, lo: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"--{option.replace('_', '-')} must be an integer ≥ {lo}, got {value!r}")
