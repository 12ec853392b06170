"""CIFAR-10 and CIFAR-100 through torchvision (downloaded when online)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import ImageData, register


def _cifar(name: str, root: Path | None, default_root: Path | None) -> ImageData:
    from torchvision import datasets

    root = root or default_root or Path.cwd()
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    folder = root / cls.base_folder
    try:
        train = cls(str(root), train=True, download=not folder.exists())
        test = cls(str(root), train=False, download=False)
    except Exception as exc:  # offline, or a damaged archive
        raise DataError(
            f"{name} not found under {folder} and could not be downloaded ({type(exc).__name__}); "
            f"download {cls.filename} from {cls.url.rsplit('/', 1)[0]}/ and extract it into {root}, "
            f"or give the folder that holds it (--data-root)") from None

    def to_tensor(ds):
        return (torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous(),
                torch.tensor(ds.targets, dtype=torch.long))

    xtr, ytr = to_tensor(train)
    xte, yte = to_tensor(test)
    return ImageData(name, list(train.classes), xtr, ytr, xte, yte)


@register("cifar10", label="CIFAR-10", order=1)
def cifar10(root: Path | None, *, seed: int, image_size: int, default_root: Path | None = None) -> ImageData:
    """CIFAR-10 (torchvision): 50,000 training / 10,000 test images, 32×32, 10 classes."""
    return _cifar("cifar10", root, default_root)


@register("cifar100", label="CIFAR-100", order=2)
def cifar100(root: Path | None, *, seed: int, image_size: int, default_root: Path | None = None) -> ImageData:
    """CIFAR-100 (torchvision): 50,000 training / 10,000 test images, 32×32, 100 classes."""
    return _cifar("cifar100", root, default_root)
