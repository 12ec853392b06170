"""Last-hidden-layer activations: what the activation-based detectors and Witches' Brew look at."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

EMBED_BATCH = 256


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last ``nn.Linear`` layer: the classifier whose input is the last hidden layer."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise TypeError(f"{type(model).__name__} has no Linear layer to read last-layer activations from")
    return layers[-1]


@torch.no_grad()
def embeddings(model: nn.Module, x_uint8: torch.Tensor, device: torch.device,
               batch_size: int = EMBED_BATCH, probabilities: bool = False):
    """Last-hidden-layer activations (N, D) of uint8 images: the input of the last linear layer, read with a
    forward hook. With ``probabilities``, (activations, the model's class probabilities (N, C)) from the same pass."""
    model.to(device).eval()
    captured: list[torch.Tensor] = []
    hook = last_linear(model).register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    try:
        out, probs = [], []
        for s in range(0, len(x_uint8), batch_size):
            captured.clear()
            probs.append(model(x_uint8[s:s + batch_size].to(device).float().div_(255)).float().softmax(1).cpu())
            out.append(captured[0].float().cpu())
    finally:
        hook.remove()
    emb = torch.cat(out).flatten(1).numpy() if out else np.zeros((0, 0), np.float32)
    return (emb, torch.cat(probs).numpy() if probs else np.zeros((0, 0), np.float32)) if probabilities else emb
