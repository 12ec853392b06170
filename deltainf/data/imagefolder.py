"""A folder of the user's own images: ``root/train/<class>/*`` and ``root/test/<class>/*``."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from ..progress import ProgressFn, silent
from . import ImageData, register
from .images import IMAGE_SUFFIXES, read_image
from .stream import decoded


def check_layout(root: Path) -> None:
    """The folder's layout, without reading an image: what :func:`load_imagefolder` would refuse first."""
    for split, dirs in class_folders(root, require_test=True).items():
        if not any(f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
                   for d in dirs for f in d.iterdir()):
            raise DataError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")


@register("imagefolder", label="ImageFolder", order=3, needs_root=True, resized=True, streams=True,
          check=check_layout)
def imagefolder(root: Path | None, *, seed: int, image_size: int, default_root: Path | None = None,
                stream_to: Path | None = None, progress: ProgressFn = silent) -> ImageData:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (Imagenette's layout), resized to ``image_size``."""
    if root is None:
        raise DataError("an ImageFolder needs a data folder holding train/<class>/ and test/<class>/ (--data-root)")
    return load_imagefolder(root, image_size, stream_to=stream_to, progress=progress)


def load_imagefolder(root: Path, image_size: int, require_test: bool = True, stream_to: Path | None = None,
                     progress: ProgressFn = silent) -> ImageData:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (without ``require_test`` the test split may be
    missing: it is then empty). Every training image keeps its path; files that are not images (by their
    suffix) are skipped and listed in ``skipped``; a broken image file is refused, naming it. With ``stream_to`` (a
    cache folder) the training images are decoded once into a file there and read from it a batch at a time
    (:func:`~deltainf.data.stream.decoded`) instead of held in memory."""
    splits = class_folders(root, require_test)
    classes = [p.name for p in splits["train"]]
    out, paths, skipped = [], [], []
    for split in ("train", "test"):
        files, ys = [], []
        if split not in splits:  # no test split
            out += [torch.zeros((0, 3, image_size, image_size), dtype=torch.uint8), torch.zeros(0, dtype=torch.long)]
            continue
        for p in splits[split]:
            found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            skipped += [f.relative_to(root).as_posix() for f in found if f.suffix.lower() not in IMAGE_SUFFIXES]
            images = [f for f in found if f.suffix.lower() in IMAGE_SUFFIXES]
            files += images
            ys += [classes.index(p.name)] * len(images)
        if not files:
            raise DataError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if split == "train":
            paths = [f.relative_to(root).as_posix() for f in files]
        if split == "train" and stream_to is not None:
            x = decoded(files, image_size, Path(stream_to), progress)
        else:
            x = torch.stack([read_image(f, image_size) for f in files])
        out += [x, torch.tensor(ys, dtype=torch.long)]
    return ImageData("imagefolder", classes, *out, train_paths=paths, skipped=tuple(skipped))


def count_training_images(root: Path) -> int:
    """How many image files ``root/train/<class>/`` hold (by their suffix), without reading one."""
    return sum(1 for d in (root / "train").iterdir() if d.is_dir() for f in d.iterdir()
               if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(root: Path, require_test: bool) -> dict[str, list[Path]]:
    """{split: its class folders} for train/ and (where present, or required) test/, checked: train/ holds at least
    2 classes and test/ none that train/ lacks."""
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; give a folder holding train/<class>/ and test/<class>/")
    splits_found = [split for split in ("train", "test") if (root / split).is_dir()]
    for split in ("train", "test") if require_test else ("train",):
        if split not in splits_found:
            alt = " (Imagenette names it 'val': rename or link it to 'test')" if split == "test" and (root / "val").is_dir() else ""
            raise DataError(f"{root} has no {split}/ folder{alt}; expected {root}/{split}/<class>/<image files>")
    splits = {}
    for split in splits_found:
        d = root / split
        class_dirs = sorted(p for p in d.iterdir() if p.is_dir())
        if not class_dirs:
            raise DataError(f"{d} has no class folders; expected {d}/<class>/<image files>")
        splits[split] = class_dirs
    classes = [p.name for p in splits["train"]]
    unknown = sorted({p.name for p in splits.get("test", [])} - set(classes))
    if unknown:
        raise DataError(f"test classes {unknown} have no training folder under {root / 'train'}")
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} holds {len(classes)} class folder; at least 2 are needed")
    return splits
