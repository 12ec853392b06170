"""The Δ-Influence pipeline: config → data (+poison) → model → factors → queries → scores → Δ →
detectors → unlearning → metrics.

Each arrow is a stage computed on first use, cached on disk by the content hash of everything
that determines it, and shared by the CLI and the app.
"""
from __future__ import annotations

import shutil
import time
import warnings
from contextlib import contextmanager
from functools import cached_property

import numpy as np
import torch
from torch import nn

from . import influence
from .attacks import ATTACKS, Poisoned
from .cache import Entry, Store, array_fingerprint, content_key
from .checkpoints import arrays_to_model, load_weights_into, state_to_arrays
from .config import Config
from .data import ImageData, load_dataset
from .detect import (DETECTORS, Detection, delta_flags, delta_matrix, detection_metrics, score_scale,
                     suggest_tau_k)
from .device import numerics_tag, resolve_device
from .errors import ConfigError
from .models import build_model, channel_stats
from .progress import ProgressFn, silent
from .train import DEFAULT_EPOCHS, DEFAULT_LR, accuracy, poison_success, predict_logits, train_model
from .transforms import Queries, make_queries
from .unlearn import UNLEARNERS, method_settings


IMPLANT_THRESHOLD = 0.5
LEARNED_OVER_CHANCE = 2.0  # clean accuracy must reach this multiple of chance for an attack to count as implanted


class Pipeline:
    """One experiment. Stages are computed lazily and cached; ``timings`` records each stage's seconds
    (the time to load it when it came from the cache)."""

    def __init__(self, config: Config, progress: ProgressFn = silent, store: Store | None = None,
                 weights: bytes | None = None, query_image: torch.Tensor | None = None):
        self.config = config
        self.progress = progress
        self.device = resolve_device(config.device)
        self.store = store if store is not None else Store(config.cache_path)
        self.timings: dict[str, float] = {}
        self.cached: dict[str, bool] = {}
        self._weights = weights
        self._query_override = query_image  # a user's own uint8 (3, H, W) test image
        self._scores: dict[str, np.ndarray] = {}
        self._detections: dict[str, Detection] = {}

    # ----------------------------------------------------------------- data and attack
    @cached_property
    def data(self) -> ImageData:
        c = self.config
        return load_dataset(c.dataset, c.data_root, c.seed, n_train=c.n_train, n_test=c.n_test,
                            image_size=c.image_size, default_root=self.store.root / "data")

    @cached_property
    def poisoned(self) -> Poisoned:
        return ATTACKS[self.config.attack](self.config, self.data)

    @cached_property
    def is_poison(self) -> np.ndarray:
        """Ground truth: True for every poisoned training point."""
        return self.poisoned.is_poison

    @cached_property
    def epochs(self) -> int:
        return self.config.epochs or DEFAULT_EPOCHS[self.config.model]

    @cached_property
    def lr(self) -> float:
        return self.config.lr or DEFAULT_LR[self.config.model]

    @property
    def augment(self) -> bool:
        """Shift/flip augmentation for the ResNet; the small CNN trains without, so poisons implant on small data."""
        return self.config.model == "resnet18"

    def validate(self) -> None:
        """Fail early, before any training, on options that only the data can check."""
        n = len(self.poisoned.x_trigger_test)
        if self.config.test_index is not None and self.config.test_index >= n:
            raise ConfigError(f"--test-index {self.config.test_index} is out of range: "
                              f"there are {n} triggered test images (0..{n - 1})")

    def resolved_config(self) -> dict:
        """Every option with the dataset's defaults and seeded draws filled in."""
        p = self.poisoned
        d = self.config.to_dict()
        d.update(victim=p.victim, target=p.target, poison_count=int(len(p.poison_idx)), epochs=self.epochs,
                 lr=self.lr, trigger_size=int(p.trigger_mask.any(0).sum()), test_index=self.test_index,
                 cache_dir=str(self.store.root), device=str(self.device))
        return d

    # ----------------------------------------------------------------- model
    @cached_property
    def precision(self) -> str:
        """fp32 or bf16: ``--precision``, where ``auto`` means bf16 on a GPU and fp32 on the CPU."""
        p = self.config.precision
        return ("bf16" if self.device.type == "cuda" else "fp32") if p == "auto" else p

    @property
    def _precision_tag(self) -> list[str]:
        """Part of the model and factor keys: empty for fp32, so fp32 keys stay as they were before
        precision was a choice."""
        return [] if self.precision == "fp32" else [self.precision]

    def _recipe(self) -> dict:
        c = self.config
        r = {"model": c.model, "epochs": self.epochs, "lr": self.lr, "batch_size": c.batch_size,
             "weight_decay": c.weight_decay, "label_smoothing": c.label_smoothing, "seed": c.seed,
             "augment": self.augment}
        if self._precision_tag:
            r["precision"] = self.precision
        if numerics_tag(self.device):
            r["numerics"] = numerics_tag(self.device)
        return r

    @cached_property
    def train_key(self) -> str:
        p = self.poisoned
        data_fp = array_fingerprint(p.data.x_train, p.data.y_train, p.data.x_test, p.data.y_test, p.x_trigger_test)
        if self._weights is not None:
            return content_key("model", "upload", array_fingerprint(np.frombuffer(self._weights, np.uint8)), data_fp)
        return content_key("model", self._recipe(), data_fp)

    def new_model(self) -> nn.Module:
        """An untrained network of the configured architecture (seeded initialisation)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            return build_model(self.config.model, self.data.num_classes, *channel_stats(self.data.x_train))

    def train_on(self, keep: np.ndarray, stage: str = "train", init: nn.Module | None = None,
                 epochs: int | None = None, lr: float | None = None) -> nn.Module:
        """Train with the experiment's recipe on the training points ``keep`` (indices), from scratch or
        from ``init``, for the recipe's epochs and learning rate unless ``epochs``/``lr`` are given."""
        p = self.poisoned
        keep_t = torch.as_tensor(keep, dtype=torch.long)
        model = init if init is not None else self.new_model()
        r = self._recipe()
        return train_model(model, p.data.x_train[keep_t], p.data.y_train[keep_t], epochs=epochs or r["epochs"], lr=lr or r["lr"],
                           batch_size=r["batch_size"], weight_decay=r["weight_decay"],
                           label_smoothing=r["label_smoothing"], seed=r["seed"], device=self.device,
                           augment=r["augment"], optimizer="adam" if r["model"] == "cnn" else "sgd",
                           progress=self.progress, stage=stage, precision=self.precision)

    def evaluate(self, model: nn.Module) -> dict:
        """Clean test accuracy, poison success, and the query image's predicted label."""
        p = self.poisoned
        return {"clean_acc": accuracy(model, p.data.x_test, p.data.y_test, self.device),
                "poison_success": poison_success(model, p.x_trigger_test, p.target, self.device),
                "query_pred": int(predict_logits(model, self.query_image[None], self.device).argmax(1)[0])
                if len(p.x_trigger_test) else -1}

    def _cached_model(self, key: str, stage: str, make) -> tuple[nn.Module, dict]:
        """Load model ``key`` from the store, or build it with ``make()`` under a lock and store it."""
        with self._timed(stage):
            entry = self.store.get(key)
            if entry is None:
                with self.store.lock(key):
                    entry = self.store.get(key)  # someone else may have finished meanwhile
                    if entry is None:
                        start = time.perf_counter()
                        model = make()
                        meta = {"compute_s": time.perf_counter() - start}
                        self.store.put(key, state_to_arrays(model), meta)
                        self.cached[stage] = False
                        return model.eval(), meta
            self.cached[stage] = True
            return arrays_to_model(self.new_model(), entry.arrays), entry.meta

    @cached_property
    def _trained(self) -> tuple[nn.Module, dict]:
        def make():
            if self._weights is not None:
                return load_weights_into(self.new_model(), self._weights)
            return self.train_on(np.arange(len(self.poisoned.data.y_train)), stage="train")

        return self._cached_model(self.train_key, "train_s", make)

    @property
    def model(self) -> nn.Module:
        """The model trained on the poisoned data (or the user's uploaded weights)."""
        return self._trained[0]

    @cached_property
    def model_metrics(self) -> dict:
        """Clean accuracy and poison success of the trained model."""
        return self._metrics_for(self.train_key, self.model)

    @property
    def implanted(self) -> bool:
        """Whether the attack took hold (see :attr:`implant_problem`); detection numbers mean nothing otherwise."""
        return self.implant_problem is None

    @property
    def implant_problem(self) -> str | None:
        """Why the attack did not take hold, or None: poison success below 0.5, or a model no better than
        chance on clean images (one that sends everything to the target "succeeds" without any backdoor)."""
        m, chance = self.model_metrics, 1 / self.data.num_classes
        ps = m["poison_success"]
        if not (ps == ps and ps >= IMPLANT_THRESHOLD):
            return f"poison success {ps:.2f} < {IMPLANT_THRESHOLD}"
        if m["clean_acc"] < LEARNED_OVER_CHANCE * chance:
            return f"clean accuracy {m['clean_acc']:.2f}, no better than chance, {chance:.2f}: the model learned nothing"
        return None

    def _metrics_for(self, key: str, model: nn.Module) -> dict:
        mkey = content_key("metrics", key, array_fingerprint(self.query_image))
        entry = self.store.get(mkey)
        if entry is not None:
            return entry.meta
        metrics = self.evaluate(model)
        self.store.put(mkey, {}, metrics)
        return metrics

    # ----------------------------------------------------------------- the query
    @cached_property
    def _trigger_preds(self) -> np.ndarray:
        key = content_key("trigger-preds", self.train_key)
        entry = self.store.get(key)
        if entry is None:
            preds = predict_logits(self.model, self.poisoned.x_trigger_test, self.device).argmax(1).numpy()
            self.store.put(key, {"preds": preds}, {})
            return preds
        return entry.arrays["preds"]

    @cached_property
    def test_index(self) -> int:
        """Index into the triggered test set of the known poisoned test image.

        The configured one, else the first (in a seeded order) that the model sends to the target.
        """
        n = len(self.poisoned.x_trigger_test)
        if n == 0:
            raise ConfigError("the victim class has no test images, so there is no poisoned test image to query")
        if self.config.test_index is not None:
            if self.config.test_index >= n:
                raise ConfigError(f"--test-index {self.config.test_index} is out of range: "
                                  f"there are {n} triggered test images (0..{n - 1})")
            return self.config.test_index
        hits = np.flatnonzero(self._trigger_preds == self.poisoned.target)
        order = np.random.default_rng([self.config.seed, 19]).permutation(hits if len(hits) else np.arange(n))
        return int(order[0])

    @cached_property
    def test_points(self) -> list[int]:
        """The known poisoned test points (indices into the triggered test set): the query first, then
        ``test_points − 1`` more that the model sends to the target, in a seeded order."""
        n = self.config.test_points
        if n == 1:
            return [self.test_index]
        others = [int(i) for i in np.random.default_rng([self.config.seed, 29]).permutation(self.poisoned_test_candidates)
                  if i != self.test_index]
        if n > len(others) + 1:
            raise ConfigError(f"--test-points {n} is more than the {len(others) + 1} triggered test images "
                              f"the model sends to the target; use at most {len(others) + 1}")
        return [self.test_index] + others[:n - 1]

    def sibling(self, test_index: int) -> "Pipeline":
        """The same experiment queried with another triggered test image (shares data, model and cache)."""
        other = Pipeline(self.config.replace(test_index=test_index, test_points=1), self.progress, self.store, self._weights)
        for name in ("data", "poisoned", "is_poison", "epochs", "lr", "train_key", "_trained", "_trigger_preds"):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        other.timings = self.timings
        return other

    def at_tau_k(self, tau: float, k: int) -> "Pipeline":
        """The same experiment with τ and k set: shares everything already computed in memory (data, model,
        queries, scores), so re-running the Δ detectors at another τ/k costs milliseconds."""
        other = Pipeline(self.config.replace(tau=tau, k=k), self.progress, self.store, self._weights,
                         self._query_override)
        fresh = ("config", "timings", "cached", "_detections")
        other.__dict__.update({n: v for n, v in self.__dict__.items() if n not in fresh})
        return other

    @property
    def poisoned_test_candidates(self) -> np.ndarray:
        """Indices of triggered test images the model sends to the target class."""
        return np.flatnonzero(self._trigger_preds == self.poisoned.target)

    @property
    def query_image(self) -> torch.Tensor:
        """The known poisoned test image (uint8 3×H×W): a triggered test image, or the user's own."""
        if self._query_override is not None:
            return self._query_override
        return self.poisoned.x_trigger_test[self.test_index]

    @cached_property
    def query_label(self) -> int:
        """y: the (wrong) label the model predicts for the poisoned test image."""
        if self._query_override is not None:
            return int(predict_logits(self.model, self._query_override[None], self.device).argmax(1)[0])
        return int(self._trigger_preds[self.test_index])

    def queries(self, mode: str | None = None) -> Queries:
        """The original query plus its T transformed copies, for ``mode`` (default: the configured one)."""
        c, mode = self.config, mode or self.config.mode
        offset = self.test_index if self._query_override is None else 0
        seed = c.seed if c.transform_seed is None else c.transform_seed
        args = (self.query_image, self.query_label, self.data.num_classes, c.transforms, mode, seed + offset)
        # Cached so a warm run never needs torchvision (whose import alone costs ~3 s).
        key = content_key("queries", array_fingerprint(args[0]), *args[1:])
        entry = self.store.get(key)
        if entry is not None:
            return Queries(torch.from_numpy(entry.arrays["images"]), torch.from_numpy(entry.arrays["labels"]),
                           entry.meta["names"])
        q = make_queries(*args)
        self.store.put(key, {"images": q.images.numpy(), "labels": q.labels.numpy()}, {"names": q.names})
        return q

    # ----------------------------------------------------------------- influence
    @cached_property
    def factors_key(self) -> str:
        # The model key already hashes the training data it was fitted on.
        return content_key("factors", self.train_key, *self._precision_tag)

    def factors(self):
        """Fit (or find) EK-FAC factors for the model on its training set."""
        p = self.poisoned.data
        return self._factors_for(self.model, self.factors_key, p.x_train, p.y_train)

    def _factors_for(self, model, key, x, y, tally: str = ""):
        """Factors ``key``; their time and cache hit are recorded under ``tally + "factors_s"``."""
        root = self.store.kron_root
        with self._timed(f"{tally}factors_s"):
            problem = influence.factors_problem(root, key)
            self.cached[f"{tally}factors_s"] = problem is None
            if problem is not None:
                self.progress("factors", 0, 1)
                with self.store.lock(key):
                    problem = influence.factors_problem(root, key)  # another process may have fitted them
                    if problem is not None and problem != "missing":
                        warnings.warn(f"EK-FAC factors {key} cannot be trusted ({problem}); refitting them")
                        shutil.rmtree(influence.factors_dir(root, key), ignore_errors=True)
                    if problem is not None:
                        influence.fit_factors(model, x, y, root, key, self.device, seed=self.config.seed,
                                              batch_size=self.influence_batch, precision=self.precision)
                self.progress("factors", 1, 1)
        return influence.factors_dir(root, key)

    def scores(self, mode: str | None = None) -> np.ndarray:
        """EK-FAC influence, shape (T+1, N): row 0 the original query, rows 1..T its copies."""
        mode = mode or self.config.mode
        if mode not in self._scores:
            p = self.poisoned.data
            self._scores[mode] = self._scores_for(self.model, self.factors_key, p.x_train, p.y_train, mode)
        return self._scores[mode]

    def rescore(self, model: nn.Module, model_key: str, keep: np.ndarray, mode: str | None = None) -> np.ndarray:
        """Scores (T+1, len(keep)) of the same queries under another ``model`` trained on the points ``keep``
        (e.g. an unlearned model, for the re-check loop)."""
        p = self.poisoned.data
        keep_t = torch.as_tensor(keep, dtype=torch.long)
        fkey = content_key("factors", model_key, array_fingerprint(keep_t), *self._precision_tag)
        # Tallied apart ("recheck_…"): the query's own factors/scores figures stay its own.
        return self._scores_for(model, fkey, p.x_train[keep_t], p.y_train[keep_t], mode or self.config.mode,
                                tally="recheck_")

    def _scores_for(self, model, factors_key, x, y, mode, tally: str = "") -> np.ndarray:
        q = self.queries(mode)
        key = content_key("scores", factors_key, array_fingerprint(q.images, q.labels), self.config.damping)
        start = time.perf_counter()
        entry = self.store.get(key)
        self.cached[f"{tally}scores_s"] = entry is not None
        if entry is None:
            self._factors_for(model, factors_key, x, y, tally)
            start = time.perf_counter()
            with self.store.lock(key):
                entry = self.store.get(key)
                if entry is None:
                    self.progress("scores", 0, 1)
                    s = influence.pairwise_scores(model, q.images, q.labels, x, y, self.store.kron_root, factors_key,
                                                  self.device, damping=self.config.damping,
                                                  train_batch_size=2 * self.influence_batch,
                                                  precision=self.precision).astype(np.float32)
                    self.store.put(key, {"scores": s}, {"mode": mode})
                    entry = Entry({"scores": s}, {"mode": mode})
                    self.progress("scores", 1, 1)
        self.timings[f"{tally}scores_s"] = self.timings.get(f"{tally}scores_s", 0.0) + time.perf_counter() - start
        return entry.arrays["scores"]

    @property
    def influence_batch(self) -> int:
        """Training points per kronfluence batch when fitting factors (scoring uses twice as many): sized to a
        GPU's memory (halved automatically on an out-of-memory error), 256 on the CPU."""
        if self.device.type != "cuda":
            return 256
        gib = torch.cuda.get_device_properties(self.device).total_memory / 2**30
        return 1024 if gib >= 40 else 512 if gib >= 16 else 256

    def tau_k(self, mode: str | None = None) -> tuple[float, int, bool]:
        """(τ, k, suggested?): the configured values, with any that are unset suggested from Δ alone."""
        c = self.config
        if c.tau is not None and c.k is not None:
            return c.tau, c.k, False
        scores = self.scores(mode)
        tau, k = suggest_tau_k(delta_matrix(scores), score_scale(scores), c.tau, c.k)
        return tau, k, True

    def delta(self, mode: str | None = None) -> np.ndarray:
        """Δ (T, N): each copy's score minus the original's."""
        return delta_matrix(self.scores(mode))

    # ----------------------------------------------------------------- detection and unlearning
    def detect(self, name: str) -> Detection:
        """Run detector ``name`` (see :data:`deltainf.detect.DETECTORS`)."""
        if name not in self._detections:
            det = DETECTORS[name](self)
            self._detections[name] = det
        return self._detections[name]

    def detection_report(self, name: str) -> dict:
        det = self.detect(name)
        return {**detection_metrics(det.flagged, self.is_poison), **det.params}

    def unlearn_key(self, method: str, flagged: np.ndarray) -> str:
        """Cache key of the model that ``method`` makes when removing ``flagged``."""
        return content_key("unlearn", method, method_settings(method, self.config), self.train_key,
                           array_fingerprint(np.flatnonzero(flagged)))

    def unlearn(self, method: str, flagged: np.ndarray) -> tuple[nn.Module, dict]:
        """Remove the ``flagged`` training points with unlearning ``method``; returns (model, metrics)."""
        flagged = np.asarray(flagged, bool)
        key = self.unlearn_key(method, flagged)
        start = time.perf_counter()
        model, _ = self._cached_model(key, "unlearn_s", lambda: UNLEARNERS[method](self, flagged))
        metrics = {**self._metrics_for(key, model), "n_removed": int(flagged.sum()),
                   "seconds": time.perf_counter() - start}
        return model, metrics

    def query_target_prob(self, model: nn.Module) -> float:
        """The probability ``model`` gives the query's poisoned label (the target) on the query image."""
        logits = predict_logits(model, self.query_image[None], self.device)
        return float(torch.softmax(logits.float(), 1)[0, self.query_label])

    def query_is_clean(self, model: nn.Module, metrics: dict) -> bool:
        """The re-check of ``--until-clean``: the query is no longer predicted as the target, and the target's
        probability on it is at most ``clean_below`` — a backdoor outvoted but still pulling (seen after CF
        that left a few poisons in: target probability 0.07, 22 % of triggered images still flipped) is not
        clean yet."""
        return metrics["query_pred"] != self.query_label and self.query_target_prob(model) <= self.config.clean_below

    def unlearn_until_clean(self, method: str, flagged: np.ndarray, max_rounds: int | None = None) -> tuple[nn.Module, dict]:
        """Unlearn, then re-check the poisoned test image (:meth:`query_is_clean`): while it is not clean, run
        Δ-Influence on the new model over the remaining training points, add what it flags, and unlearn
        again (from the original model). Stops when clean, when nothing new is flagged, or at ``max_rounds``."""
        removed = np.asarray(flagged, bool).copy()
        max_rounds = max_rounds or self.config.max_rounds
        per_round = []
        for r in range(1, max_rounds + 1):
            model, m = self.unlearn(method, removed)
            clean = self.query_is_clean(model, m)
            per_round.append({"round": r, "n_removed": int(removed.sum()), "clean_acc": m["clean_acc"],
                              "poison_success": m["poison_success"], "query_pred": m["query_pred"],
                              "query_target_prob": self.query_target_prob(model), "clean": clean,
                              "hits": int((removed & self.is_poison).sum())})
            if clean or r == max_rounds:
                break
            keep = np.flatnonzero(~removed)
            delta = delta_matrix(self.rescore(model, self.unlearn_key(method, removed), keep))
            tau, k, _ = self.tau_k()
            new = delta_flags(delta, tau, k)
            if not new.any():
                break
            removed[keep[new]] = True
        return model, {**m, "rounds": len(per_round), "total_removed": int(removed.sum()),
                       "clean": per_round[-1]["clean"], "per_round": per_round}

    @contextmanager
    def _timed(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
