"""Model weights in and out: safetensors, or a plain state dict read with ``weights_only=True``.

Nothing a user hands in is ever unpickled.
"""
from __future__ import annotations

import io
import pickle
import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError


def state_to_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().contiguous().numpy() for k, v in model.state_dict().items()}


def arrays_to_model(model: nn.Module, arrays: dict[str, np.ndarray]) -> nn.Module:
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
    return model.eval()


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as CPU tensors, contiguous (what safetensors writes)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def weights_to_bytes(model: nn.Module) -> bytes:
    """The model's weights as a safetensors file (for downloads)."""
    from safetensors.torch import save

    return save(state_of(model))


def load_weights_into(model: nn.Module, blob: bytes, filename: str = "weights") -> nn.Module:
    """Load user-supplied weights (safetensors, or a torch state dict) into ``model``.

    Raises :class:`CheckpointError` with a readable reason when the file is corrupt, is not a
    state dict, or belongs to another architecture or number of classes.
    """
    state = None
    if blob[:1] != b"PK":  # torch.save files are zip archives; try safetensors first otherwise
        try:
            from safetensors.torch import load

            state = load(blob)
        except Exception:
            state = None
    if state is None:
        try:
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "Unsupported global" not in str(exc):  # not objects weights_only refused: just not a checkpoint
                raise CheckpointError(f"{filename} is neither a safetensors file nor a readable torch state dict "
                                      f"(UnpicklingError); export weights with safetensors.torch.save_file") from None
            raise CheckpointError(f"{filename} holds pickled Python objects (a whole model, or classes of its own), "
                                  f"which are refused: unpickling can run code. Save the weights alone: "
                                  f"torch.save(model.state_dict(), path) or safetensors.torch.save_file") from None
        except Exception as exc:
            raise CheckpointError(f"{filename} is neither a safetensors file nor a readable torch state dict "
                                  f"({type(exc).__name__}); export weights with safetensors.torch.save_file") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{filename} does not hold a state dict of tensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = [f"{len(names)} {what} (e.g. {names[0]!r})" for names, what in
                 ((missing, "tensors missing"), (unexpected, "unexpected tensors")) if names]
        raise CheckpointError(f"{filename} does not fit this architecture: {' and '.join(parts)}")
    for k, v in expected.items():
        if state[k].shape != v.shape:
            raise CheckpointError(f"{filename} does not fit: {k} has shape {tuple(state[k].shape)}, "
                                  f"this model needs {tuple(v.shape)} (other number of classes or image size?)")
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in state.values()):
        raise CheckpointError(f"{filename} contains NaN or infinite weights")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in expected.items()})
    return model.eval()


def cached_model(store, key: str, make: Callable[[], nn.Module],
                 blank: Callable[[], nn.Module], notes: Callable[[], dict] | None = None) -> tuple[nn.Module, bool, dict]:
    """(model, came from the cache, notes): model ``key`` from ``store`` (its weights loaded into ``blank()``),
    or ``make()`` trained once under the key's lock and stored — with ``notes()`` (what making it chose),
    which a later load returns too."""
    made = {}

    def compute():
        start = time.perf_counter()
        made["model"] = make()
        return state_to_arrays(made["model"]), {"compute_s": time.perf_counter() - start,
                                                "notes": notes() if notes else {}}

    entry, hit = store.get_or_make(key, compute)
    model = made["model"].eval() if not hit else arrays_to_model(blank(), entry.arrays)
    return model, hit, entry.meta.get("notes", {})
