"""One validated configuration for a whole Δ-Influence experiment.

:class:`Config` is composed from option sections (this file) and from the settings of every registered
attack, detector and unlearning method, so the registries are the single source of its fields, their
allowed values, the command-line flags and their help. Every field is checked at construction, so a bad
value fails with one readable line. Stages are keyed by the content they are computed from (data,
weights, queries), never by this object as a whole, so changing τ never retrains a model.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .attacks import ATTACKS
from .data import SOURCES
from .detectors import DETECTORS
from .errors import ConfigError
from .influence.queries import MODES
from .models import ARCHITECTURES
from .models.spec import INPUT_NORMS
from .options import check_options, flag, option
from .suspicion import SuspicionOptions
from .unlearning import UNLEARNERS
from .unlearning.stage import RecheckOptions
from .verdict import VerdictOptions

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def default_cache_dir() -> Path:
    """``$DELTAINF_CACHE_DIR``, else the user's cache directory (XDG) ``/deltainf``."""
    env = os.environ.get("DELTAINF_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "deltainf"


STREAMING = ("auto", "on", "off")
STREAM_ABOVE = 20_000  # training images in a folder above which --stream auto reads them from disk


def streams(setting: str, root, source: str = "imagefolder") -> bool:
    """Whether ``--stream`` ``setting`` reads the training images of the data folder ``root`` from disk."""
    from .data.imagefolder import count_training_images

    if setting == "off" or not SOURCES[source].attrs.get("streams") or root is None:
        return False
    if setting == "on":
        return True
    try:
        return count_training_images(Path(root).expanduser()) > STREAM_ABOVE
    except OSError:  # no such folder: loading it says so
        return False


# ----------------------------------------------------------------------------- the sections
@dataclass(frozen=True)
class DataOptions:
    dataset: str = option("digits", "the data (digits is built in)", choices=SOURCES, label="Dataset")
    data_root: str | None = option(None, "data folder (imagefolder: train/<class>/ and test/<class>/; CIFAR: where it "
                                         "is, or is downloaded to)", label="Data folder")
    n_train: int | None = option(None, "use a seeded, class-balanced subset of this many training images", low=10,
                                 label="Training images")
    n_test: int | None = option(None, "use a seeded, class-balanced subset of this many test images", low=10)
    image_size: int = option(32, "imagefolder images are resized to this square size", low=8, label="Image size")


@dataclass(frozen=True)
class AttackOptions:
    attack: str = option("badnet", "poisoning attack", choices=ATTACKS, label="Attack")
    victim: int | None = option(None, "victim (source) class (default: drawn from the seed)", low=0,
                                label="Victim class")
    target: int | None = option(None, "target class (default: drawn from the seed)", low=0, label="Target class")
    poison_count: int | None = option(None, "poisoned training images (default: about 3.5 % of the data)", low=0,
                                      label="Poisons")


@dataclass(frozen=True)
class ModelOptions:
    model: str = option("cnn", "architecture", choices=ARCHITECTURES, label="Architecture")


@dataclass(frozen=True)
class RecipeOptions:
    epochs: int | None = option(None, "training epochs (default: the architecture's recipe)", low=1, label="Epochs")
    lr: float | None = option(None, "learning rate (default: the architecture's recipe)", kind="positive")
    batch_size: int = option(64, "training batch size", low=1)
    weight_decay: float = option(5e-4, "training weight decay", kind="finite")
    label_smoothing: float = option(0.0, "training label smoothing", kind="fraction")
    seed: int = option(0, "seeds every random choice", low=0, label="Seed")


@dataclass(frozen=True)
class QueryOptions:
    test_index: int | None = option(None, "which triggered test image is the query (default: a seeded pick)", low=0)
    test_points: int = option(1, "known poisoned test points; detectors intersect their flags", low=1)
    counterfactual: bool = option(False, "also retrain without the detected poisons, without the missed ones (paper "
                                         "Table 3) and without every poison (what the trigger does alone)")


@dataclass(frozen=True)
class DeltaOptions:
    transforms: int = option(50, "T, the number of transformed copies of the query", low=1, metavar="T")
    mode: str = option("full", "full (new image, random label), label-only or image-only copies", choices=MODES)
    transform_seed: int | None = option(None, "seeds the draws of the T copies (default: --seed)", low=0)
    tau: float | None = option(None, "τ: a Δ below τ counts as a drop (default: suggested from Δ)", kind="finite")
    k: int | None = option(None, "k: flag when at least T − k copies drop (default: suggested from Δ)")
    damping: float | None = option(None, "EK-FAC damping (default: heuristic, 0.1 × mean eigenvalue)", kind="positive")
    lambda_examples: int | None = option(None, "EK-FAC: fit the eigenvalue correction λ on a seeded sample of this "
                                               "many training points (default: all of them; on a GPU the λ pass is "
                                               "most of the factor fit)", low=1)


@dataclass(frozen=True)
class DetectOptions:
    detectors: tuple[str, ...] = option(("delta_influence", "ekfac"), "detectors, comma-separated, or none "
                                        "(--flagged-out writes the first)", choices=DETECTORS)
    unlearn: tuple[str, ...] = option((), "unlearning methods, comma-separated, or none", choices=UNLEARNERS)
    max_damage: float = option(0.015, "SSD, SCRUB and BadT back off when they cost more than this accuracy on a "
                                      "held-out slice of the retained training points (they were trained on it, "
                                      "so the test set loses up to three times as much)", kind="fraction")


@dataclass(frozen=True)
class CaseDetectOptions(DetectOptions):
    """An analyst's default: the refined Δ-Influence first (its flags are the ones written and unlearned)."""

    detectors: tuple[str, ...] = option(("delta_refined", "delta_influence", "ekfac"), "detectors, comma-separated, "
                                        "or none (the flags written and unlearned: the refined Δ-Influence's when it "
                                        "comes first, else Δ-Influence's, else the first's)",
                                        choices=DETECTORS)


@dataclass(frozen=True)
class RunOptions:
    device: str = option("auto", "where to compute: auto (a GPU when there is one), cpu or cuda", choices=DEVICES,
                         label="Device")
    precision: str = option("auto", "auto (bf16 on a GPU, fp32 on the CPU), fp32 or bf16: training autocast and "
                                    "kronfluence's dtypes", choices=PRECISIONS)
    cache_dir: str | None = option(None, "cache folder (default: $DELTAINF_CACHE_DIR or ~/.cache/deltainf)")
    stream: str = option("auto", "ImageFolder training images: on (decoded once into a file in the cache folder, "
                                 "then read from it a batch at a time: memory does not grow with the data), off (held "
                                 f"in memory), auto (on above {STREAM_ABOVE:,} images)", choices=STREAMING)


@dataclass(frozen=True)
class CaseOptions:
    """An analyst's own folder, model and misbehaving test image (``deltainf investigate``)."""

    data_root: str | None = option(None, "the image folder: train/<class>/<images>, and optionally test/<class>/<images> "
                                         "(then clean accuracy is reported)", metavar="DIR", label="Data folder")
    model: str | None = option(None, "the architecture: cnn, resnet18, torchvision:<name>, path/to/file.py:callable or "
                               "package.module:callable (called with num_classes, returns an nn.Module)",
                        metavar="SPEC", label="Model")
    weights: str | None = option(None, "the model's weights: safetensors, or a state dict (read with "
                                       "torch.load(weights_only=True)); omitted: the model is trained on the folder "
                                       "with the engine's recipe", metavar="FILE", label="Weights")
    query: str | None = option(None, "the misbehaving test image", metavar="IMAGE", label="Test image")
    query_label: str | None = option(None, "its label y, a class index or name (default: the model's prediction)",
                                     metavar="CLASS", label="Its label")
    image_size: int = option(32, "every image is resized (and centre-cropped) to this square size", low=8,
                             label="Image size")
    input_norm: str = option("inside", "who normalises the model's input, float pixels in [0, 1]: inside (the model "
                                       "does), data (the engine, with the training images' statistics) or imagenet",
                             choices=INPUT_NORMS, label="Input normalisation")
    known_poisons: str | None = option(None, "a file of training images known to be poisoned, one path per line "
                                             "relative to the data folder: TPR and precision are reported",
                                       metavar="FILE")


#: (title, section) in the order the command line lists them.
SECTIONS = [("data", DataOptions), ("attack", AttackOptions), ("model", ModelOptions),
            ("training recipe", RecipeOptions), ("the query", QueryOptions), ("Δ-Influence", DeltaOptions),
            ("the verdict", VerdictOptions), ("detection and unlearning", DetectOptions),
            ("the shared evidence", SuspicionOptions), ("the re-check", RecheckOptions), ("running", RunOptions)]
CASE_SECTIONS = [("your data, model and test image", CaseOptions),
                 ("training recipe (exact unlearning, and training when there are no weights)", RecipeOptions),
                 ("Δ-Influence", DeltaOptions), ("the verdict", VerdictOptions),
                 ("detection and unlearning", CaseDetectOptions), ("the shared evidence", SuspicionOptions),
                 ("the re-check", RecheckOptions), ("running", RunOptions)]


def entry_sections(kinds=("attack", "detector", "unlearning")) -> list[tuple[str, type]]:
    """(title, settings dataclass) of every registered entry of ``kinds`` that has options."""
    registries = {"attack": ATTACKS, "detector": DETECTORS, "unlearning": UNLEARNERS}
    return [(f"{kind} {name}", settings) for kind in kinds for name, settings in registries[kind].settings_types()]


# ----------------------------------------------------------------------------- checks across fields
def _check_k(c) -> None:
    if c.k is not None and not (isinstance(c.k, int) and 0 <= c.k < c.transforms):
        raise ConfigError(f"--k must be in 0..T-1 = 0..{c.transforms - 1} (T = --transforms), got {c.k}")


def _check_experiment(c) -> None:
    _check_k(c)
    if c.victim is not None and c.victim == c.target:
        raise ConfigError(f"--victim and --target must differ (both are {c.victim})")
    if SOURCES[c.dataset].attrs.get("needs_root") and not c.data_root:
        raise ConfigError(f"{SOURCES[c.dataset].label} needs --data-root PATH holding train/<class>/ and test/<class>/")


def _check_case(c) -> None:
    _check_k(c)
    for name in ("data_root", "model", "query"):
        if not getattr(c, name):
            raise ConfigError(f"{flag(name)} is required (see: deltainf investigate --help)")


class _ConfigMethods:
    relations = None  # the checks across fields of the composed class

    def __post_init__(self) -> None:
        check_options(self)
        type(self).relations(self)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


def own_fields(sections: list[tuple[str, type]]):
    """(title, section, its fields) for each of ``sections``, without the fields a section shares with one it extends
    listed before it (e.g. Δ refined's settings extending :class:`~deltainf.suspicion.SuspicionOptions`)."""
    composed = []
    for title, section in sections:
        shared = {f.name for base in composed if issubclass(section, base) for f in dataclasses.fields(base)}
        composed.append(section)
        yield title, section, [f for f in dataclasses.fields(section) if f.name not in shared]


def compose(name: str, sections: list[tuple[str, type]], relations, doc: str) -> type:
    """A frozen dataclass with every field of ``sections`` (:func:`own_fields`; names must be unique)."""
    fields, seen = [], {}
    for title, _, own in own_fields(sections):
        for f in own:
            if f.name in seen:
                raise TypeError(f"option {flag(f.name)} of {title} is also defined by {seen[f.name]}")
            seen[f.name] = title
            fields.append((f.name, f.type, dataclasses.field(default=f.default, metadata=f.metadata)))
    cls = dataclasses.make_dataclass(name, fields, bases=(_ConfigMethods,), frozen=True, namespace={"__doc__": doc})
    cls.__module__ = __name__
    cls.sections = tuple(sections)
    cls.relations = staticmethod(relations)
    return cls


Config = compose("Config", SECTIONS + entry_sections(), _check_experiment,
                 "Everything that determines an experiment; ``None`` means the dataset's or recipe's default.")
CaseConfig = compose("CaseConfig", CASE_SECTIONS + entry_sections(("detector", "unlearning")), _check_case,
                     "Everything that determines an investigation of a user's own folder, model and test image.")
