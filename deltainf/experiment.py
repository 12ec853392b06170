"""An experiment: dataset + attack + training recipe, one source of investigations.

It plants the poisons, trains (or loads) the poisoned model, picks a triggered test image as the query
and builds the :class:`~deltainf.investigation.Investigation` of it. It also knows what only it can know —
which training points are poisons, the victim and target classes, poison success — and hands that to
evaluation alone (:meth:`Experiment.detection_report`, and the :class:`~deltainf.investigation.Evaluator`
figures added to every unlearned model).
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch import nn

from .attacks import ATTACKS, AttackContext, Poisoned
from .attacks.surrogate import Surrogates
from .config import streams
from .data import ImageData, load_dataset
from .detectors import Detection, explained, intersect, needs
from .device import resolve_device
from .errors import ConfigError
from .evaluation.metrics import IMPLANT_THRESHOLD, detection_metrics, implant_problem, poison_success
from .investigation import Investigation, Query, TrainedModel
from .models import ARCHITECTURES, channel_stats
from .models.training import Recipe, accuracy, predict_logits
from .progress import ProgressFn, Reporter, Timings, silent
from .seeds import seeded
from .store import Store, array_fingerprint, content_key
from .store.checkpoints import cached_model, load_weights_into, state_of


#: The share of the training set the backdoor benchmarks poison (BackdoorBench's default), suggested when an attack
#: does not implant with fewer.
PAPERS_SHARE = 0.1


def attack_context(config, device: torch.device, store: Store | None) -> AttackContext:
    """What the configured attack may use: the seed, the classes and count asked for, and surrogate models
    trained with the experiment's recipe (cached in ``store``)."""
    c = config
    surrogates = Surrogates(model=c.model, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                            weight_decay=c.weight_decay, label_smoothing=c.label_smoothing, seed=c.seed, device=device,
                            store=store)
    return AttackContext(c.seed, c.victim, c.target, c.poison_count, surrogates)


def plant(config, data: ImageData, device: torch.device, store: Store | None = None) -> Poisoned:
    """The configured attack on the clean ``data``: the poisoned training set and its ground truth."""
    entry = ATTACKS[config.attack]
    return entry().poison(data, attack_context(config, device, store), entry.settings_from(config))


class Experiment:
    """One poisoning experiment (see :class:`~deltainf.config.Config`). Stages are computed lazily and
    cached; ``timings`` records each stage's seconds. ``weights``: a user's checkpoint instead of training;
    ``query_image``: a user's own test image (uint8 3×H×W) instead of a triggered one; ``data``: clean data
    already in memory instead of loading ``config.dataset``."""

    def __init__(self, config, progress: ProgressFn = silent, store: Store | None = None,
                 weights: bytes | None = None, query_image: torch.Tensor | None = None, data: ImageData | None = None):
        self.config = config
        self.device = resolve_device(config.device)
        self.store = store if store is not None else Store(config.cache_path)
        self.reporter = Reporter(progress)
        self.timings = Timings()
        self._weights = weights
        self._query_override = query_image
        self._others: dict[int, Investigation] = {}
        self._data = data

    # ----------------------------------------------------------------- data and attack
    @cached_property
    def data(self) -> ImageData:
        """The clean data, before any poison."""
        c = self.config
        if self._data is not None:
            return self._data
        self.reporter("data", 0, 1)
        return load_dataset(c.dataset, c.data_root, c.seed, n_train=c.n_train, n_test=c.n_test,
                            image_size=c.image_size, default_root=self.store.root / "data", progress=self.reporter,
                            stream_to=self.store.root / "images" if streams(c.stream, c.data_root, c.dataset) else None)

    @cached_property
    def poisoned(self) -> Poisoned:
        data = self.data
        self.reporter("attack", 0, 1)
        return plant(self.config, data, self.device, self.store)

    @cached_property
    def is_poison(self) -> np.ndarray:
        """Ground truth: True for every poisoned training point."""
        return self.poisoned.is_poison

    def validate(self) -> None:
        """Fail early, before any training, on options that only the data can check."""
        n = len(self.poisoned.x_trigger_test)
        if self.config.test_index is not None and self.config.test_index >= n:
            raise ConfigError(f"--test-index {self.config.test_index} is out of range: "
                              f"there are {n} triggered test images (0..{n - 1})")

    def resolved_config(self) -> dict:
        """Every option with the dataset's defaults and seeded draws filled in."""
        p, r = self.poisoned, self.recipe
        d = self.config.to_dict()
        d.update(victim=p.victim, target=p.target, poison_count=int(len(p.poison_idx)), epochs=r.epochs, lr=r.lr,
                 trigger_size=int(p.trigger_mask.any(0).sum()), test_index=self.test_index,
                 cache_dir=str(self.store.root), device=str(self.device))
        return d

    # ----------------------------------------------------------------- the poisoned model
    @cached_property
    def recipe(self) -> Recipe:
        c = self.config
        arch = ARCHITECTURES[c.model].attrs
        precision = ("bf16" if self.device.type == "cuda" else "fp32") if c.precision == "auto" else c.precision
        mean, std = channel_stats(self.data.x_train)
        return Recipe(model=c.model, num_classes=self.data.num_classes, epochs=c.epochs or arch["epochs"],
                      lr=c.lr or arch["lr"], batch_size=c.batch_size, weight_decay=c.weight_decay,
                      label_smoothing=c.label_smoothing, seed=c.seed, device=self.device, precision=precision,
                      mean=mean, std=std)

    @cached_property
    def train_key(self) -> str:
        p = self.poisoned
        data_fp = array_fingerprint(p.data.x_train, p.data.y_train, p.data.x_test, p.data.y_test, p.x_trigger_test)
        if self._weights is not None:
            return content_key("model", "upload", array_fingerprint(np.frombuffer(self._weights, np.uint8)), data_fp)
        return content_key("model", self.recipe.key(), data_fp)

    @cached_property
    def trained(self) -> TrainedModel:
        """The model trained on the poisoned data (or the user's uploaded weights)."""
        def make():
            if self._weights is not None:
                return load_weights_into(self.recipe.new_model(), self._weights)
            p = self.poisoned.data
            return self.recipe.train(p.x_train, p.y_train, progress=self.reporter, stage="train")

        with self.timings.timed("train_s"):
            module, hit, _ = cached_model(self.store, self.train_key, make, self.recipe.new_model)
        self.timings.cached["train_s"] = hit
        return TrainedModel(module, self.train_key, self.recipe)

    @property
    def model(self) -> nn.Module:
        return self.trained.module

    @cached_property
    def model_metrics(self) -> dict:
        """Clean accuracy and poison success of the trained model."""
        p = self.poisoned.data
        key = content_key("clean-accuracy", self.train_key)
        entry, _ = self.store.get_or_make(key, lambda: ({}, {
            "clean_acc": accuracy(self.model, p.x_test, p.y_test, self.device)}))
        return {**entry.meta, **self.evaluate_model(self.model, self.train_key)}

    @property
    def implant_problem(self) -> str | None:
        """Why the attack did not take hold, or None (see :func:`~deltainf.evaluation.metrics.implant_problem`);
        with fewer poisons than the backdoor benchmarks' 10 % of the training set, how many that would be."""
        m = self.model_metrics
        problem = implant_problem(m["clean_acc"], m["poison_success"], self.data.num_classes)
        idx = self.poisoned.poison_idx
        too_few = not m["poison_success"] >= IMPLANT_THRESHOLD and 0 < len(idx) < PAPERS_SHARE * len(self.data.y_train)
        if problem and too_few:
            of_class = int((self.data.y_train == self.data.y_train[idx[0]]).sum())  # the class the poisons come from
            more = min(round(PAPERS_SHARE * len(self.data.y_train)), of_class)
            if more > len(idx):
                problem += f"; {len(idx)} poisons, where the backdoor benchmarks plant 10 %: --poison-count {more}"
        return problem

    @property
    def implanted(self) -> bool:
        """Whether the attack took hold; detection numbers mean nothing otherwise."""
        return self.implant_problem is None

    # ----------------------------------------------------------------- the query: a triggered test image
    @cached_property
    def trigger_preds(self) -> np.ndarray:
        """The model's label for every triggered test image."""
        key = content_key("trigger-preds", self.train_key)
        entry, _ = self.store.get_or_make(key, lambda: ({"preds": predict_logits(
            self.model, self.poisoned.x_trigger_test, self.device).argmax(1).numpy()}, {}))
        return entry.arrays["preds"]

    @property
    def poisoned_test_candidates(self) -> np.ndarray:
        """Indices of triggered test images the model sends to the target class."""
        return np.flatnonzero(self.trigger_preds == self.poisoned.target)

    @cached_property
    def test_index(self) -> int:
        """Index into the triggered test set of the query: the configured one, else the first (in a seeded
        order) that the model sends to the target."""
        n = len(self.poisoned.x_trigger_test)
        if n == 0:
            raise ConfigError("the victim class has no test images, so there is no poisoned test image to query")
        if self.config.test_index is not None:
            self.validate()
            return self.config.test_index
        hits = self.poisoned_test_candidates
        order = seeded(self.config.seed, "test image").permutation(hits if len(hits) else np.arange(n))
        return int(order[0])

    @cached_property
    def test_points(self) -> list[int]:
        """The known poisoned test points (indices into the triggered test set): the query first, then
        ``test_points − 1`` more that the model sends to the target, in a seeded order."""
        n = self.config.test_points
        if n == 1:
            return [self.test_index]
        rng = seeded(self.config.seed, "test points")
        others = [int(i) for i in rng.permutation(self.poisoned_test_candidates) if i != self.test_index]
        if n > len(others) + 1:
            raise ConfigError(f"--test-points {n} is more than the {len(others) + 1} triggered test images "
                              f"the model sends to the target; use at most {len(others) + 1}")
        return [self.test_index] + others[:n - 1]

    def _triggered_query(self, test_index: int) -> Query:
        c = self.config
        seed = c.seed if c.transform_seed is None else c.transform_seed
        return Query(self.poisoned.x_trigger_test[test_index], int(self.trigger_preds[test_index]), seed + test_index)

    @cached_property
    def query(self) -> Query:
        """The known poisoned test image with its (wrong) label y: a triggered test image, or the user's own
        (labelled with the model's prediction)."""
        if self._query_override is None:
            return self._triggered_query(self.test_index)
        c = self.config
        label = int(predict_logits(self.model, self._query_override[None], self.device).argmax(1)[0])
        return Query(self._query_override, label, c.seed if c.transform_seed is None else c.transform_seed)

    @property
    def query_image(self) -> torch.Tensor:
        return self.query.image

    @property
    def query_label(self) -> int:
        return self.query.label

    def _investigate(self, query: Query) -> Investigation:
        return Investigation(self.trained, self.poisoned.data, query, self.config, self.store, reporter=self.reporter,
                             timings=self.timings, evaluator=self)

    @cached_property
    def investigation(self) -> Investigation:
        """Δ-Influence on the query (shares the model, the data and the cache with the experiment)."""
        return self._investigate(self.query)

    def investigation_for(self, test_index: int) -> Investigation:
        """The investigation of another triggered test image (the query's own when it is the query)."""
        if test_index == self.test_index:
            return self.investigation
        if test_index not in self._others:
            self._others[test_index] = self._investigate(self._triggered_query(test_index))
        return self._others[test_index]

    # ----------------------------------------------------------------- what every source offers the app
    kind = "experiment"

    @property
    def train_set(self) -> ImageData:
        """The training set as the model saw it (poisoned)."""
        return self.poisoned.data

    @property
    def truth(self) -> np.ndarray:
        """Which training points are poisons (known here: the experiment planted them)."""
        return self.is_poison

    @property
    def planted(self) -> Poisoned:
        """The attack planted here: its victim, target and triggered test images."""
        return self.poisoned

    def export_weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s weights (the built-in architecture's layout)."""
        return state_of(module)

    def overview(self) -> dict:
        """What the Experiment page and the sidebar say about the trained model."""
        _ = self.poisoned_test_candidates, self.test_index, self.query
        return {"metrics": self.model_metrics, "timings": dict(self.timings.seconds),
                "cached": dict(self.timings.cached)}

    # ----------------------------------------------------------------- detection and ground truth
    def detect(self, name: str, tau: float | None = None, k: int | None = None) -> Detection:
        """Detector ``name`` on the query, or — with several known poisoned test points — what it flags on
        every one of them (for ``ekfac`` the paper's boosted EK-FAC)."""
        if self.config.test_points == 1 or not needs(name)["modes"]:  # a detector that never reads the query
            return self.investigation.detect(name, tau, k)
        runs = [self.investigation_for(i).detect(name, tau, k) for i in self.test_points]
        return intersect(name, runs, {"test_points": list(self.test_points)})

    def detection_report(self, name: str, tau: float | None = None, k: int | None = None) -> dict:
        """TPR, precision, F1 and the number flagged against the ground truth, with the detector's parameters."""
        det = self.detect(name, tau, k)
        steps = explained(name, det, self.data.classes)
        return {**detection_metrics(det.flagged, self.is_poison), **det.params, **({"steps": steps} if steps else {})}

    def evaluate_model(self, module: nn.Module, key: str) -> dict:
        """Poison success of ``module`` (cached by its key): the share of triggered test images it sends to
        the target."""
        p = self.poisoned
        pkey = content_key("poison-success", key, array_fingerprint(p.x_trigger_test), p.target)
        entry, _ = self.store.get_or_make(pkey, lambda: ({}, {
            "poison_success": poison_success(module, p.x_trigger_test, p.target, self.device)}))
        return entry.meta

    def evaluate_removal(self, removed: np.ndarray) -> dict:
        """How many poisons a removed set holds."""
        return {"hits": int((removed & self.is_poison).sum())}
