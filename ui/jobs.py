"""Server-side state of the app, without Streamlit: background jobs (one engine computation at a time), each
named by a typed key of what it computes, recent experiments, stores and derived views. ``ui/state.py``
keeps the one :class:`Runtime` of a server.
"""
from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from deltainf.errors import DeltaInfError

from .uploads import Upload

STAGE_TEXT = {"data": "reading the data", "attack": "planting the poisons (the attack)",
              "train": "training the model", "factors": "fitting EK-FAC factors (one pass + eigendecomposition)",
              "scores": "scoring the T + 1 queries against every training point"}
MAX_EXPERIMENTS = 4


# ----------------------------------------------------------------------------- what a job computes
@dataclass(frozen=True)
class Instance:
    """One Experiment object of the runtime: its content (config and uploads) and a serial number, so jobs that
    fill its in-memory stages run again for a new object after an old one was dropped."""

    content: tuple
    serial: int


@dataclass(frozen=True)
class TrainJob:
    """Train (or load) the model of an experiment's training settings."""

    training: str           # the training fields of the Config
    weights: str | None     # an uploaded checkpoint's digest
    cache: str
    query: str | None = None  # a case's uploaded test image (loading a case predicts it)


@dataclass(frozen=True)
class WeightsCheckJob:
    digest: str
    instance: Instance


@dataclass(frozen=True)
class PrepareJob:
    """Load what a page reads into memory: ``level`` is "model" or "queries"."""

    level: str
    instance: Instance


@dataclass(frozen=True)
class FactorsJob:
    factors_key: str


@dataclass(frozen=True)
class ScoresJob:
    instance: Instance
    mode: str


@dataclass(frozen=True)
class VerdictJob:
    """The verdict on a source's test image (the full copies' scores and two retrained models)."""

    instance: Instance


@dataclass(frozen=True)
class DetectorsJob:
    """Detectors on one experiment; the Δ rules at τ/k (None: each one's suggestion)."""

    instance: Instance
    names: tuple[str, ...]
    tau: float | None = None
    k: int | None = None


@dataclass(frozen=True)
class UnlearnJob:
    instance: Instance
    methods: tuple[str, ...]
    source: str             # a detector's name, or the Influence page's τ/k rule
    tau: float
    k: int
    until_clean: bool
    escalate: bool = False


@dataclass(frozen=True)
class GridJob:
    """Every chosen unlearning method on every chosen detector's flags."""

    instance: Instance
    tau: float | None
    k: int | None
    detectors: tuple[str, ...]
    methods: tuple[str, ...]


# ----------------------------------------------------------------------------- jobs
class JobCancelled(Exception):
    """Raised inside a job's computation once the user cancelled it."""


class Job:
    """One background computation with its progress, result or error.

    Jobs run one at a time in the whole server (``Runtime.compute``): the engine seeds torch's global
    random generator around its stochastic steps (true-Fisher sampling, model initialisation, the
    copies' augmentations), so two of them interleaved in one process would change each other's draws
    and the cache would keep irreproducible factors. One at a time also suits a 2-core machine.
    """

    def __init__(self, key, label: str, fn: Callable, runtime: "Runtime"):
        self.key, self.label = key, label
        self.stage, self.done, self.total = "queued", 0, 0
        self.result: Any = None
        self.error: str | None = None
        self.trace: str | None = None
        self.created = self.started = time.time()  # started: when it got the engine (it may wait its turn)
        self.ended: float | None = None
        self.cancelled = False
        self.finished = threading.Event()
        self._runtime = runtime
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name=f"deltainf-{label}")
        self._thread.start()

    def progress(self, stage: str, done: int, total: int) -> None:
        if self.cancelled and threading.current_thread() is self._thread:  # it stops at its next report
            raise JobCancelled()
        self.stage, self.done, self.total = stage, done, total

    def cancel(self) -> None:
        """Stop at the engine's next progress report (what is finished stays in the cache)."""
        self.cancelled = True

    @property
    def waited(self) -> float:
        """Seconds from the request to the result (or to now): the whole wait the user saw."""
        return (self.ended or time.time()) - self.created

    def _run(self, fn: Callable) -> None:
        rt = self._runtime
        try:
            with rt.compute:
                rt.computing = self
                self.stage, self.started = "starting", time.time()
                try:
                    self.result = fn(self.progress)
                    self.cancelled = False  # it finished before reporting again: the result stands
                finally:
                    rt.computing = None
        except JobCancelled:
            self.error = "cancelled"
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
        where, _, stage = self.stage.rpartition(" · ")  # "EU (1/2) · round 2/3 · unlearn eu"
        text = STAGE_TEXT.get(stage, stage)
        if stage.startswith("unlearn"):
            text = f"{stage}: retraining / updating the model"
        count = f" {self.done}/{self.total}" if self.total > 1 else ""
        return f"{where + ' · ' if where else ''}{text}{count} · {time.time() - self.started:.0f} s"


class Runtime:
    """Server-wide state: one Store per cache folder, recent experiments, jobs and derived views."""

    def __init__(self):
        self.lock = threading.RLock()       # guards these dictionaries
        self.compute = threading.Lock()     # one engine computation at a time (see Job)
        self.computing: Job | None = None
        self.stores: dict[str, Any] = {}
        self.experiments: OrderedDict[tuple, tuple] = OrderedDict()  # content → (Instance, Experiment)
        self.serial = 0
        self.ready: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Experiment → levels loaded in memory
        self.jobs: OrderedDict[Any, Job] = OrderedDict()
        self.views: OrderedDict[tuple, Any] = OrderedDict()
        self.notice: str | None = None      # shown in the sidebar: a server setting not used, a cache set aside

    def store(self, root) -> Any:
        from deltainf.store import Store

        with self.lock:
            key = str(root)
            if key not in self.stores:
                self.stores[key] = Store(root)
                if note := self.stores[key].notice:  # a damaged database was set aside: say so in the sidebar
                    self.notice = " ".join(filter(None, [self.notice, note[0].upper() + note[1:] + "."]))
            return self.stores[key]

    def experiment(self, cfg, weights: Upload | None, query: Upload | None) -> tuple[Instance, Any]:
        """(Instance, source) for this content, made once while it is among the recent ones: an Experiment, or
        a Case for the options of a user's own folder and model (a CaseConfig)."""
        from deltainf.case import Case
        from deltainf.config import CaseConfig
        from deltainf.experiment import Experiment

        content = (cfg, weights.digest if weights else None, query.digest if query else None)
        with self.lock:
            if content in self.experiments:
                self.experiments.move_to_end(content)
                return self.experiments[content]
            kind = Case if isinstance(cfg, CaseConfig) else Experiment
            exp = kind(cfg, store=self.store(cfg.cache_path), weights=weights.data if weights else None,
                       query_image=query.data if query else None)
            self.serial += 1
            self.experiments[content] = (Instance(content, self.serial), exp)
            while len(self.experiments) > MAX_EXPERIMENTS:
                self.experiments.popitem(last=False)
            return self.experiments[content]

    def start(self, key, label: str, exp, fn: Callable, restart_failed: bool = True) -> Job:
        """The job ``key`` running ``fn(exp)`` (started now if it is new, or if it failed and ``restart_failed``),
        with the experiment's progress reported to the job."""
        with self.lock:
            job = self.jobs.get(key)
            if job is not None and not (restart_failed and job.finished.is_set() and job.error):
                return job

            def run(progress):
                with exp.reporter.to(progress):
                    return fn(exp)

            job = self.jobs[key] = Job(key, label, run, self)
            while len(self.jobs) > 256:
                self.jobs.popitem(last=False)
            return job

    def running(self) -> list[Job]:
        with self.lock:
            return [j for j in self.jobs.values() if not j.finished.is_set()]

    def mark(self, exp, *levels: str) -> None:
        with self.lock:
            self.ready.setdefault(exp, set()).update(levels)

    def is_ready(self, exp, level: str) -> bool:
        with self.lock:
            return level in self.ready.get(exp, ())

    def view(self, key: tuple, make: Callable) -> Any:
        with self.lock:
            if key not in self.views:
                self.views[key] = make()
                while len(self.views) > 16:
                    self.views.popitem(last=False)
            return self.views[key]
