"""The core of Δ-Influence: one misbehaving test image, investigated.

(model, training images + labels, one query image + its label) → EK-FAC factors → the T + 1 queries →
scores → Δ → detections → unlearning → re-check. Every stage is cached by the content of what determines
it. An investigation needs no ground truth and knows no attack; a source that knows more (an
:class:`~deltainf.experiment.Experiment`) can pass an :class:`Evaluator` that adds its own figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from .data import ImageData
from .data.stream import take
from .detectors import CONFIGURED, DETECTORS, Detection, DetectorInput, needs
from .influence import stages
from .influence.delta import delta_matrix
from .influence.queries import Queries
from .influence.suggest import resolve_tau_k
from .models.features import embeddings
from .models.training import Recipe, accuracy, predict_logits, rebalanced
from .progress import Reporter, Timings
from .store import Store, array_fingerprint, content_key
from .store.checkpoints import cached_model
from .suspicion.likeness import kin as kin_of, likeness
from .suspicion.relabel import dirty_label, relabelled
from .unlearning import UNLEARNERS, UnlearnInput, exact_method, from_scratch
from .unlearning.recheck import recheck, unlearn_until_clean
from .verdict import Verdict, verdict_of


@dataclass
class TrainedModel:
    """The model under investigation: its weights, the content key of what determined them, and the recipe
    that trains its architecture again (exact unlearning, fine-tuning, the re-check)."""

    module: nn.Module
    key: str
    recipe: Recipe


@dataclass(frozen=True)
class Query:
    """The misbehaving test image (uint8 3×H×W), the label y the model gives it, and the seed of its copies."""

    image: torch.Tensor
    label: int
    draw_seed: int


class Evaluator(Protocol):
    """Figures only a source with ground truth can add (e.g. poison success); never used to decide anything."""

    def evaluate_model(self, module: nn.Module, key: str) -> dict: ...

    def evaluate_removal(self, removed: np.ndarray) -> dict: ...


class Investigation:
    """Δ-Influence on one query. ``config`` carries the options (Δ, detectors, unlearning; see
    :class:`~deltainf.config.Config`); ``data`` the training set (and a held-out split, maybe empty)."""

    def __init__(self, model: TrainedModel, data: ImageData, query: Query, config, store: Store, *,
                 reporter: Reporter | None = None, timings: Timings | None = None, evaluator: Evaluator | None = None):
        self.model, self.data, self.query, self.config, self.store = model, data, query, config, store
        self.reporter = reporter or Reporter()
        self.timings = timings or Timings()
        self.evaluator = evaluator
        self._scores: dict[str, np.ndarray] = {}
        self._detections: dict[tuple, Detection] = {}
        self._features: dict[str, np.ndarray] = {}
        self._verdict: Verdict | None = None

    @property
    def device(self) -> torch.device:
        return self.model.recipe.device

    @property
    def precision(self) -> str:
        return self.model.recipe.precision

    # ----------------------------------------------------------------- queries, factors, scores, Δ
    def queries(self, mode: str | None = None) -> Queries:
        """The original query plus its T transformed copies, for ``mode`` (default: the configured one)."""
        return stages.query_set(self.store, self.query.image, self.query.label, self.data.num_classes,
                                self.config.transforms, mode or self.config.mode, self.query.draw_seed)

    def factors_key_for(self, model_key: str, keep: np.ndarray | None = None) -> str:
        # The model key already hashes the training data it was fitted on; a subset adds its indices.
        subset = [] if keep is None else [array_fingerprint(torch.as_tensor(keep, dtype=torch.long))]
        numerics = [] if self.precision == "fp32" else [self.precision, "tf32-lambda"]  # see ekfac.tensor_cores
        n = self.config.lambda_examples
        return content_key("factors", model_key, *subset, *numerics, *([] if n is None else [f"lambda-{n}"]))

    @property
    def factors_key(self) -> str:
        return self.factors_key_for(self.model.key)

    def _fitting(self) -> dict:  # what the factor fit is told, for the factors and for the scores that fit them
        return dict(seed=self.config.seed, precision=self.precision, timings=self.timings, progress=self.reporter,
                    lambda_examples=self.config.lambda_examples)

    def factors(self):
        """Fit (or find) EK-FAC factors for the model on its training set."""
        return stages.factors(self.store, self.factors_key, self.model.module, self.data.x_train, self.data.y_train,
                              self.device, **self._fitting())

    def scores(self, mode: str | None = None) -> np.ndarray:
        """EK-FAC influence, shape (T+1, N): row 0 the original query, rows 1..T its copies."""
        mode = mode or self.config.mode
        if mode not in self._scores:
            self._scores[mode] = self._scores_for(self.model.module, self.factors_key, self.data.x_train,
                                                  self.data.y_train, mode)
        return self._scores[mode]

    def _scores_for(self, module, factors_key, x, y, mode, tally: str = "") -> np.ndarray:
        return stages.scores(self.store, factors_key, module, x, y, self.queries(mode), self.device,
                             damping=self.config.damping, tally=tally, **self._fitting())

    def rescore(self, module: nn.Module, model_key: str, keep: np.ndarray, mode: str | None = None) -> np.ndarray:
        """Scores (T+1, len(keep)) of the same queries under another model trained on the points ``keep``
        (an unlearned model, for the re-check loop); tallied apart as ``recheck_…``."""
        keep_t = torch.as_tensor(keep, dtype=torch.long)
        return self._scores_for(module, self.factors_key_for(model_key, keep), take(self.data.x_train, keep_t),
                                self.data.y_train[keep_t], mode or self.config.mode, tally="recheck_")

    def delta(self, mode: str | None = None) -> np.ndarray:
        """Δ (T, N): each copy's score minus the original's."""
        return delta_matrix(self.scores(mode))

    def tau_k(self, mode: str | None = None, tau: float | None = None, k: int | None = None) -> tuple[float, int, bool]:
        """(τ, k, suggested?): ``tau``/``k``, else the configured ones, with any still unset suggested from Δ."""
        tau, k = (self.config.tau if tau is None else tau), (self.config.k if k is None else k)
        return resolve_tau_k(self.scores(mode), tau, k)

    # ----------------------------------------------------------------- detection
    def features(self) -> np.ndarray:
        """Last-hidden-layer activations of the training set under the model (cached by the model key)."""
        if "train" not in self._features:
            entry, _ = self.store.get_or_make(content_key("activations", "probabilities", self.model.key), lambda: (
                dict(zip(("emb", "prob"), embeddings(self.model.module, self.data.x_train, self.device,
                                                     probabilities=True))), {}))
            self._features["train"], self._features["prob"] = entry.arrays["emb"], entry.arrays["prob"]
        return self._features["train"]

    def confidence(self) -> np.ndarray:
        """The model's probability of the test image's label y for every training image (read with the features)."""
        self.features()
        return self._features["prob"][:, self.query.label]

    def query_features(self) -> np.ndarray:
        """The test image's last-hidden-layer activations under the model."""
        if "query" not in self._features:
            self._features["query"] = embeddings(self.model.module, self.query.image[None], self.device)[0]
        return self._features["query"]

    def likeness(self) -> np.ndarray:
        """Every training image's :func:`~deltainf.suspicion.likeness.likeness` to the test image (relative to the
        median image of its label y): what the refined Δ-Influence thresholds and the kin are chosen by."""
        if "likeness" not in self._features:
            self._features["likeness"] = likeness(self.features(), self.query_features(), self.data.y_train.numpy(),
                                                  self.query.label)
        return self._features["likeness"]

    def detect(self, name: str, tau: float | None = None, k: int | None = None) -> Detection:
        """Run detector ``name`` with exactly the inputs it declares; τ/k default to the configured ones."""
        tau, k = (self.config.tau if tau is None else tau), (self.config.k if k is None else k)
        if (name, tau, k) not in self._detections:
            entry, want = DETECTORS[name], needs(name)
            modes = [self.config.mode if m == CONFIGURED else m for m in want["modes"]]
            inputs = DetectorInput(
                labels=self.data.y_train.numpy(), seed=self.config.seed, mode=self.config.mode,
                scores={m: self.scores(m) for m in modes}, tau=tau, k=k, query_label=self.query.label,
                **({"features": self.features(), "query_features": self.query_features(),
                    "confidence": self.confidence()} if want["features"] else {}),
                **({"images": self.data.x_train, "query_image": self.query.image} if want["images"] else {}),
                reference=self.data.x_test if want["reference"] and len(self.data.x_test) else None,
                predict_without=self.predict_without if want["retrains"] else None,
                query_without=self.query_without if want["retrains"] else None)
            self._detections[(name, tau, k)] = entry(inputs, entry.settings_from(self.config))
        return self._detections[(name, tau, k)]

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

    def query_without(self, removed: np.ndarray) -> int:
        """The label a model retrained without the ``removed`` points gives the test image (exact unlearning)."""
        return self.unlearn(exact_method(), removed)[1]["query_pred"]

    def retrained_without(self, removed: np.ndarray) -> nn.Module:
        """A model retrained by the recipe without the ``removed`` points (exact unlearning; cached)."""
        return self.unlearn(exact_method(), removed)[0]

    # ----------------------------------------------------------------- the verdict
    def verdict(self) -> Verdict:
        """Whether there is evidence of poisoning behind the test image (:func:`~deltainf.verdict.verdict_of`)."""
        self._verdict = self._verdict or verdict_of(self)
        return self._verdict

    def accused(self, flagged: np.ndarray) -> np.ndarray:
        """``flagged`` as the suspect set when the verdict finds evidence of poisoning (or ``despite_verdict``
        overrides it), else empty: the flags stay an exploration."""
        poisoned = self.config.despite_verdict or self.verdict().poisoned
        return np.asarray(flagged, bool) & poisoned

    # ----------------------------------------------------------------- unlearning and the re-check
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
        return module, {**self.evaluate(module, key), "n_removed": int(flagged.sum()),
                        "seconds": time.perf_counter() - start, **({"chose": notes} if notes else {})}

    def query_target_prob(self, module: nn.Module) -> float:
        """The probability ``module`` gives the query's label y on the query image."""
        return float(torch.softmax(predict_logits(module, self.query.image[None], self.device), 1)[0, self.query.label])

    def recheck(self, module: nn.Module, removed: np.ndarray, method: str, tau: float | None = None,
                k: int | None = None, first: np.ndarray | None = None,
                cleared: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        """Whether the backdoor is gone from ``module`` (unlearned by ``method`` without ``removed``), judged without
        ground truth (:func:`~deltainf.unlearning.recheck.recheck`); and what to remove next should it not be."""
        return recheck(self, module, removed, method, tau, k, first, cleared)

    def kin(self, removed: np.ndarray) -> np.ndarray:
        """The kept images labelled y at least as like the test image (:func:`~deltainf.suspicion.likeness.likeness`) as
        the ``kin_quantile`` quantile of the removed images like it (those more like it than the median image of y)."""
        return kin_of(np.asarray(removed, bool), self.likeness(), self.data.y_train.numpy(), self.query.label,
                   self.config.kin_quantile)

    def unlearn_until_clean(self, method: str, flagged: np.ndarray, tau: float | None = None, k: int | None = None,
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
        model without the rest; when no removed point is relabelled so (clean-label poisons), nothing is given."""
        labels = self.data.y_train.numpy()
        with self.reporter.within("giving back"):
            suspects, _, _ = relabelled(removed, labels, self.predict_without, self.config.refined_rounds, self.kin)
            if not dirty_label(suspects, removed, self.config.refined_min_share) or np.array_equal(suspects, removed):
                return model, m
            back, key, after = self._unlearn_keyed(method, suspects)
            verdict, _ = judge(back, key, suspects, cleared=removed & ~suspects)
        if not verdict["clean"]:
            return model, {**m, "give_back_refused": int((removed & ~suspects).sum())}
        last = {"round": m["rounds"] + 1, "n_removed": int(suspects.sum()),
                **{k: after[k] for k in ("clean_acc", "poison_success", "query_pred") if k in after},
                **verdict, **(observe(suspects) if observe else {}), "given_back": int((removed & ~suspects).sum())}
        return back, {**after, "rounds": m["rounds"] + 1, "total_removed": int(suspects.sum()), "clean": True,
                      "given_back": last["given_back"], "per_round": [*m["per_round"], last]}

    def _unlearn_keyed(self, method: str, removed: np.ndarray) -> tuple[nn.Module, str, dict]:
        module, metrics = self.unlearn(method, removed)
        return module, self.unlearn_key(method, removed), metrics
