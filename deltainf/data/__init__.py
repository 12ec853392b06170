"""Datasets as in-memory uint8 tensors, one file per source (``digits.py``, ``cifar.py``,
``imagefolder.py``), registered in :data:`SOURCES`.

Images stay in pixel space (``uint8``, N×3×H×W) so that triggers and the query transformations
act on pixels; models normalise internally.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..registry import Registry
from ..seeds import seeded
from .stream import take

#: Data sources: ``load(root, seed=, image_size=, default_root=) -> ImageData``; ``needs_root=True`` when
#: the source cannot do without a folder, ``builtin=True`` when it reads none, ``resized=True`` when it resizes to
#: ``image_size``, ``check=fn(root)`` to refuse a folder it cannot read before anything is loaded, ``streams=True``
#: when it can read its training images from disk a batch at a time (``load(…, stream_to=, progress=)``).
SOURCES = Registry("dataset")
register = SOURCES.register


@dataclass
class ImageData:
    """A train/test split of RGB images with integer labels (the test split may be empty)."""

    name: str
    classes: list[str]
    x_train: torch.Tensor  # uint8 (N, 3, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_paths: list[str] | None = None  # each training image's file, relative to the data folder
    skipped: tuple[str, ...] = ()         # files in the class folders that are not images (relative paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def subset(self, split: str, idx: torch.Tensor) -> None:
        """Keep only the images ``idx`` of ``split`` ("train" or "test")."""
        setattr(self, f"x_{split}", take(getattr(self, f"x_{split}"), idx))
        setattr(self, f"y_{split}", getattr(self, f"y_{split}")[idx])
        if split == "train" and self.train_paths is not None:
            self.train_paths = [self.train_paths[i] for i in idx.tolist()]


def load_dataset(name: str, data_root: str | None, seed: int, *, n_train: int | None = None,
                 n_test: int | None = None, image_size: int = 32, default_root: Path | None = None,
                 stream_to: Path | None = None, progress=None) -> ImageData:
    """Load source ``name`` (see :data:`SOURCES`), optionally as seeded class-balanced subsets. ``stream_to``: a
    cache folder the training images are read from a batch at a time (sources registered with ``streams=True``)."""
    root = Path(data_root).expanduser() if data_root else None
    extra = {"stream_to": stream_to, **({"progress": progress} if progress else {})} if stream_to else {}
    data = SOURCES[name](root, seed=seed, image_size=image_size, default_root=default_root, **extra)
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 1)):
        y = getattr(data, f"y_{split}")
        if n is None or n == len(y):
            continue
        if n > len(y):
            what = "training" if split == "train" else "test"
            warnings.warn(f"--n-{split} {n} is more than the {len(y):,} {what} images of {name}: using all of them")
            continue
        data.subset(split, balanced_subset(y, n, seed + offset))
    return data


def check_source(name: str, data_root: str | None) -> None:
    """Refuse, before anything is loaded, a data folder the source ``name`` cannot read: missing where the source
    needs one (a source that downloads, like CIFAR, may be given a new folder), or laid out otherwise (where the
    source checks it). Raises :class:`~deltainf.errors.DataError`."""
    entry = SOURCES[name]
    root = Path(data_root).expanduser() if data_root else None
    if root is None:
        if entry.attrs.get("needs_root"):
            raise DataError(f"{entry.label} needs a data folder (--data-root)")
        return
    if (entry.attrs.get("needs_root") or entry.attrs.get("check")) and not root.is_dir():
        raise DataError(f"the data folder {root} does not exist or is not a folder")
    if entry.attrs.get("check"):
        entry.attrs["check"](root)


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subset of ``n`` items with (near) equal shares per class."""
    y = np.asarray(labels)
    rng = seeded(seed, "balanced subset")
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder apportionment of n over the classes, proportional to their sizes.
    quota = counts * n / len(y)
    take = np.floor(quota).astype(int)
    take[np.argsort(quota - take)[::-1][: n - take.sum()]] += 1
    picked = [rng.permutation(np.flatnonzero(y == c))[:t] for c, t in zip(classes, take)]
    return torch.from_numpy(np.sort(np.concatenate(picked)))


SOURCES.discover(__name__, __path__)
