"""What a page needs before it can draw, and how it waits for it.

Heavy stages run in background jobs owned by the server process, keyed by what they compute: a page that
needs one starts it (or finds it already running, maybe started by another browser session), shows its
progress in an ``st.status`` polled by a small fragment, and reruns when it finishes. Navigating away never
cancels work, and a slider never waits for it.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from . import PAGE_FILES
from .jobs import FactorsJob, Instance, Job, PrepareJob, Runtime, ScoresJob, WeightsCheckJob
from .sidebar import stop
from .state import config, experiment, runtime, train_key
from .uploads import Upload

#: what each level of an experiment needs in memory before a page may read it without computing
LEVELS = {"model": "Loading the model and the test image", "queries": "Drawing the transformed copies"}


def _load_model_level(src, rt: Runtime) -> dict:
    """Everything the pages read about the model and the test image, loaded (or computed) in a job."""
    result = src.overview()
    rt.mark(src, "model")
    return result


def train_job(instance: Instance, src, key=None) -> Job:
    """Train (or load) the model of a source (the session's, unless ``key`` names another's job)."""
    rt = runtime()
    label = "Train" if src.kind == "experiment" else "Load your model and data"  # words only: nothing is planted yet

    def run(e):
        result = _load_model_level(e, rt)
        if e.kind == "experiment" and _quick_factors(e):  # only a few seconds' wait for a page that needs the engine
            _factors_ahead(e, rt)
        return result

    return rt.start(key or train_key(src.config), label, src, run)


#: training points × model parameters up to which the factors are fitted as soon as the model is trained (the
#: built-in digits: 1.2e8, about 3 s on two cores); larger ones wait for a page that needs them
QUICK_FACTORS = 5e8


def _quick_factors(exp) -> bool:
    return len(exp.train_set.y_train) * sum(p.numel() for p in exp.model.parameters()) <= QUICK_FACTORS


def _factors_ahead(exp, rt: Runtime) -> None:
    rt.start(FactorsJob(exp.investigation.influence.factors_key), "EK-FAC factors (ahead of Influence)", exp,
             lambda e: e.investigation.influence.factors())


def check_weights(upload: Upload) -> Job:
    """Try an uploaded checkpoint on a fresh model of the session's architecture (nothing else changes)."""
    from deltainf.store.checkpoints import load_weights_into

    instance, base = runtime().experiment(config(), None, None)

    def run(e):
        load_weights_into(e.recipe.new_model(), upload.data, upload.name)  # raises CheckpointError with the reason

    return runtime().start(WeightsCheckJob(upload.digest, instance), f"Checking {upload.name}", base, run)


def _prepare(level: str):
    rt = runtime()

    def run(exp):
        result = _load_model_level(exp, rt)
        if level == "queries":
            exp.investigation.queries()
            rt.mark(exp, "queries")
            _factors_ahead(exp, rt)
        return result

    return run


def require_trained(level: str = "model") -> tuple[Instance, Any]:
    """(Instance, Experiment) when this session's experiment has a trained model and ``level`` is in memory;
    else explain what to do first (or show the loading) and stop."""
    job = runtime().jobs.get(train_key())
    if job is None:
        st.info("There is no trained model for the current experiment yet. Open **Experiment** and press "
                "**Train** first (it loads from the cache when this experiment was trained before).")
        page_link("experiment", "Go to Experiment")
        stop()
    if not job.finished.is_set():
        st.info("The model is still training; this page opens when it is done.")
        progress_panel(job)
        stop()
    if job.error:
        st.info(f"Training failed ({job.error}). Fix the experiment on the **Experiment** page and train again.")
        page_link("experiment", "Go to Experiment")
        stop()
    instance, exp = experiment()
    rt = runtime()
    if not rt.is_ready(exp, level):
        await_job(rt.start(PrepareJob(level, instance), LEVELS[level], exp, _prepare(level)))
    if exp.planted is not None and not exp.implanted:  # the CLI runs no detector then; every page says why
        st.warning(f"The attack did not implant ({exp.implant_problem}): there is no backdoor to trace, so "
                   f"flags, TPR and precision on these pages mean nothing. Try more poisons, more training "
                   f"images or more epochs on the Experiment page.")
    return instance, exp


def scores_job(instance: Instance, exp) -> Job:
    mode, rt = exp.config.mode, runtime()

    def run(e):
        _load_model_level(e, rt)
        e.investigation.scores(mode)
        return {"timings": dict(e.timings.seconds), "cached": dict(e.timings.cached)}

    return rt.start(ScoresJob(instance, mode), "EK-FAC influence", exp, run)


def require_scores(instance: Instance, exp) -> Job:
    job = runtime().jobs.get(ScoresJob(instance, exp.config.mode))
    if job is None or not job.ok:
        st.info("Influence scores are not computed yet for this test image. Open **Influence** first: it "
                "computes them (or loads them from the cache) and lets you tune τ and k.")
        page_link("influence", "Go to Influence")
        stop()
    return job


@st.fragment(run_every=1.0)  # each poll costs the browser a re-render: at 2 Hz it took a third of a core from training
def _poll(key) -> None:
    job = runtime().jobs.get(key)
    if job is None or job.finished.is_set():
        st.rerun()
    st.progress(job.fraction, text=job.text())


def progress_panel(job: Job, what: str | None = None, cancel: bool = False) -> None:
    """A running job's stage, count and elapsed time, polled once a second (with a Cancel button when
    ``cancel``). Written into the status box without entering it: leaving it would mark it done."""
    box = st.status(what or f"{job.label}: running in the background…", state="running", expanded=True)
    box.caption("You can switch pages meanwhile: the work goes on and the result is kept.")
    if cancel and box.button("Cancel", key=f"cancel_{hash(job.key)}", icon=":material/stop:"):
        job.cancel()
    with box.container():
        _poll(job.key)


def await_job(job: Job, wait: float = 0.6, what: str | None = None, cancel: bool = False) -> Any:
    """The job's result; else show its progress (or its error) and stop this script run."""
    if not job.finished.wait(wait):
        progress_panel(job, what, cancel)
        stop()
    if job.cancelled:
        st.info(f"{job.label}: cancelled. Press its button again to start over (finished parts come from the cache).")
        stop()
    if job.error:
        st.error(f"{job.label} failed: {job.error}")
        if job.trace:
            with st.expander("Traceback"):
                st.code(job.trace)
        stop()
    return job.result


def page_link(name: str, label: str) -> None:
    st.page_link(PAGE_FILES[name], label=label, icon=":material/arrow_forward:")

