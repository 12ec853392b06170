"""Δ-Influence: find and unlearn data poisons through influence collapse.

Users meet :class:`Config` (every option, validated) and :class:`Pipeline` (the cached stages);
detectors, attacks and unlearners are registries in :mod:`deltainf.detect`,
:mod:`deltainf.attacks` and :mod:`deltainf.unlearn`.
"""
from .config import Config
from .errors import DeltaInfError

__all__ = ["Config", "Pipeline", "DeltaInfError"]
__version__ = "0.1.0"


def __getattr__(name):  # keep `import deltainf` light: the pipeline pulls in torch
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
