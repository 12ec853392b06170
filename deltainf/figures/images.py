"""Images for display: uint8 pixels enlarged without smoothing (a few-pixel trigger stays crisp), and inlined
as data URIs."""
from __future__ import annotations

import base64
import io

import numpy as np


def to_uint8_hwc(image) -> np.ndarray:
    """One image (3, H, W) as uint8 or float in [0, 1] (numpy or torch) → uint8 (H, W, 3)."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(a.transpose(1, 2, 0))


def upscale(image, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement (no smoothing, so a few-pixel trigger stays crisp) → uint8 (H·s, W·s, 3)."""
    a = to_uint8_hwc(image)
    return a.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else a


def thumb_scale(image_side: int, target: int = 96) -> int:
    """Integer factor that brings an image side close to ``target`` pixels."""
    return max(1, round(target / max(1, image_side)))


def thumbnails(images, target: int = 96) -> list[np.ndarray]:
    """Upscaled thumbnails for a batch (N, 3, H, W)."""
    if len(images) == 0:
        return []
    s = thumb_scale(images.shape[-1], target)
    return [upscale(im, s) for im in images]


def png_data_uri(hwc: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def outlined(image, pixels: np.ndarray, target: int = 192, colour=(213, 94, 0)) -> np.ndarray:
    """The image enlarged to about ``target`` pixels with the ``pixels`` (bool (H, W)) outlined: where a stamp is."""
    s = thumb_scale(np.shape(image)[-1], target)
    out = upscale(image, s).copy()
    edge = max(1, s // 6)
    for r, c in np.argwhere(pixels):
        inside = (slice(r * s, (r + 1) * s), slice(c * s, (c + 1) * s))
        block = out[inside].copy()
        out[inside] = colour
        out[r * s + edge:(r + 1) * s - edge, c * s + edge:(c + 1) * s - edge] = block[edge:s - edge, edge:s - edge]
    return out
