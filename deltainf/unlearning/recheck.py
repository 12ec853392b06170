"""The re-check loop of ``--until-clean``: unlearn, re-check the query, and while it is not clean detect
again on the new model and remove what is newly flagged.

The loop knows no ground truth: it is told how to unlearn a set, how to judge the query on a model and
how to detect again; an ``observe`` callback may add figures of its own to each round (an experiment adds
how many poisons the removed set holds).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import numpy as np
from torch import nn


def query_is_clean(predicted: int, target_probability: float, label: int, clean_below: float) -> bool:
    """The query is clean once the model no longer predicts its poisoned label ``label`` AND gives that label
    at most ``clean_below`` probability: a backdoor outvoted on this image but still pulling is not clean yet.
    This is one sign of three (see ``Investigation.recheck``)."""
    return predicted != label and target_probability <= clean_below


def share_sent_to(logits, label: int) -> float:
    """The share of images (their logits) a model sends to ``label``."""
    return float((np.asarray(logits).argmax(1) == label).mean())


def unlearn_until_clean(flagged: np.ndarray, max_rounds: int,
                        unlearn: Callable[[np.ndarray], tuple[nn.Module, str, dict]],
                        judge: Callable[[nn.Module, str, np.ndarray], tuple[dict, np.ndarray]],
                        observe: Callable[[np.ndarray], dict] | None = None,
                        within: Callable[[str], ContextManager] = lambda label: nullcontext()
                        ) -> tuple[nn.Module, dict, np.ndarray]:
    """Rounds of detect → unlearn → re-check, from the original model each time.

    ``unlearn(removed) -> (model, model key, metrics)``; ``judge(model, model key, removed) -> ({"clean": bool,
    …}, the flags of a fresh Δ-Influence round over the kept points)``. Stops when clean, when the fresh round
    flags nothing new, or after ``max_rounds``; each round runs ``within("round r/max_rounds")`` (a progress
    label). Returns the last model, its metrics with ``rounds``,
    ``total_removed``, ``clean`` and ``per_round``, and the removed set.
    """
    removed = np.asarray(flagged, bool).copy()
    per_round = []
    for r in range(1, max_rounds + 1):
        with within(f"round {r}/{max_rounds}"):
            model, key, m = unlearn(removed)
            verdict, fresh = judge(model, key, removed)
        per_round.append({"round": r, "n_removed": int(removed.sum()),
                          **{k: m[k] for k in ("clean_acc", "poison_success", "query_pred") if k in m},
                          **verdict, **(observe(removed) if observe else {})})
        if verdict["clean"] or r == max_rounds or not fresh.any():
            break
        removed[np.flatnonzero(~removed)[fresh]] = True
    return model, {**m, "rounds": len(per_round), "total_removed": int(removed.sum()),
                   "clean": per_round[-1]["clean"], "per_round": per_round}, removed
