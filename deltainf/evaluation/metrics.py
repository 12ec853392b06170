"""Metrics that need ground truth: detection against the known poisons, poison success, whether an attack
took hold."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..models.training import predict_logits

IMPLANT_THRESHOLD = 0.5
LEARNED_OVER_CHANCE = 2.0  # clean accuracy must reach this multiple of chance for an attack to count as implanted


def detection_metrics(flagged: np.ndarray, is_poison: np.ndarray) -> dict:
    """TPR, precision, their harmonic mean F1 and the number flagged against the ground truth (fractions in [0, 1])."""
    flagged = np.asarray(flagged, bool)
    hits = int((flagged & is_poison).sum())
    n_flagged = int(flagged.sum())
    n_poison = int(is_poison.sum())
    tpr = hits / n_poison if n_poison else 0.0
    precision = hits / n_flagged if n_flagged else 0.0
    return {
        "tpr": tpr,
        "precision": precision,
        "f1": 2 * tpr * precision / (tpr + precision) if hits else 0.0,
        "n_flagged": n_flagged,
    }


def poison_success(model: nn.Module, x_triggered: torch.Tensor, target: int, device: torch.device) -> float:
    """Fraction of triggered victim-class test images predicted as the target class."""
    if len(x_triggered) == 0:
        return float("nan")
    return float((predict_logits(model, x_triggered, device).argmax(1) == target).float().mean())


def implant_problem(clean_acc: float, poison_success: float, num_classes: int) -> str | None:
    """Why an attack did not take hold, or None: poison success below 0.5, or a model no better than chance
    on clean images (one that sends everything to the target "succeeds" without any backdoor)."""
    chance = 1 / num_classes
    if not (poison_success == poison_success and poison_success >= IMPLANT_THRESHOLD):
        return f"poison success {poison_success:.2f} < {IMPLANT_THRESHOLD}"
    if clean_acc < LEARNED_OVER_CHANCE * chance:
        return f"clean accuracy {clean_acc:.2f}, no better than chance, {chance:.2f}: the model learned nothing"
    return None
