"""A folder of the user's own images: ``root/train/<class>/*`` and ``root/test/<class>/*``."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from . import ImageData, register
from .images import IMAGE_SUFFIXES, read_image


def check_layout(root: Path) -> None:
    """The folder's layout, without reading an image: what :func:`load_imagefolder` would refuse first."""
    for split, dirs in class_folders(root, require_test=True).items():
        if not any(f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
                   for d in dirs for f in d.iterdir()):
            raise DataError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")


@register("imagefolder", label="ImageFolder", order=3, needs_root=True, resized=True,
          check=check_layout)
def imagefolder(root: Path | None, *, seed: int, image_size: int, default_root: Path | None = None) -> ImageData:
    """``root/train/<class>/*`` and ``root/test/<class>/*`` (Imagenette's layout), resized to ``image_size``."""
    if root is None:
        raise DataError("an ImageFolder needs a data folder holding train/<class>/ and test/<class>/ (--data-root)")
    return load_imagefolder(root, image_size)


def load_imagefolder(root: Path, image_size: int, require_test: bool = True) -> ImageData:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (without ``require_test`` the test split may be
    missing: it is then empty). Every training image keeps its path; files that are not images (by their
    suffix) are skipped and listed in ``skipped``; a broken image file is refused, naming it."""
    splits = class_folders(root, require_test)
    classes = [p.name for p in splits["train"]]
    out, paths, skipped = [], [], []
    for split in ("train", "test"):
        xs, ys = [], []
        if split not in splits:  # no test split
            out += [torch.zeros((0, 3, image_size, image_size), dtype=torch.uint8), torch.zeros(0, dtype=torch.long)]
            continue
        for p in splits[split]:
            files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            skipped += [f.relative_to(root).as_posix() for f in files if f.suffix.lower() not in IMAGE_SUFFIXES]
            for f in (f for f in files if f.suffix.lower() in IMAGE_SUFFIXES):
                xs.append(read_image(f, image_size))
                ys.append(classes.index(p.name))
                if split == "train":
                    paths.append(f.relative_to(root).as_posix())
        if not xs:
            raise DataError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        out += [torch.stack(xs), torch.tensor(ys, dtype=torch.long)]
    return ImageData("imagefolder", classes, *out, train_paths=paths, skipped=tuple(skipped))


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
