"""Plumbing shared by the pages (not a page itself): session state, cached pipelines, background jobs
(their machinery is in ``pages/_jobs.py``), prerequisite messages and the sidebar.

Heavy stages run in background threads ("jobs") owned by the server process, keyed by what they
compute: a page that needs one starts it (or finds it already running, maybe started by another
browser session), shows its progress in an ``st.status`` polled by a small fragment, and reruns
when it finishes. Navigating away never cancels work, and a slider never waits for it.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import streamlit as st

from deltainf import Config
from deltainf.errors import DeltaInfError
from pages._jobs import Job, Runtime

PAGE_FILES = {
    "experiment": "pages/experiment.py",
    "query": "pages/query_image.py",
    "transforms": "pages/transformations.py",
    "influence": "pages/influence.py",
    "unlearn": "pages/unlearn.py",
    "compare": "pages/compare.py",
}
#: Config fields that do not change the trained model (so changing them never asks to train again).
QUERY_FIELDS = ("test_index", "transforms", "mode", "transform_seed", "tau", "k", "damping", "ekfac_threshold",
                "detectors", "unlearn")


# ----------------------------------------------------------------------------- uploads and session state
@dataclass(frozen=True)
class Upload:
    """A user's file, validated: raw bytes (weights) or a decoded uint8 image tensor (test image)."""

    name: str
    data: Any
    digest: str


def digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


def init_state() -> None:
    """Per-session defaults: the built-in experiment, no uploads, τ and k suggested by the engine."""
    ss = st.session_state
    if "config" not in ss:
        ss.config = Config()
        ss.weights = None       # Upload with bytes
        ss.query = None         # Upload with a uint8 (3, H, W) tensor
        ss.det_tau = ss.config.tau  # τ in raw score units as last set on the Influence page (None: suggest)
        ss.det_scale = None     # the score scale det_tau was set against
        ss.det_k = ss.config.k  # None: suggest
        ss.det_chosen = ss.config.tau is not None or ss.config.k is not None  # set by the user, not suggested


def config() -> Config:
    return st.session_state.config


def set_config(cfg: Config) -> None:
    """Make ``cfg`` the session's experiment; another model forgets the picked or uploaded test image."""
    old = st.session_state.config
    if train_fields(cfg) != train_fields(old):
        if cfg.test_index == old.test_index:
            cfg = cfg.replace(test_index=None)
        st.session_state.query = None
    st.session_state.config = cfg


def train_fields(cfg: Config) -> dict:
    d = dataclasses.asdict(cfg)
    for name in QUERY_FIELDS:
        d.pop(name, None)
    return d


def uploads() -> tuple[Upload | None, Upload | None]:
    return st.session_state.get("weights"), st.session_state.get("query")


# ----------------------------------------------------------------------------- pipelines and jobs
@st.cache_resource(show_spinner=False)
def runtime() -> Runtime:
    """The server's one Runtime. Sets torch's CPU threads by the engine's rule (the CLI's too), so the app
    and the CLI give the same model and flagged set from the same seed and share one cache."""
    from deltainf.device import configure_cpu_threads

    rt = Runtime()
    try:
        configure_cpu_threads()
    except DeltaInfError as exc:
        rt.notice = f"{exc}; using torch's default"
    return rt


def pipeline(cfg: Config | None = None) -> tuple[tuple, Any]:
    """(instance key, Pipeline) for ``cfg`` (default: the session's experiment) with the session's uploads."""
    weights, query = uploads()
    return runtime().pipeline(cfg or config(), weights, query)


def train_key(cfg: Config | None = None) -> tuple:
    cfg = cfg or config()
    weights, _ = uploads()
    return ("train", repr(sorted(train_fields(cfg).items())), weights.digest if weights else None,
            str(cfg.cache_path))


def _load_model_level(p, rt: Runtime) -> dict:
    """Everything the pages read about the model and the test image, loaded (or computed) in a job."""
    metrics = p.model_metrics
    _ = p.poisoned_test_candidates, p.test_index, p.query_label
    rt.mark(p, "model")
    return {"metrics": metrics, "timings": dict(p.timings), "cached": dict(p.cached)}


def train_job(ikey: tuple, pipe) -> Job:
    """Train (or load) the model of the session's experiment."""
    rt = runtime()
    return rt.start(train_key(pipe.config), "Train", pipe, lambda p: _load_model_level(p, rt))


def check_weights(upload: Upload) -> Job:
    """Try an uploaded checkpoint on a fresh model of the session's architecture (nothing else changes)."""
    from deltainf.checkpoints import load_weights_into

    ikey, base = runtime().pipeline(config(), None, None)

    def run(p):
        load_weights_into(p.new_model(), upload.data, upload.name)  # raises CheckpointError with the reason

    return runtime().start(("check-weights", upload.digest, ikey), f"Checking {upload.name}", base, run)


#: what each level of a pipeline needs in memory before a page may read it without computing
LEVELS = {"model": "Loading the model and the test image", "queries": "Drawing the transformed copies"}


def _prepare(level: str):
    rt = runtime()

    def run(p):
        result = _load_model_level(p, rt)
        if level == "queries":
            p.queries()
            rt.mark(p, "queries")
            # EK-FAC factors depend on the model only: fit them now, ahead of the Influence page.
            rt.start(("prefetch", p.factors_key), "EK-FAC factors (ahead of Influence)", p, lambda q: q.factors())
        return result

    return run


def require_trained(level: str = "model"):
    """(instance key, Pipeline) when this session's experiment has a trained model and ``level`` is in memory;
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
    ikey, pipe = pipeline()
    rt = runtime()
    if not rt.is_ready(pipe, level):
        await_job(rt.start(("prepare", level, ikey), LEVELS[level], pipe, _prepare(level)))
    if not pipe.implanted:  # the CLI runs no detector then; here every page says why its numbers mean nothing
        st.warning(f"The attack did not implant ({pipe.implant_problem}): there is no backdoor to trace, so "
                   f"flags, TPR and precision on these pages mean nothing. Try more poisons, more training "
                   f"images or more epochs on the Experiment page.")
    return ikey, pipe


def scores_key(ikey: tuple, mode: str) -> tuple:
    return ("scores", ikey, mode)


def scores_job(ikey: tuple, pipe) -> Job:
    mode, rt = pipe.config.mode, runtime()

    def run(p):
        _load_model_level(p, rt)
        p.scores(mode)
        return {"timings": dict(p.timings), "cached": dict(p.cached)}

    return rt.start(scores_key(ikey, mode), "EK-FAC influence", pipe, run)


def delta_view(ikey: tuple, pipe):
    """The Influence page's precomputed Δ view for this pipeline (built once, shared by sessions)."""
    from deltainf import views

    def make():
        q = pipe.queries()  # read from the cache: the scores job stored them
        names = views.query_captions(q, pipe.data.classes)[1:]
        return views.DeltaView.build(pipe.scores(), pipe.is_poison, names, pipe.poisoned.data.y_train.numpy())

    return runtime().view(("delta", ikey[0], pipe.config.mode), make)


# ----------------------------------------------------------------------------- τ and k, kept across pages
def detector_params(view, pipe) -> tuple[float, int]:
    """The τ (raw) and k last chosen on the Influence page (rescaled if the score scale changed), or the
    engine's suggestion from Δ alone while none was chosen — suggested again for every new Δ matrix."""
    ss = st.session_state
    seen = (view.scale, view.T, pipe.config.mode, pipe.config.transform_seed, pipe.test_index)
    if not ss.get("det_chosen") and ss.get("det_seen") != seen:
        ss.det_tau = ss.det_k = None  # a suggestion for another experiment is not a choice
    ss.det_seen = seen
    if ss.det_tau is None or ss.det_k is None:
        tau, k, _ = pipe.tau_k(pipe.config.mode)
        ss.det_tau = float(tau) if ss.det_tau is None else ss.det_tau
        ss.det_k = int(k) if ss.det_k is None else ss.det_k
    elif ss.det_scale is not None and ss.det_scale != view.scale:
        ss.det_tau = ss.det_tau / ss.det_scale * view.scale
    ss.det_scale = view.scale
    ss.det_k = max(0, min(int(ss.det_k), view.T - 1))
    return float(ss.det_tau), int(ss.det_k)


def suggestion(ikey: tuple, pipe) -> tuple[float, int]:
    """The engine's ground-truth-free (τ, k) for this experiment (cached)."""
    from deltainf.detect import delta_matrix, score_scale, suggest_tau_k

    def make():
        scores = pipe.scores(pipe.config.mode)
        return suggest_tau_k(delta_matrix(scores), score_scale(scores))

    return runtime().view(("suggest", ikey[0], pipe.config.mode), make)


# ----------------------------------------------------------------------------- showing jobs
@st.fragment(run_every=0.5)
def _poll(key: tuple) -> None:
    job = runtime().jobs.get(key)
    if job is None or job.finished.is_set():
        st.rerun()
    st.progress(job.fraction, text=job.text())


def progress_panel(job: Job, what: str | None = None) -> None:
    with st.status(what or f"{job.label}: running in the background…", expanded=True):
        st.caption("You can switch pages meanwhile: the work goes on and the result is kept.")
        _poll(job.key)


def await_job(job: Job, wait: float = 0.6, what: str | None = None) -> Any:
    """The job's result; else show its progress (or its error) and stop this script run."""
    if not job.finished.wait(wait):
        progress_panel(job, what)
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


def require_scores(ikey: tuple, pipe) -> Job:
    job = runtime().jobs.get(scores_key(ikey, pipe.config.mode))
    if job is None or not job.ok:
        st.info("Influence scores are not computed yet for this test image. Open **Influence** first: it "
                "computes them (or loads them from the cache) and lets you tune τ and k.")
        page_link("influence", "Go to Influence")
        stop()
    return job


# ----------------------------------------------------------------------------- sidebar
def begin_page(page_title: str) -> None:
    """Before a page runs: its sidebar is drawn after it (by :func:`stop` or :func:`end_page`), so what the
    sidebar says about jobs is what the page found (a job can finish or fail while the page waits on it)."""
    st.session_state["_sidebar_for"] = page_title


def end_page() -> None:
    """Draw this run's sidebar, once."""
    page_title = st.session_state.pop("_sidebar_for", None)
    if page_title is not None:
        sidebar(page_title)


def stop() -> None:
    """``st.stop()`` after drawing the sidebar (nothing can be drawn after a stop)."""
    end_page()
    st.stop()


def sidebar(page_title: str) -> None:
    """The session's experiment, running jobs, the cache and the device."""
    cfg = config()
    with st.sidebar:
        _sidebar_status_body(page_title)
        st.markdown("#### Cache")
        try:
            s = runtime().store(cfg.cache_path).summary()
            kinds = ", ".join(f"{v} {k}" for k, v in sorted(s["entries"].items())) or "empty"
            st.caption(f"{kinds}; {s['factors']} EK-FAC factor set(s); {s['bytes'] / 1e6:.1f} MB in `{s['root']}`")
        except DeltaInfError as exc:
            st.caption(f"unavailable: {exc}")
        st.markdown("#### Device")
        st.caption(device_text(cfg.device))
        if runtime().notice:
            st.warning(runtime().notice)


def _sidebar_status_body(page_title: str) -> None:
    cfg = config()
    weights, query = uploads()
    st.markdown("#### Current experiment")
    data = {"digits": "built-in digits", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
            "imagefolder": f"ImageFolder {cfg.data_root}"}.get(cfg.dataset, cfg.dataset)
    lines = [f"**{data}** · {cfg.attack} · {cfg.model} · seed {cfg.seed}"]
    tjob = runtime().jobs.get(train_key())
    if tjob is not None and tjob.ok:
        m = tjob.result["metrics"]
        lines.append(f"clean acc {m['clean_acc']:.3f} · poison success {m['poison_success']:.2f}")
    elif tjob is not None and not tjob.finished.is_set():
        lines.append("training…")
    elif tjob is not None:
        lines.append("training failed (see the Experiment page)")
    else:
        lines.append("not trained yet")
    lines.append(f"weights: {'uploaded ' + weights.name if weights else 'trained here'}")
    lines.append(f"test image: {'uploaded ' + query.name if query else ('#' + str(cfg.test_index) if cfg.test_index is not None else 'seeded pick')}")
    tau, k = st.session_state.det_tau, st.session_state.det_k
    if page_title == "Influence" and tjob is not None and tjob.ok:  # its sliders rerun only their fragment
        tk = "τ, k: set on this page"
    else:
        tk = "τ, k: suggested from Δ" if tau is None or k is None else f"τ = {tau:.4g} · k = {k}"
        if tau is not None and k is not None and not st.session_state.get("det_chosen"):
            tk += " (suggested)"
    lines.append(f"T = {cfg.transforms} ({cfg.mode}) · {tk}")
    st.markdown("  \n".join(lines))
    running = runtime().running()
    if running:
        st.markdown("#### Running")
        for job in running:
            st.caption(f"{job.label}: {job.text()}")


@st.cache_data(show_spinner=False)
def device_text(name: str) -> str:
    from deltainf.device import describe, resolve_device

    try:
        return describe(resolve_device(name))
    except DeltaInfError as exc:
        return str(exc)


# ----------------------------------------------------------------------------- cached page data
def experiment_facts(ikey: tuple, pipe) -> dict:
    from deltainf import views

    return runtime().view(("facts", ikey[0]), lambda: views.experiment_facts(pipe))


def poison_strip(ikey: tuple, pipe) -> dict:
    from deltainf import views

    def make():
        s = views.poison_strip(pipe)
        return {**s, "poisons": views.thumbnails(s["poisons"]), "clean": views.thumbnails(s["clean"])}

    return runtime().view(("strip", ikey[0]), make)


def trigger_picture(ikey: tuple, pipe) -> tuple[list, list[str]]:
    from deltainf import views

    return runtime().view(("trigger", ikey[0]), lambda: views.trigger_picture(pipe))


@st.cache_resource(show_spinner=False)
def attack_previews(attacks: tuple[str, ...], trigger: tuple, seed: int) -> dict[str, tuple[list, list[str]]]:
    """Each attack's trigger drawn on a built-in digit (instant, offline), for choosing an attack."""
    from deltainf import views
    from deltainf.data import load_dataset

    digits = load_dataset("digits", None, seed=0)
    sample = digits.x_train[int((digits.y_train == 3).nonzero()[0, 0])]
    size, pattern, corner = trigger
    cfg = Config(trigger_size=size, trigger_pattern=pattern, trigger_corner=corner, seed=seed)
    return {a: views.attack_preview(a, cfg, sample) for a in attacks}
