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
import torch
from torch import nn

from ..influence.delta import delta_flags, delta_matrix
from ..suspicion.likeness import lookalikes
from ..models.training import predict_logits
from ..verdict import HOLDS, judge_fresh_round
from . import exact_method, from_scratch


def query_is_clean(predicted: int, target_probability: float, label: int, clean_below: float) -> bool:
    """The query is clean once the model no longer predicts its poisoned label ``label`` AND gives that label
    at most ``clean_below`` probability: a backdoor outvoted on this image but still pulling is not clean yet.
    This is one sign of three (see :func:`recheck`)."""
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


def recheck(stage, module: nn.Module, removed: np.ndarray, method: str, tau: float | None = None, k: int | None = None,
            first: np.ndarray | None = None, cleared: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Whether the backdoor is gone from ``module`` (the model of the unlearning ``stage``, an
    :class:`~deltainf.unlearning.stage.Unlearning`, unlearned by ``method`` without ``removed``), judged without
    ground truth. Three signs must agree:

    * the test image no longer gets its label y: P(y) under ½ (:data:`~deltainf.verdict.HOLDS`), and predicted
      otherwise at most ``clean_below`` — or else the verdict on the fresh round (below) finds no evidence of
      poisoning: a trigger alone can pull an image a little towards y under a model without any poison (a universal
      pattern, a weak model), and keep y on top of a weak model's scattered guesses;
    * for a method that starts from the trained weights (all but EU), the removed images that look like it
      (labelled y, more like it than a typical image of y; of the ``first`` round's removed set) go to y at
      most ``trigger_margin`` more often than under EU: such a method can leave the backdoor alive with no
      poison left in the data, outvoted on the one test image but working on them;
    * a fresh Δ-Influence round on the new model (at this τ/k, over the points kept) finds no poisons left: it flags
      few images that look like the test image — at most ``max_fresh``, or ``max_fresh_share`` of the removed
      look-alikes (points ``cleared``, given back, do not count) — or, when it flags more, the verdict on that round
      (:func:`~deltainf.verdict.judge_fresh_round`) finds no evidence of poisoning: clean images of y collapse too.

    Returns the signs and what to remove next should they not agree, over the kept points: the fresh round's flags
    and the *kin* of the removed set (``stage.kin``), poisons sharing the found ones' trigger.
    """
    removed = np.asarray(removed, bool)
    first = removed if first is None else np.asarray(first, bool)
    y, labels, device, c = stage.query.label, stage.data.y_train.numpy(), stage.device, stage.config
    probs = torch.softmax(predict_logits(module, stage.query.image[None], device), 1)[0]  # one forward pass
    predicted, p = int(probs.argmax()), float(probs[y])
    like = lookalikes(stage.activations.train(), stage.activations.of_query(), labels, y)
    look = torch.as_tensor(np.flatnonzero(first & like))
    n_lookalikes = int((removed & like).sum())
    rate = reference = None
    if len(look) and not from_scratch(method):
        rate = share_sent_to(predict_logits(module, stage.data.x_train[look], device), y)
        retrained, _ = stage.unlearn(exact_method(), first)
        reference = share_sent_to(predict_logits(retrained, stage.data.x_train[look], device), y)
    keep = np.flatnonzero(~removed)
    tau, k = stage.influence.tau_k(tau=tau, k=k)[:2]
    scores = stage.influence.rescore(module, stage.unlearn_key(method, removed), keep)
    fresh = delta_flags(delta_matrix(scores), tau, k)
    counted = like[keep] if cleared is None else like[keep] & ~np.asarray(cleared, bool)[keep]
    fresh_like = int((fresh & counted).sum())
    signs = {"query_target_prob": p, "trigger_rate": rate, "reference_rate": reference,
             "n_lookalikes": n_lookalikes, "fresh_flags": int(fresh.sum()), "fresh_lookalikes": fresh_like}
    freed = p < HOLDS and (rate is None or rate <= reference + c.trigger_margin)
    clean = freed and query_is_clean(predicted, p, y, c.clean_below)
    if freed and (not clean or fresh_like > max(c.max_fresh, c.max_fresh_share * n_lookalikes)):
        fresh_verdict = judge_fresh_round(stage, module, removed, scores, tau, k)
        signs["fresh_verdict"] = fresh_verdict.as_dict()
        clean = not fresh_verdict.poisoned
    kin = stage.kin(removed)[keep]
    return {**signs, "kin": int(kin.sum()), "clean": clean}, fresh | kin
