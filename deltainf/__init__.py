"""Δ-Influence: find and unlearn data poisons through influence collapse.

The core is an :class:`~deltainf.investigation.Investigation` — a model, its training data and one
misbehaving test image — that needs no ground truth. An :class:`~deltainf.experiment.Experiment` (dataset +
attack + training recipe) is one source of investigations and adds the ground truth that evaluation uses.
Options are one validated :class:`~deltainf.config.Config`; attacks, detectors, unlearning methods, data
sources and architectures are registries (``deltainf.attacks.ATTACKS`` and so on).
"""
from .errors import DeltaInfError

__all__ = ["Config", "Experiment", "Investigation", "DeltaInfError"]
__version__ = "0.2.0"


def __getattr__(name):  # keep `import deltainf` light: these pull in torch
    if name == "Config":
        from .config import Config

        return Config
    if name == "Experiment":
        from .experiment import Experiment

        return Experiment
    if name == "Investigation":
        from .investigation import Investigation

        return Investigation
    raise AttributeError(name)
