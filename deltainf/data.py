"""Datasets as in-memory uint8 tensors: the built-in digits, CIFAR-10/100 and ImageFolder trees.

Images stay in pixel space (``uint8``, N×3×H×W) so that triggers and the query transformations
act on pixels; models normalise internally.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass
class ImageData:
    """A train/test split of RGB images with integer labels."""

    name: str
    classes: list[str]
    x_train: torch.Tensor  # uint8 (N, 3, H, W)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """Content hash of every pixel and label."""
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(t.contiguous().numpy().tobytes())
        h.update(repr(self.classes).encode())
        return h.hexdigest()[:24]


def load_dataset(name: str, data_root: str | None, seed: int, *, n_train: int | None = None,
                 n_test: int | None = None, image_size: int = 32, default_root: Path | None = None) -> ImageData:
    """Load ``name`` (digits, cifar10, cifar100, imagefolder), optionally as seeded subsets."""
    if name == "digits":
        data = _digits(seed)
    elif name in ("cifar10", "cifar100"):
        root = Path(data_root).expanduser() if data_root else (default_root or Path.cwd())
        data = _cifar(name, root)
    elif name == "imagefolder":
        data = load_imagefolder(Path(data_root).expanduser(), image_size)
    else:  # guarded by Config
        raise DataError(f"unknown dataset {name!r}")
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 1)):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if n is None or n == len(y):
            continue
        if n > len(y):
            what = "training" if split == "train" else "test"
            warnings.warn(f"--n-{split} {n} is more than the {len(y):,} {what} images of {name}: using all of them")
            continue
        idx = balanced_subset(y, n, seed + offset)
        setattr(data, f"x_{split}", x[idx])
        setattr(data, f"y_{split}", y[idx])
    return data


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subset of ``n`` items with (near) equal shares per class."""
    y = np.asarray(labels)
    rng = np.random.default_rng([seed, 3])
    classes, counts = np.unique(y, return_counts=True)
    # Largest-remainder apportionment of n over the classes, proportional to their sizes.
    quota = counts * n / len(y)
    take = np.floor(quota).astype(int)
    take[np.argsort(quota - take)[::-1][: n - take.sum()]] += 1
    picked = [rng.permutation(np.flatnonzero(y == c))[:t] for c, t in zip(classes, take)]
    return torch.from_numpy(np.sort(np.concatenate(picked)))


def _digits(seed: int) -> ImageData:
    """scikit-learn's bundled 8×8 digits, upsampled to 16×16 and tinted a random colour each.

    The tint makes the colour transformations (jitter, channel switch) meaningful; the split
    (80 / 20, stratified) is drawn from ``seed``.
    """
    # Read the CSV that ships inside scikit-learn's wheel directly: importing sklearn costs ~2 s.
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in digits come with scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",")
    images, target = raw[:, :-1].reshape(-1, 8, 8), raw[:, -1].astype(np.int64)
    x = torch.from_numpy(images).float().div(16.0).unsqueeze(1)  # (N,1,8,8) in [0,1]
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False).clamp(0, 1)
    rng = np.random.default_rng(seed)
    hue = rng.uniform(0, 1, size=len(x))
    tint = torch.from_numpy(_hue_to_rgb(hue)).float()  # (N,3) saturated colours
    tint = 0.35 + 0.65 * tint  # keep every channel lit so no digit vanishes in a channel
    x = (x * tint[:, :, None, None] * 255).round().to(torch.uint8)
    y = torch.from_numpy(target)
    tr = balanced_subset(y, round(0.8 * len(y)), seed).numpy()
    te = np.setdiff1d(np.arange(len(y)), tr)
    return ImageData("digits", [str(i) for i in range(10)], x[tr], y[tr], x[te], y[te])


def _hue_to_rgb(h: np.ndarray) -> np.ndarray:
    k = (np.stack([5.0, 3.0, 1.0])[None, :] + h[:, None] * 6.0) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _cifar(name: str, root: Path) -> ImageData:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = root / cls.base_folder
    try:
        train = cls(str(root), train=True, download=not folder.exists())
        test = cls(str(root), train=False, download=False)
    except Exception as exc:  # offline, or a damaged archive
        raise DataError(
            f"{name} not found under {folder} and could not be downloaded ({type(exc).__name__}); "
            f"download {cls.filename} from {cls.url.rsplit('/', 1)[0]}/ and extract it into {root}, "
            f"or pass --data-root PATH") from None

    def to_tensor(ds):
        return (torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous(),
                torch.tensor(ds.targets, dtype=torch.long))

    xtr, ytr = to_tensor(train)
    xte, yte = to_tensor(test)
    return ImageData(name, list(train.classes), xtr, ytr, xte, yte)


def load_imagefolder(root: Path, image_size: int) -> ImageData:
    """Read ``root/train/<class>/*`` and ``root/test/<class>/*`` (Imagenette's layout)."""
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist; pass --data-root PATH holding train/<class>/ and test/<class>/")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            alt = " (Imagenette names it 'val': rename or link it to 'test')" if split == "test" and (root / "val").is_dir() else ""
            raise DataError(f"{root} has no {split}/ folder{alt}; expected {root}/{split}/<class>/<image files>")
    splits = {}
    for split in ("train", "test"):
        d = root / split
        class_dirs = sorted(p for p in d.iterdir() if p.is_dir())
        if not class_dirs:
            raise DataError(f"{d} has no class folders; expected {d}/<class>/<image files>")
        splits[split] = class_dirs
    classes = [p.name for p in splits["train"]]
    unknown = sorted({p.name for p in splits["test"]} - set(classes))
    if unknown:
        raise DataError(f"test classes {unknown} have no training folder under {root / 'train'}")
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} holds {len(classes)} class folder; at least 2 are needed")
    out = []
    for split in ("train", "test"):
        xs, ys = [], []
        for p in splits[split]:
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            for f in files:
                xs.append(read_image(f, image_size))
                ys.append(classes.index(p.name))
        if not xs:
            raise DataError(f"{root / split} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        out += [torch.stack(xs), torch.tensor(ys, dtype=torch.long)]
    return ImageData("imagefolder", classes, *out)


def read_image(source, image_size: int | None = None) -> torch.Tensor:
    """Decode one image file (path or file-like) to a uint8 3×H×W tensor, resized and centre-cropped.

    Raises :class:`DataError` naming the file when it is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "the image")  # the whole path
    try:
        with Image.open(source) as im:
            im = im.convert("RGB")
            if image_size is not None and im.size != (image_size, image_size):
                w, h = im.size
                s = image_size / min(w, h)
                im = im.resize((max(image_size, round(w * s)), max(image_size, round(h * s))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - image_size) // 2, (h - image_size) // 2
                im = im.crop((left, top, left + image_size, top + image_size))
            arr = np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{name} is not a readable image ({exc.__class__.__name__}); remove or replace it") from None
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
