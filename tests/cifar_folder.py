"""Write a class-balanced CIFAR-10 subset from ../shared/data/cifar10-jpeg.npz as an ImageFolder tree."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

NPZ = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.npz"


def write_cifar_imagefolder(root: Path, per_class_train: int, per_class_test: int, seed: int = 0,
                            npz: Path = NPZ) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png``; returns ``root``."""
    from PIL import Image

    data = np.load(npz, allow_pickle=False)
    classes = [str(c) for c in data["classes"]]
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        blob, off, labels = data[f"{split}_jpeg"], data[f"{split}_offsets"], data[f"{split}_labels"]
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.sort(rng.permutation(np.flatnonzero(labels == c))[:per_class]):
                img = Image.open(io.BytesIO(blob[off[i]:off[i + 1]].tobytes())).convert("RGB")
                img.save(folder / f"{i:05d}.png")
    return root


def cifar_images(per_class: int, npz: Path = NPZ):
    """The first ``per_class`` training images of each class: (uint8 tensor (N, 3, 32, 32), int64 labels (N,))."""
    import torch
    from PIL import Image

    data = np.load(npz, allow_pickle=False)
    blob, off, labels = data["train_jpeg"], data["train_offsets"], data["train_labels"]
    idx = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    x = torch.from_numpy(np.stack([np.asarray(Image.open(io.BytesIO(blob[off[i]:off[i + 1]].tobytes())).convert(
        "RGB")).transpose(2, 0, 1) for i in idx]))
    return x, labels[idx].astype(np.int64)
