"""Progress and timings, shared by the CLI (tqdm) and the app (st.progress).

The engine calls ``progress(stage, done, total)``; front ends decide how to show it.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int) -> None: ...


def silent(stage: str, done: int, total: int) -> None:
    """The default: show nothing."""


ProgressFn = Callable[[str, int, int], None]


class Reporter:
    """Where an experiment and its investigations report progress; a front end points it elsewhere while
    a job of its own runs (:meth:`to`)."""

    def __init__(self, fn: ProgressFn = silent):
        self.fn = fn
        self.prefix = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.fn(self.prefix + stage, done, total)

    @contextmanager
    def within(self, label: str):
        """Name the item of a longer loop that the stages reported meanwhile belong to ("EU 1/2 · round 2 · …")."""
        old, self.prefix = self.prefix, f"{self.prefix}{label} · "
        try:
            yield self
        finally:
            self.prefix = old

    @contextmanager
    def to(self, fn: ProgressFn):
        old, self.fn = self.fn, fn
        try:
            yield self
        finally:
            self.fn = old


class Timings:
    """Seconds per stage (the time to load it when it came from the cache) and whether it did."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cached: dict[str, bool] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def timed(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)


class TqdmProgress:
    """One tqdm bar per stage, on stderr."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self._bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, desc=stage, disable=self.disable, leave=False)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            del self._bars[stage]
