"""EK-FAC influence through kronfluence, staged so nothing stale or half-written is ever served.

kronfluence skips a stage whose output folder exists, even when its inputs changed. So every
factors/scores run here is named by the content hash of everything that determines it, is
computed under a temporary name, and only renamed into place once complete.
"""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset, TensorDataset

from ..data.stream import DiskImages, StreamedDataset
from ..seeds import seeded
from . import distributed

ANALYSIS = "deltainf"


def _task():
    from kronfluence.task import Task

    class ClassificationTask(Task):
        """Train loss: summed cross-entropy. Measurement: −margin of the query's label."""

        def compute_train_loss(self, batch, model, sample: bool = False):
            x, y = batch
            logits = model(x)
            if sample:  # true Fisher: labels sampled from the model's own predictions
                with torch.no_grad():
                    y = torch.multinomial(F.softmax(logits.detach().float(), -1), 1).flatten()
            return F.cross_entropy(logits, y, reduction="sum")

        def compute_measurement(self, batch, model):
            x, y = batch
            return -margin(model(x), y).sum()

    return ClassificationTask()


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logit[y] − logsumexp(other logits), per row."""
    logits = logits.float()  # under bf16 autocast too: the margin of near-equal logits needs fp32
    rows = torch.arange(len(y), device=logits.device)
    others = logits.clone()
    others[rows, y] = -torch.inf
    return logits[rows, y] - others.logsumexp(-1)


def _dataset(x, y: torch.Tensor):
    if isinstance(x, DiskImages):  # read a batch at a time
        return StreamedDataset(x, y)
    xf = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    return TensorDataset(xf, y.long())


def _analyzer(model: nn.Module, root: Path, device: torch.device):
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.utils.dataset import DataLoaderKwargs

    logging.getLogger("kronfluence").setLevel(logging.WARNING)
    import copy

    prepared = prepare_model(copy.deepcopy(model).to(device).eval(), _task())
    analyzer = Analyzer(analysis_name=ANALYSIS, model=prepared, task=_task(), cpu=device.type == "cpu",
                        disable_tqdm=True, output_dir=str(root), log_level=logging.WARNING)
    if device.type == "cuda":  # pinned host batches, collated by workers while the GPU works
        analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=4, pin_memory=True, persistent_workers=False))
    return analyzer


@contextmanager
def frozen_heap():
    """Python's heap as it stands is moved out of the garbage collector's sight while kronfluence runs.

    kronfluence calls ``gc.collect()`` between stages (ten times a run); each full collection walks every object
    torch, the app and their imports made — 0.2 s apiece on the CPU, a fifth of a small model's factor fit —
    though none of them is garbage. Objects made inside are collected as before. (Engine work runs one job at a
    time, in the app too, so two of these never overlap.)"""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


PRECISIONS = ("fp32", "bf16")


def factor_arguments(precision: str = "fp32"):
    """EK-FAC factor settings. ``bf16``: kronfluence's "smart low precision" — bf16 autocast, covariances
    and per-sample gradients in bf16; eigendecomposition and the eigenvalue correction (λ) in fp32."""
    from kronfluence.arguments import FactorArguments

    args = FactorArguments(strategy="ekfac")
    if precision == "bf16":
        args.amp_dtype = torch.bfloat16
        args.activation_covariance_dtype = torch.bfloat16
        args.gradient_covariance_dtype = torch.bfloat16
        args.per_sample_gradient_dtype = torch.bfloat16
        args.lambda_dtype = torch.float32
    return args


def score_arguments(damping: float | None, precision: str = "fp32"):
    """Pairwise-score settings. ``bf16``: bf16 autocast and per-sample gradients; preconditioning and the
    scores themselves stay fp32 (Δ subtracts scores of ~1e5 that differ in the third digit)."""
    from kronfluence.arguments import ScoreArguments

    args = ScoreArguments(damping_factor=damping)
    if precision == "bf16":
        args.amp_dtype = torch.bfloat16
        args.per_sample_gradient_dtype = torch.bfloat16
        args.precondition_dtype = torch.float32
        args.score_dtype = torch.float32
    return args


def with_batch_backoff(run, batch_size: int, what: str, warn=None):
    """``run(batch_size)``, halving the batch after a CUDA out-of-memory error (and saying so) instead of dying."""
    while True:
        try:
            return run(batch_size)
        except torch.cuda.OutOfMemoryError:
            if batch_size <= 1:
                raise
            torch.cuda.empty_cache()
            batch_size //= 2
            message = f"{what}: out of GPU memory, retrying with batch size {batch_size}"
            (warn or logging.getLogger("deltainf").warning)(message)


def factors_dir(root: Path, key: str) -> Path:
    return Path(root) / ANALYSIS / f"factors_{key}"


MANIFEST = "deltainf-manifest.json"  # size and SHA-256 of every factor file, written once the fit completed


def _manifest(d: Path) -> dict:
    return {f.name: [f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest()]
            for f in sorted(d.iterdir()) if f.is_file() and f.name != MANIFEST}


def factors_problem(root: Path, key: str, checksums: bool = True) -> str | None:
    """None when complete, intact factors exist for ``key``; else what is wrong ("missing" when there are none).

    Only fully written fits are renamed into place, with a manifest; a file truncated or altered since
    (a disk fault, a full disk) fails the size or, with ``checksums``, the SHA-256 check.
    """
    d = factors_dir(root, key)
    if not d.is_dir():
        return "missing"
    try:
        files = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return "no manifest: an unfinished fit, or one from an older version"
    for name, (size, digest) in files.items():
        f = d / name
        if not f.is_file() or f.stat().st_size != size:
            return f"{name} is missing or truncated"
        if checksums and hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            return f"{name} does not match its checksum"
    return None


def factors_ready(root: Path, key: str) -> bool:
    """Complete factors exist for ``key`` (sizes checked; :func:`factors_problem` also checks contents)."""
    return factors_problem(root, key, checksums=False) is None


def lambda_sample(n: int, lambda_examples: int | None, seed: int) -> np.ndarray | None:
    """The training points the eigenvalue correction λ is fitted on: a seeded sample of ``lambda_examples`` of the
    ``n`` (in order), or None for all. kronfluence's own ``lambda_max_examples`` takes the first ones, which in a
    folder sorted by class are a few classes."""
    if lambda_examples is None or lambda_examples >= n:
        return None
    return np.sort(seeded(seed, "lambda sample").choice(n, lambda_examples, replace=False))


@contextmanager
def tensor_cores(on: bool):
    """TF32 matrix products on a GPU while ``on``: the λ pass rotates every per-sample gradient into the
    eigenbasis (d_out·d_in·(d_in + d_out) multiply-adds per point and layer, ~100× the scoring pass's per point on
    ResNet-18's widest layers) in fp32, which without tensor cores is the factor fit's bottleneck."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = before or on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def fit_factors(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, root: Path, key: str,
                device: torch.device, batch_size: int = 256, seed: int = 0, precision: str = "fp32",
                lambda_examples: int | None = None) -> Path:
    """Fit EK-FAC factors of ``model`` on the training set once; stored at ``factors_dir(root, key)``.

    The true Fisher samples labels from the model; ``seed`` fixes those draws so the same inputs
    always give the same factors (and so the same flagged set). ``lambda_examples``: λ from a seeded sample
    (:func:`lambda_sample`). In bf16 on a GPU the λ products run on tensor cores (TF32).
    """
    final = factors_dir(root, key)
    if factors_ready(root, key):
        return final
    staging = distributed.run_name(f"{key}.partial")  # every rank writes its part into the same folder
    analyzer = _analyzer(model, root, device)
    devices = [device] if device.type == "cuda" else []
    try:
        dataset, sample = _dataset(x_train, y_train), lambda_sample(len(y_train), lambda_examples, seed)
        args = factor_arguments(precision)

        def fit(bs: int) -> None:
            with torch.random.fork_rng(devices=devices), tensor_cores(precision == "bf16"):
                torch.manual_seed(seed)
                if sample is None:
                    analyzer.fit_all_factors(factors_name=staging, dataset=dataset, per_device_batch_size=bs,
                                             factor_args=args, overwrite_output_dir=True)
                    return
                analyzer.fit_covariance_matrices(staging, dataset, per_device_batch_size=bs, factor_args=args,
                                                 overwrite_output_dir=True)
                analyzer.perform_eigendecomposition(staging, factor_args=args, overwrite_output_dir=True)
                analyzer.fit_lambda_matrices(staging, Subset(dataset, sample.tolist()), per_device_batch_size=bs,
                                             factor_args=args, overwrite_output_dir=True)

        with frozen_heap():
            with_batch_backoff(fit, batch_size, "EK-FAC factors")
        tmp = factors_dir(root, staging)
        if distributed.is_main():
            (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp)))
            if factors_ready(root, key):  # another process finished first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                if final.exists():  # a damaged or unfinished leftover
                    shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
    finally:
        distributed.shard_barrier()
        if distributed.is_main():
            shutil.rmtree(factors_dir(root, staging), ignore_errors=True)
    return final


def pairwise_scores(model: nn.Module, x_query: torch.Tensor, y_query: torch.Tensor, x_train: torch.Tensor,
                    y_train: torch.Tensor, root: Path, factors_key: str, device: torch.device,
                    damping: float | None = None, train_batch_size: int = 512, precision: str = "fp32") -> np.ndarray | None:
    """Influence of every training point on every query, shape (Q, N), in ONE pass over the training set.

    All queries go in one query batch, so T+1 queries cost about as much as one. Under torchrun on GPUs every rank
    scores its share of the training set and rank 0 alone returns the matrix (None on the others).
    """
    if not factors_ready(root, factors_key):
        raise RuntimeError(f"EK-FAC factors {factors_key} are missing; fit them first")
    analyzer = _analyzer(model, root, device)
    name = distributed.run_name("run")
    try:
        with frozen_heap():
            with_batch_backoff(lambda bs: analyzer.compute_pairwise_scores(
                scores_name=name, factors_name=factors_key, query_dataset=_dataset(x_query, y_query),
                train_dataset=_dataset(x_train, y_train), per_device_query_batch_size=len(y_query),
                per_device_train_batch_size=bs, score_args=score_arguments(damping, precision),
                overwrite_output_dir=True), train_batch_size, "influence scores")
        if not distributed.is_main():
            return None
        return analyzer.load_pairwise_scores(name)["all_modules"].float().cpu().numpy()
    finally:
        distributed.shard_barrier()
        if distributed.is_main():
            shutil.rmtree(analyzer.scores_output_dir(name), ignore_errors=True)
