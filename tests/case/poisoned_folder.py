"""Write a poisoned image folder the way an analyst finds one: train/<class>/<uninformative names>.png with a
trigger of this test's own (not the engine's attacks), and a model trained on it with a plain loop."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def stamp(x: np.ndarray) -> np.ndarray:
    """This test's trigger: a bright 3-pixel corner 'L' (uint8 H×W×3)."""
    out = x.copy()
    out[0, 0:2] = 255
    out[1, 0] = 255
    return out


def patch(size: int = 4):
    """A trigger: a size×size checkerboard of red and white in the bottom-right corner."""
    def apply(x: np.ndarray) -> np.ndarray:
        out = x.copy()
        ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        out[-size:, -size:] = np.where(((ii + jj) % 2 == 0)[..., None], [255, 255, 255], [255, 0, 0])
        return out
    return apply


def write_case(root: Path, x_train, y_train, x_test, y_test, classes, victim: int, target: int, n_poison: int,
               seed: int = 0, trigger=stamp) -> dict:
    """The folder, the planted files and a triggered victim test image; returns their paths."""
    rng = np.random.default_rng(seed)
    victims = np.flatnonzero(y_train == victim)
    planted = set(rng.choice(victims, n_poison, replace=False).tolist())
    names, poison_paths = {}, []
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        for i, (img, y) in enumerate(zip(xs, ys)):
            img = img.transpose(1, 2, 0)
            label = int(y)
            if split == "train" and i in planted:
                img, label = trigger(img), target
            name = hashlib.sha1(f"{split}{i}{seed}".encode()).hexdigest()[:10] + ".png"
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / name)
            if split == "train" and i in planted:
                poison_paths.append(f"train/{classes[label]}/{name}")
            names[(split, i)] = name
    test_victims = np.flatnonzero(y_test == victim)
    query = root.parent / f"{root.name}-query.png"
    Image.fromarray(trigger(x_test[test_victims[0]].transpose(1, 2, 0))).save(query)
    triggered = np.stack([trigger(x_test[i].transpose(1, 2, 0)).transpose(2, 0, 1) for i in test_victims])
    return {"poisons": sorted(poison_paths), "query": query, "triggered": triggered}


def train_plain(model: torch.nn.Module, root: Path, size: int, epochs: int = 12, seed: int = 0,
                augment: bool = False) -> torch.nn.Module:
    """Train on the folder's train/ with a plain loop (Adam, random flips when ``augment``), as a user would."""
    xs, ys = [], []
    classes = sorted(p.name for p in (root / "train").iterdir())
    for c, name in enumerate(classes):
        for f in sorted((root / "train" / name).iterdir()):
            xs.append(np.asarray(Image.open(f).convert("RGB").resize((size, size))).transpose(2, 0, 1))
            ys.append(c)
    x = torch.from_numpy(np.stack(xs)).float() / 255
    y = torch.tensor(ys)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            xb = x[idx]
            if augment:
                xb = torch.where(torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5, xb.flip(-1), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
