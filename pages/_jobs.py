"""Server-side state of the app, without Streamlit: background jobs (one engine computation at a time),
recent pipelines, stores and derived views. ``pages/_ui.py`` keeps the one :class:`Runtime` of a server.
"""
from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

from deltainf import Config
from deltainf.errors import DeltaInfError

if TYPE_CHECKING:
    from pages._ui import Upload

STAGE_TEXT = {"train": "training the model", "factors": "fitting EK-FAC factors (one pass + eigendecomposition)",
              "scores": "scoring the T + 1 queries against every training point"}
MAX_PIPELINES = 4


class Job:
    """One background computation with its progress, result or error.

    Jobs run one at a time in the whole server (``Runtime.compute``): the engine seeds torch's global
    random generator around its stochastic steps (true-Fisher sampling, model initialisation, the
    copies' augmentations), so two of them interleaved in one process would change each other's draws
    and the cache would keep irreproducible factors. One at a time also suits a 2-core machine.
    """

    def __init__(self, key: tuple, label: str, fn: Callable, runtime: "Runtime"):
        self.key, self.label = key, label
        self.stage, self.done, self.total = "queued", 0, 0
        self.result: Any = None
        self.error: str | None = None
        self.trace: str | None = None
        self.started = time.time()
        self.ended: float | None = None
        self.finished = threading.Event()
        self._runtime = runtime
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name=f"deltainf-{label}")
        self._thread.start()

    def progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    def _run(self, fn: Callable) -> None:
        rt = self._runtime
        try:
            with rt.compute:
                rt.computing = self
                self.stage, self.started = "starting", time.time()
                try:
                    self.result = fn(self.progress)
                finally:
                    rt.computing = None
        except DeltaInfError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown in the page, with the traceback in an expander
            self.error = f"{type(exc).__name__}: {exc}"
            self.trace = traceback.format_exc()
        finally:
            self.ended = time.time()
            self.finished.set()

    @property
    def ok(self) -> bool:
        return self.finished.is_set() and self.error is None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def text(self) -> str:
        if self.stage == "queued":
            other = self._runtime.computing
            return f"waiting for: {other.label if other else 'other work'} · {time.time() - self.started:.0f} s"
        stage = STAGE_TEXT.get(self.stage, self.stage)
        if self.stage.startswith("unlearn"):
            stage = f"{self.stage}: retraining / updating the model"
        count = f" {self.done}/{self.total}" if self.total > 1 else ""
        return f"{stage}{count} · {time.time() - self.started:.0f} s"


class Runtime:
    """Server-wide state: one Store per cache folder, recent pipelines, jobs and derived views."""

    def __init__(self):
        self.lock = threading.RLock()       # guards these dictionaries
        self.compute = threading.Lock()     # one engine computation at a time (see Job)
        self.computing: Job | None = None
        self.stores: dict[str, Any] = {}
        self.pipelines: OrderedDict[tuple, tuple] = OrderedDict()  # content key → (instance key, Pipeline)
        self.serial = 0
        self.ready: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Pipeline → levels loaded in memory
        self.jobs: OrderedDict[tuple, Job] = OrderedDict()
        self.views: OrderedDict[tuple, Any] = OrderedDict()
        self.notice: str | None = None      # a server setting that could not be used, a cache set aside: shown in the sidebar

    def store(self, root) -> Any:
        from deltainf.cache import Store

        with self.lock:
            key = str(root)
            if key not in self.stores:
                self.stores[key] = Store(root)
                if note := self.stores[key].notice:  # a damaged database was set aside: say so in the sidebar
                    self.notice = " ".join(filter(None, [self.notice, note[0].upper() + note[1:] + "."]))
            return self.stores[key]

    def pipeline(self, cfg: Config, weights: Upload | None, query: Upload | None) -> tuple[tuple, Any]:
        """(instance key, Pipeline) for this content. The instance key names this very object, so jobs that
        fill its in-memory stages run again for a new object after an old one was dropped."""
        from deltainf import Pipeline

        key = (cfg, weights.digest if weights else None, query.digest if query else None)
        with self.lock:
            if key in self.pipelines:
                self.pipelines.move_to_end(key)
                return self.pipelines[key]
            pipe = Pipeline(cfg, store=self.store(cfg.cache_path), weights=weights.data if weights else None,
                            query_image=query.data if query else None)
            self.serial += 1
            self.pipelines[key] = ((key, self.serial), pipe)
            while len(self.pipelines) > MAX_PIPELINES:
                self.pipelines.popitem(last=False)
            return self.pipelines[key]

    def start(self, key: tuple, label: str, pipe, fn: Callable, restart_failed: bool = True) -> Job:
        """The job ``key`` running ``fn(pipe)`` (started now if it is new, or if it failed and ``restart_failed``)."""
        with self.lock:
            job = self.jobs.get(key)
            if job is not None and not (restart_failed and job.finished.is_set() and job.error):
                return job

            def run(progress):
                pipe.progress = progress
                try:
                    return fn(pipe)
                finally:
                    pipe.progress = _silent

            job = self.jobs[key] = Job(key, label, run, self)
            while len(self.jobs) > 256:
                self.jobs.popitem(last=False)
            return job

    def running(self) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if not j.finished.is_set()]

    def mark(self, pipe, *levels: str) -> None:
        with self.lock:
            self.ready.setdefault(pipe, set()).update(levels)

    def is_ready(self, pipe, level: str) -> bool:
        with self.lock:
            return level in self.ready.get(pipe, ())

    def view(self, key: tuple, make: Callable) -> Any:
        with self.lock:
            if key not in self.views:
                self.views[key] = make()
                while len(self.views) > 16:
                    self.views.popitem(last=False)
            return self.views[key]


def _silent(stage, done, total):
    pass
