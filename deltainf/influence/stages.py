"""The influence stages, each cached by the content of what determines it: the T + 1 queries, EK-FAC
factors (per model and training set) and the score matrix (per factors and queries); :class:`Influence` holds
them for one investigation."""
from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.stream import take
from ..progress import ProgressFn, Timings
from ..store import Entry, Store, array_fingerprint, content_key
from . import distributed, ekfac
from .delta import delta_matrix
from .queries import Queries, Query, make_queries
from .suggest import resolve_tau_k


def query_set(store: Store, image: torch.Tensor, label: int, num_classes: int, T: int, mode: str, seed: int) -> Queries:
    """The original query plus its T transformed copies (:func:`~deltainf.influence.queries.make_queries`)."""
    args = (image, label, num_classes, T, mode, seed)
    # Cached so a warm run never needs torchvision (whose import alone costs ~3 s).
    key = content_key("queries", array_fingerprint(image), *args[1:])
    entry = store.get(key)
    if entry is not None:
        return Queries(torch.from_numpy(entry.arrays["images"]), torch.from_numpy(entry.arrays["labels"]),
                       entry.meta["names"], mode)
    q = make_queries(*args)
    store.put(key, {"images": q.images.numpy(), "labels": q.labels.numpy()}, {"names": q.names})
    return q


def batch_size(device: torch.device) -> int:
    """Training points per kronfluence batch when fitting factors (scoring uses twice as many): sized to a
    GPU's memory (halved automatically on an out-of-memory error), 64 on the CPU (smaller per-sample gradient
    blocks stay in the CPU's cache: the built-in digits' factors and scores take 0.8× and 0.6× the time at 256)."""
    if device.type != "cuda":
        return 64
    gib = torch.cuda.get_device_properties(device).total_memory / 2**30
    return 1024 if gib >= 40 else 512 if gib >= 16 else 256


def factors(store: Store, key: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, *,
            seed: int, precision: str, timings: Timings, progress: ProgressFn, tally: str = "",
            lambda_examples: int | None = None) -> Path:
    """EK-FAC factors ``key`` of ``model`` on (x, y), fitted once; damaged ones are refitted. Their time and
    cache hit are recorded under ``tally + "factors_s"``. Under torchrun every rank calls it; rank 0 decides."""
    root = store.kron_root
    with timings.timed(f"{tally}factors_s"):
        problem = distributed.from_main(ekfac.factors_problem(root, key) if distributed.is_main() else None)
        timings.cached[f"{tally}factors_s"] = problem is None
        if problem is not None:
            progress("factors", 0, 1)
            with distributed.held_by_main(store.lock(key)):
                if distributed.is_main():
                    problem = ekfac.factors_problem(root, key)  # another process may have fitted them
                    if problem is not None and problem != "missing":
                        warnings.warn(f"EK-FAC factors {key} cannot be trusted ({problem}); refitting them")
                        shutil.rmtree(ekfac.factors_dir(root, key), ignore_errors=True)
                if distributed.from_main(problem is not None) and distributed.computes():
                    ekfac.fit_factors(model, x, y, root, key, device, seed=seed, batch_size=batch_size(device),
                                      precision=precision, lambda_examples=lambda_examples)
            distributed.barrier()
            progress("factors", 1, 1)
    return ekfac.factors_dir(root, key)


def scores(store: Store, factors_key: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, queries: Queries,
           device: torch.device, *, seed: int, damping: float | None, precision: str, timings: Timings,
           progress: ProgressFn, tally: str = "", lambda_examples: int | None = None) -> np.ndarray:
    """EK-FAC influence of every training point (x, y) on every query, shape (T+1, N), in one pass; fits the
    factors first when needed. Time and cache hit under ``tally + "scores_s"``. Under torchrun every rank calls it
    and gets the matrix; rank 0 alone writes it (:mod:`~deltainf.influence.distributed`)."""
    key = content_key("scores", factors_key, array_fingerprint(queries.images, queries.labels), damping)
    start = time.perf_counter()
    entry = store.get(key) if distributed.is_main() else None
    needed = distributed.from_main(entry is None)
    timings.cached[f"{tally}scores_s"] = not needed
    if needed:
        factors(store, factors_key, model, x, y, device, seed=seed, precision=precision, timings=timings,
                progress=progress, tally=tally, lambda_examples=lambda_examples)
        start = time.perf_counter()
        with distributed.held_by_main(store.lock(key)):
            entry = store.get(key) if distributed.is_main() else None
            if distributed.from_main(entry is None) and distributed.computes():
                progress("scores", 0, 1)
                s = ekfac.pairwise_scores(model, queries.images, queries.labels, x, y, store.kron_root, factors_key,
                                          device, damping=damping, train_batch_size=2 * batch_size(device),
                                          precision=precision)
                if distributed.is_main():
                    s = s.astype(np.float32)
                    store.put(key, {"scores": s}, {"mode": queries.mode})
                    entry = Entry({"scores": s}, {"mode": queries.mode})
                progress("scores", 1, 1)
        distributed.barrier()
    if entry is None:  # the other ranks read what rank 0 wrote
        entry = store.get(key)
    timings.add(f"{tally}scores_s", time.perf_counter() - start)
    return entry.arrays["scores"]


class Influence:
    """The influence stages of one investigation, each cached: the query's T copies, EK-FAC factors of the model on
    its training set, the scores of every training point on the query and each copy, Δ, and τ/k. ``model`` is a
    :class:`~deltainf.models.training.TrainedModel`; ``config`` carries the Δ options (T, mode, damping, τ, k, λ)."""

    def __init__(self, model, data, query: Query, config, store: Store, reporter: ProgressFn, timings: Timings):
        self.model, self.data, self.query, self.config, self.store = model, data, query, config, store
        self.reporter, self.timings = reporter, timings
        self._scores: dict[str, np.ndarray] = {}

    @property
    def device(self) -> torch.device:
        return self.model.recipe.device

    def queries(self, mode: str | None = None) -> Queries:
        """The original query plus its T transformed copies, for ``mode`` (default: the configured one)."""
        return query_set(self.store, self.query.image, self.query.label, self.data.num_classes,
                         self.config.transforms, mode or self.config.mode, self.query.draw_seed)

    def factors_key_for(self, model_key: str, keep: np.ndarray | None = None) -> str:
        # The model key already hashes the training data it was fitted on; a subset adds its indices.
        subset = [] if keep is None else [array_fingerprint(torch.as_tensor(keep, dtype=torch.long))]
        precision = self.model.recipe.precision
        numerics = [] if precision == "fp32" else [precision, "tf32-lambda"]  # see ekfac.tensor_cores
        if self.device.type == "cpu":  # the batch sets the CPU's order of summation (a GPU's follows its memory)
            numerics.append(f"cpu-batch-{batch_size(self.device)}")
        n = self.config.lambda_examples
        return content_key("factors", model_key, *subset, *numerics, *([] if n is None else [f"lambda-{n}"]))

    @property
    def factors_key(self) -> str:
        return self.factors_key_for(self.model.key)

    def _fitting(self) -> dict:  # what the factor fit is told, for the factors and for the scores that fit them
        return dict(seed=self.config.seed, precision=self.model.recipe.precision, timings=self.timings,
                    progress=self.reporter, lambda_examples=self.config.lambda_examples)

    def factors(self) -> Path:
        """Fit (or find) EK-FAC factors for the model on its training set."""
        return factors(self.store, self.factors_key, self.model.module, self.data.x_train, self.data.y_train,
                       self.device, **self._fitting())

    def scores(self, mode: str | None = None) -> np.ndarray:
        """EK-FAC influence, shape (T+1, N): row 0 the original query, rows 1..T its copies."""
        mode = mode or self.config.mode
        if mode not in self._scores:
            self._scores[mode] = self._scores_for(self.model.module, self.factors_key, self.data.x_train,
                                                  self.data.y_train, mode)
        return self._scores[mode]

    def _scores_for(self, module, factors_key, x, y, mode, tally: str = "") -> np.ndarray:
        return scores(self.store, factors_key, module, x, y, self.queries(mode), self.device,
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
