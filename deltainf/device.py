"""Where computation runs: the GPU when there is one, else the CPU."""
from __future__ import annotations

import os

import torch

from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available else cpu; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """A short human name for the device (shown in the app's sidebar)."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


THREADS_ENV = "DELTAINF_TORCH_THREADS"


def configure_cpu_threads() -> int:
    """Give torch the same CPU thread count in the app and the CLI: ``DELTAINF_TORCH_THREADS`` when set,
    else torch's default (one per physical core). Returns the count.

    A multi-threaded CPU sum adds in an order set by the thread count, and training grows those last-bit
    differences into a different model: the same seed flagged 45 points in the app (then one thread
    fewer than the CLI) and 43 in the CLI. So both use one rule, and the count is part of the cache key
    of everything trained on the CPU (:func:`numerics_tag`).
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{THREADS_ENV}={value!r}: give a whole number of CPU threads, 1 or more")
        torch.set_num_threads(int(value))
    return torch.get_num_threads()


def numerics_tag(device: torch.device) -> list[str]:
    """Part of the cache key of results trained or optimised on ``device``: the CPU thread count (see
    :func:`configure_cpu_threads`); nothing on a GPU."""
    return [f"cpu-threads-{torch.get_num_threads()}"] if device.type == "cpu" else []
