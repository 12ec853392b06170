"""A model spec, as an analyst names their architecture: a built-in one (``cnn``, ``resnet18``),
``torchvision:<name>`` (built with the data's number of classes; weights only from the user, nothing is
downloaded), or their own code, ``path/to/file.py:callable`` or ``package.module:callable`` — a callable
taking ``num_classes`` and returning an ``nn.Module``.

The engine feeds every model float pixels in [0, 1], N×3×H×W. Built-in models normalise inside; a user's
model does too unless ``input_norm`` says the engine should normalise for it (with the training data's
statistics, or ImageNet's).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from . import ARCHITECTURES, Normalize, build_model

#: Who normalises the [0, 1] pixels: the model itself, or the engine with the data's or ImageNet's statistics.
INPUT_NORMS = ("inside", "data", "imagenet")
IMAGENET = (torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]))
#: The engine's recipe for a model it does not know (the small CNN's): epochs, learning rate, optimiser, augment.
DEFAULT_RECIPE = {"epochs": 12, "lr": 2e-3, "optimizer": "adam", "augment": False}


@dataclass(frozen=True)
class Architecture:
    """A resolved model spec: how to build the network, the engine's recipe for it, and a fingerprint of its
    code (part of every model key, so an edited file is a new model)."""

    spec: str
    kind: str            # "builtin", "torchvision" or "code"
    fingerprint: str
    recipe: dict         # epochs, lr, optimizer, augment

    def network(self, num_classes: int) -> nn.Module:
        """The bare network, as the spec's code builds it."""
        if self.kind == "builtin":
            return ARCHITECTURES[self.spec](num_classes)
        if self.kind == "torchvision":
            from torchvision import models

            return models.get_model(self.spec.split(":", 1)[1], weights=None, num_classes=num_classes)
        return _call_user_code(self.spec, num_classes)

    def build(self, num_classes: int, mean: torch.Tensor, std: torch.Tensor, input_norm: str = "inside") -> nn.Module:
        """The model the engine runs: it takes [0, 1] pixels (the built-ins normalise with the data's statistics)."""
        if self.kind == "builtin":
            return build_model(self.spec, num_classes, mean, std)
        net = self.network(num_classes)
        if input_norm == "inside":
            return net
        stats = (mean, std) if input_norm == "data" else IMAGENET
        return nn.Sequential(Normalize(*stats), net)

    def weights_part(self, model: nn.Module, input_norm: str = "inside") -> nn.Module:
        """The part of ``model`` that the user's weights describe (without a normaliser the engine added)."""
        return model[1] if self.kind != "builtin" and input_norm != "inside" else model


def resolve(spec: str) -> Architecture:
    """The :class:`Architecture` of ``spec``; one clear line when it names nothing that can be built."""
    spec = (spec or "").strip()
    if spec in ARCHITECTURES:
        attrs = ARCHITECTURES[spec].attrs
        return Architecture(spec, "builtin", spec, {k: attrs[k] for k in DEFAULT_RECIPE})
    if spec.startswith("torchvision:"):
        from torchvision import models

        name = spec.split(":", 1)[1]
        known = models.list_models(module=models)
        if name not in known:
            raise ConfigError(f"--model {spec}: torchvision has no classification model {name!r} "
                              f"(e.g. {', '.join(known[:6])}; see torchvision.models.list_models())")
        return Architecture(spec, "torchvision", spec, dict(DEFAULT_RECIPE))
    if ":" in spec:
        return Architecture(spec, "code", _code_fingerprint(spec), dict(DEFAULT_RECIPE))
    raise ConfigError(f"unknown --model {spec!r}; give {', '.join(ARCHITECTURES)}, torchvision:<name>, "
                      f"path/to/file.py:callable or package.module:callable")


def torchvision_names() -> list[str]:
    """torchvision's classification architectures (for choosers)."""
    from torchvision import models

    return models.list_models(module=models)


def _split(spec: str) -> tuple[str, str]:
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ConfigError(f"--model {spec}: write path/to/file.py:callable or package.module:callable")
    return where, name


def _code_fingerprint(spec: str) -> str:
    where, _ = _split(spec)
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f"--model {spec}: {path} is not a file")
        return hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not Path(found.origin).is_file():
        raise ConfigError(f"--model {spec}: no module {where!r} can be imported (is it installed, or on PYTHONPATH?)")
    return hashlib.sha256(Path(found.origin).read_bytes()).hexdigest()[:24]


def _load_module(where: str, spec: str):
    try:
        if where.endswith(".py"):
            path = Path(where).expanduser().resolve()
            name = f"deltainf_user_model_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
            loader = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module  # dataclasses and pickling look modules up by name
            loader.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except Exception as exc:  # the user's code: any failure is theirs to fix, in one line
        raise ModelError(f"model code {where} failed to import: {type(exc).__name__}: {exc}") from None


def _call_user_code(spec: str, num_classes: int) -> nn.Module:
    where, name = _split(spec)
    fn = getattr(_load_module(where, spec), name, None)
    if not callable(fn):
        raise ModelError(f"model code {where} has no callable {name!r}")
    try:
        net = fn(num_classes)
    except Exception as exc:
        raise ModelError(f"model code {spec}({num_classes}) failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise ModelError(f"model code {spec}({num_classes}) returned {type(net).__name__}, not a torch nn.Module")
    return net


def check_model(model: nn.Module, num_classes: int, image_shape: tuple[int, int, int], what: str) -> None:
    """One clear line when ``model`` cannot be investigated: no layer kronfluence tracks, a forward pass that
    fails on the data's images, or outputs that do not match the number of classes."""
    if not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()):
        raise ModelError(f"{what} has no Conv2d or Linear layer, the only layers EK-FAC (kronfluence) can track")
    try:
        with torch.no_grad():
            out = model.eval()(torch.zeros(2, *image_shape))
    except Exception as exc:
        raise ModelError(f"{what} fails on {image_shape[1]}×{image_shape[2]} images in [0, 1]: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor) or out.shape != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{what} gives outputs of shape {shape} for 2 images; the data has {num_classes} classes, "
                         f"so it should give (2, {num_classes})")
