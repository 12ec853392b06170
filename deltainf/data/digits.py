"""The built-in data: scikit-learn's bundled 8×8 digits, offline."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..seeds import seeded
from . import ImageData, balanced_subset, register


@register("digits", label="built-in digits (16×16, offline)", order=0, builtin=True, brew_eps=40 / 255,
          blend_alpha=0.25, adaptive_alpha=0.25, wanet_grid=6, wanet_strength=3.0, wanet_cross_ratio=1)
def digits(root: Path | None, *, seed: int, image_size: int, default_root: Path | None = None) -> ImageData:
    """scikit-learn's bundled 8×8 digits, upsampled to 16×16 and tinted a random colour each.

    The tint makes the colour transformations (jitter, channel switch) meaningful; the split
    (80 / 20, stratified) is drawn from ``seed``. The originals have 17 grey levels, so one of theirs is 16/255,
    Witches' Brew's budget on natural images: clean-label perturbations here get ``brew_eps`` = 40/255, and a blended
    trigger ``blend_alpha`` = 0.25 (at 0.2 it implants on 4 of 6 seeds), WaNet a finer, stronger warp (``wanet_*``).
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
    rng = seeded(seed, "digits")
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
