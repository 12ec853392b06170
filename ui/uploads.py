"""A user's uploaded file, once validated."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Upload:
    """A user's file, validated: raw bytes (weights) or a decoded uint8 image tensor (test image)."""

    name: str
    data: Any
    digest: str


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]
