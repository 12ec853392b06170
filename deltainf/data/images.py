"""Reading one image file into the engine's pixel format (uint8, 3×H×W)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}


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
