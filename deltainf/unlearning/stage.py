"""The unlearning stage of an investigation: remove a suspect set with any registered method, re-check the model
without ground truth, and --until-clean's loop with its give-back. Every model is cached by the content of what made
it; an :class:`Evaluator` (a source that knows the poisons) may add figures, never decisions."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..data.stream import take
from ..models.training import accuracy, predict_logits, rebalanced
from ..options import option
from ..store import array_fingerprint, content_key
from ..store.checkpoints import cached_model
from ..suspicion.likeness import kin as kin_of
from ..suspicion.relabel import dirty_label, relabelled
from . import UNLEARNERS, UnlearnInput, exact_method, from_scratch
from .recheck import recheck, unlearn_until_clean


@dataclass(frozen=True)
class RecheckOptions:
    """When a model counts as clean, and how --until-clean goes on while it does not."""

    until_clean: bool = option(False, "after unlearning, re-check without ground truth (the test image, the removed "
                                      "look-alikes, a fresh Δ-Influence round); while the backdoor is found, detect "
                                      "again and remove more")
    max_rounds: int = option(3, "most detect → unlearn rounds with --until-clean", low=1)
    clean_below: float = option(0.1, "with --until-clean: the test image is clean once it is not predicted as the "
                                      "target AND the target's probability on it is at most this, or, above it, "
                                      "the verdict on a fresh Δ-Influence round finds no evidence of poisoning "
                                      "(1 = the prediction alone)", kind="probability")
    escalate: bool = option(False, "with --until-clean: when the check still finds the backdoor after the last "
                                   "round of a cheap method, unlearn exactly (EU) what it removed, and go on")
    max_fresh: int = option(2, "with --until-clean: clean also needs a fresh Δ-Influence round on the new model to "
                               "flag few images that look like the test image: this many, or --max-fresh-share of "
                               "the removed ones if more", low=0)
    max_fresh_share: float = option(0.2, "with --until-clean: the fresh round may flag this share of the number of "
                                         "removed images that look like the test image", kind="fraction")
    trigger_margin: float = option(0.05, "with --until-clean: clean also needs a method other than EU to send the "
                                         "removed images that look like the test image to its label at most this "
                                         "much more often than EU (a model retrained without them) does",
                                   kind="fraction")


class Evaluator(Protocol):
    """Figures only a source with ground truth can add (e.g. poison success); never used to decide anything."""

    def evaluate_model(self, module: nn.Module, key: str) -> dict: ...

    def evaluate_removal(self, removed: np.ndarray) -> dict: ...


class Unlearning:
    """Models of one investigation without some of its training points: retrained (exact unlearning, the
    relabelling), unlearned by a method, re-checked, and cleaned round by round. ``model`` is a
    :class:`~deltainf.models.training.TrainedModel`; ``config`` carries :class:`RecheckOptions`, the shared
    evidence's options (:class:`~deltainf.suspicion.SuspicionOptions`), the verdict's and the methods' settings;
    ``influence`` (an :class:`~deltainf.influence.stages.Influence`) rescores the queries under a new model,
    ``activations`` (an :class:`~deltainf.suspicion.activations.Activations`) tells which images look like the test
    image."""

    def __init__(self, model, data, query, config, store, reporter, timings, influence, activations,
                 evaluator: Evaluator | None = None):
        self.model, self.data, self.query, self.config, self.store = model, data, query, config, store
        self.reporter, self.timings, self.evaluator = reporter, timings, evaluator
        self.influence, self.activations = influence, activations

    @property
    def device(self) -> torch.device:
        return self.model.recipe.device

    # ----------------------------------------------------------------- models retrained without a set
    def predict_without(self, removed: np.ndarray) -> np.ndarray:
        """The labels a model trained by the recipe without the ``removed`` points gives every training point, classes
        rebalanced (:func:`~deltainf.models.training.rebalanced`: a class mostly set aside is still learnt); cached."""
        removed, recipe = np.asarray(removed, bool), self.model.recipe

        def make():
            idx = torch.as_tensor(rebalanced(~removed, self.data.y_train.numpy(), recipe.seed))
            module = recipe.train(take(self.data.x_train, idx), self.data.y_train[idx], progress=self.reporter,
                                  stage="retrain without the candidates")
            return {"predicted": predict_logits(module, self.data.x_train, self.device).argmax(1).numpy()}, {}
        key = content_key("predict-without", self.model.key, recipe.key(), array_fingerprint(np.flatnonzero(removed)))
        return self.store.get_or_make(key, make)[0].arrays["predicted"]

    def query_without(self, removed: np.ndarray) -> float:
        """The probability a model retrained without the ``removed`` points (exact unlearning) gives the test image its
        label y."""
        return self.query_target_prob(self.retrained_without(removed))

    def retrained_without(self, removed: np.ndarray) -> nn.Module:
        """A model retrained by the recipe without the ``removed`` points (exact unlearning; cached)."""
        return self.unlearn(exact_method(), removed)[0]

    # ----------------------------------------------------------------- unlearning
    def evaluate(self, module: nn.Module, key: str) -> dict:
        """The query's predicted label under ``module``, clean accuracy when there is a held-out split, and
        what the evaluator adds (cached by the model key)."""
        mkey = content_key("metrics", key, array_fingerprint(self.query.image),
                           array_fingerprint(self.data.x_test, self.data.y_test))
        entry, _ = self.store.get_or_make(mkey, lambda: ({}, self._evaluate(module)))
        return {**entry.meta, **(self.evaluator.evaluate_model(module, key) if self.evaluator else {})}

    def _evaluate(self, module: nn.Module) -> dict:
        out = {"query_pred": int(predict_logits(module, self.query.image[None], self.device).argmax(1)[0])}
        if len(self.data.y_test):
            out["clean_acc"] = accuracy(module, self.data.x_test, self.data.y_test, self.device)
        return out

    def unlearn_key(self, method: str, flagged: np.ndarray) -> str:
        """Cache key of the model that ``method`` makes when removing ``flagged``."""
        entry = UNLEARNERS[method]
        return content_key("unlearn", method, entry.attrs.get("version", 1), entry.settings_key(self.config),
                           self.config.max_damage, self.model.key, self.model.recipe.key(),
                           array_fingerprint(np.flatnonzero(flagged)))

    def unlearn(self, method: str, flagged: np.ndarray) -> tuple[nn.Module, dict]:
        """Remove the ``flagged`` training points with unlearning ``method``; returns (model, metrics)."""
        flagged = np.asarray(flagged, bool)
        key = self.unlearn_key(method, flagged)
        start = time.perf_counter()
        entry = UNLEARNERS[method]
        inputs = UnlearnInput(self.model.module, self.data.x_train, self.data.y_train, flagged, self.model.recipe,
                              self.reporter, max_damage=self.config.max_damage)
        with self.timings.timed("unlearn_s"):
            module, hit, notes = cached_model(self.store, key, lambda: entry(inputs, entry.settings_from(self.config)),
                                              self.model.recipe.new_model, lambda: inputs.notes)
        self.timings.cached["unlearn_s"] = hit
        return module, {**self.evaluate(module, key), "n_removed": int(flagged.sum()), "cached": bool(hit),
                        "seconds": time.perf_counter() - start, **({"chose": notes} if notes else {})}

    def query_target_prob(self, module: nn.Module) -> float:
        """The probability ``module`` gives the query's label y on the query image."""
        return float(torch.softmax(predict_logits(module, self.query.image[None], self.device), 1)[0, self.query.label])

    # ----------------------------------------------------------------- the re-check and --until-clean
    def recheck(self, module: nn.Module, removed: np.ndarray, method: str, tau: float | None = None,
                k: int | None = None, first: np.ndarray | None = None,
                cleared: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        """Whether the backdoor is gone from ``module`` (unlearned by ``method`` without ``removed``), judged without
        ground truth (:func:`~deltainf.unlearning.recheck.recheck`); and what to remove next should it not be."""
        return recheck(self, module, removed, method, tau, k, first, cleared)

    def kin(self, removed: np.ndarray) -> np.ndarray:
        """The kept images labelled y at least as like the test image (:func:`~deltainf.suspicion.likeness.likeness`) as
        the ``kin_quantile`` quantile of the removed images like it (those more like it than the median image of y)."""
        return kin_of(np.asarray(removed, bool), self.activations.likeness(), self.data.y_train.numpy(),
                      self.query.label, self.config.kin_quantile)

    def until_clean(self, method: str, flagged: np.ndarray, tau: float | None = None, k: int | None = None,
                    max_rounds: int | None = None, escalate: bool | None = None) -> tuple[nn.Module, dict]:
        """Unlearn the flagged points and their kin (:meth:`kin`), then re-check (:meth:`recheck`): while the
        backdoor is not gone, add what the check's fresh Δ-Influence round flags and the kin of the removed set,
        and unlearn again (from the original model); once it is gone, give back the clean points removed with the
        poisons (:meth:`_give_back`). With ``escalate``, a cheap method that still fails the check
        after its last round hands what it removed, and what its last check flagged, to exact unlearning (EU),
        which goes on the same way."""
        flagged = np.asarray(flagged, bool)
        first = flagged | self.kin(flagged)

        def judge_for(name):  # at the first round's τ/k, and sign 2 on the first round's removed set
            return lambda module, key, removed, **kw: self.recheck(module, removed, name, tau, k, first=first, **kw)

        observe = self.evaluator.evaluate_removal if self.evaluator else None
        rounds = max_rounds or self.config.max_rounds
        model, m, removed = unlearn_until_clean(first, rounds, lambda r: self._unlearn_keyed(method, r),
                                                judge_for(method), observe, self.reporter.within)
        if m["clean"]:
            model, m = self._give_back(method, model, m, removed, judge_for(method), observe)
        escalate = self.config.escalate if escalate is None else escalate
        if not m["clean"] and escalate and not from_scratch(method):
            _, fresh = self.recheck(model, removed, method, tau, k, first=first)  # the last round's (cached)
            start = removed.copy()
            start[np.flatnonzero(~removed)[fresh]] = True
            exact = exact_method()
            with self.reporter.within("escalated to EU"):
                model, after, _ = unlearn_until_clean(start, rounds, lambda r: self._unlearn_keyed(exact, r),
                                                      judge_for(exact), observe, self.reporter.within)
            m = {**after, "escalated_from": method, "before_escalation": m}
        return model, {**m, "kin_added": int((first & ~flagged).sum())}

    def _give_back(self, method: str, model: nn.Module, m: dict, removed: np.ndarray, judge, observe
                   ) -> tuple[nn.Module, dict]:
        """Once the model is clean: give back the removed points whose label a model trained without the suspects
        still learns (:func:`~deltainf.suspicion.relabel.relabelled` — clean images removed with the poisons),
        unlearn only the rest, and keep that model when it passes the check too. A dirty-label poison is seldom
        given back (a model trained without it labels it otherwise; one of 50 in a test) and the check judges the
        model without the rest; when no removed point is relabelled so (clean-label poisons), nothing is given.
        Clean images given back leave the test image where the clean round left it: when they raise its P(y) above
        both that round's and ``clean_below``, they hold it up (poisons a model that learnt the trigger without them
        keeps at y), and the give-back is refused."""
        labels = self.data.y_train.numpy()
        with self.reporter.within("giving back"):
            suspects, _, _ = relabelled(removed, labels, self.predict_without, self.config.refined_rounds, self.kin)
            if not dirty_label(suspects, removed, self.config.refined_min_share) or np.array_equal(suspects, removed):
                return model, m
            back, key, after = self._unlearn_keyed(method, suspects)
            before = m["per_round"][-1]["query_target_prob"]
            pulled = self.query_target_prob(back) > max(self.config.clean_below, before)
            verdict = {"clean": False} if pulled else judge(back, key, suspects, cleared=removed & ~suspects)[0]
        if not verdict["clean"]:
            return model, {**m, "give_back_refused": int((removed & ~suspects).sum()),
                           **({"give_back_pulls_it": True} if pulled else {})}
        last = {"round": m["rounds"] + 1, "n_removed": int(suspects.sum()),
                **{k: after[k] for k in ("clean_acc", "poison_success", "query_pred") if k in after},
                **verdict, **(observe(suspects) if observe else {}), "given_back": int((removed & ~suspects).sum())}
        return back, {**after, "rounds": m["rounds"] + 1, "total_removed": int(suspects.sum()), "clean": True,
                      "given_back": last["given_back"], "per_round": [*m["per_round"], last]}

    def _unlearn_keyed(self, method: str, removed: np.ndarray) -> tuple[nn.Module, str, dict]:
        module, metrics = self.unlearn(method, removed)
        return module, self.unlearn_key(method, removed), metrics
