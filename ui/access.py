"""What the app may touch on the server: typed folder paths only under the roots the person who started it
allowed (``DELTAINF_ALLOWED_ROOTS``, separated by ``os.pathsep``), and a user's model code only when they
enabled it (``DELTAINF_ALLOW_MODEL_CODE=1``). Uploads are data only (weights through safetensors or
``weights_only``, images through PIL)."""
from __future__ import annotations

import os
from pathlib import Path

from deltainf.errors import DeltaInfError

ROOTS_ENV = "DELTAINF_ALLOWED_ROOTS"
CODE_ENV = "DELTAINF_ALLOW_MODEL_CODE"


class AccessError(DeltaInfError):
    """A path or model code the person who started the server did not allow."""


def allowed_roots() -> list[Path]:
    return [Path(p).expanduser().resolve() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]


def allowed_path(text: str, field: str) -> Path:
    """``text`` as a path under an allowed root; else one message saying how to allow it."""
    path = Path(text.strip()).expanduser().resolve()
    roots = allowed_roots()
    if not any(path == r or r in path.parents for r in roots):
        where = ", ".join(map(str, roots)) if roots else "none are allowed yet"
        raise AccessError(f"{field}: {path} is outside the folders this server may read ({where}). Whoever starts "
                          f"the app allows folders with {ROOTS_ENV}=/path/to/data{os.pathsep}/another "
                          f"before `streamlit run app.py`")
    return path


def model_code_allowed() -> bool:
    return os.environ.get(CODE_ENV, "").strip() == "1"


def check_model_spec(spec: str, field: str = "Model") -> None:
    """Model code (``file.py:callable``, ``package.module:callable``) runs on the server: only when enabled,
    and a file only under an allowed root."""
    spec = spec.strip()
    if ":" not in spec or spec.startswith("torchvision:"):
        return
    if not model_code_allowed():
        raise AccessError(f"{field}: {spec} would run that code on this server, which is off. Whoever starts the "
                          f"app enables model code with {CODE_ENV}=1 before `streamlit run app.py`")
    where = spec.rpartition(":")[0]
    if where.endswith(".py"):
        allowed_path(where, field)
