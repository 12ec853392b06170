"""Several processes started by torchrun: the influence stages through kronfluence's own distributed path.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in every process. On GPUs kronfluence shards the training
set over the ranks and reduces factors and scores to rank 0, which writes them into the content-addressed cache,
so a later single-process run (the CLI or the app) finds them. kronfluence goes distributed on CUDA only; on CPUs
rank 0 computes each stage and the other ranks read its result from the cache. Everything before the influence
stages (data, attack, training) runs on rank 0 first, then on the others, who find it cached.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT = timedelta(hours=2)  # rank 0 may train a model while the others wait


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets ``LOCAL_RANK``)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes to the cache and prints."""
    return rank() == 0


def kronfluence_shards() -> bool:
    """Whether kronfluence itself splits the work over the ranks (several processes, each with its GPU)."""
    return world_size() > 1 and dist.get_backend() == "nccl"


def start(device_name: str) -> None:
    """Join torchrun's process group: NCCL on GPUs (each rank's ``cuda`` is then its own GPU, ``LOCAL_RANK``),
    gloo on CPUs. Outside torchrun: nothing to do."""
    if not launched() or dist.is_initialized():
        return
    gpu = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend="nccl" if gpu else "gloo", timeout=TIMEOUT)


def stop() -> None:
    """Leave the process group (no barrier: after an error on one rank the others never reach it; torchrun then
    stops them)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def shard_barrier() -> None:
    """Wait for every rank where kronfluence shares the work among them (inside a stage all of them run)."""
    if kronfluence_shards():
        dist.barrier()


def from_main(value):
    """Rank 0's ``value`` on every rank (a decision all ranks must take together)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_name(prefix: str) -> str:
    """A name for a kronfluence run that is unique to this run and shared by its ranks (they write one folder)."""
    name = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return from_main(name) if kronfluence_shards() else name


def computes() -> bool:
    """Whether this rank computes the influence stages: every rank where kronfluence shares the work, else rank 0."""
    return is_main() or kronfluence_shards()


@contextmanager
def held_by_main(lock):
    """``lock`` (a context manager) held by rank 0 alone: the other ranks work inside the same stage without it."""
    if is_main():
        with lock:
            yield
    else:
        yield


@contextmanager
def main_first():
    """Rank 0 runs the block first; the other ranks run it after, and find what it made in the cache."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
