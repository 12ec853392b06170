"""Session state and the server's runtime: the session's source — an experiment (a Config and its uploads) or
an investigation of the user's own folder and model (a CaseConfig and its uploads) — and the one
:class:`~ui.jobs.Runtime` of the server, shared by every session."""
from __future__ import annotations

import dataclasses
import functools

import streamlit as st

from deltainf import Config
from deltainf.config import CaseConfig
from deltainf.errors import DeltaInfError

from .jobs import Instance, Runtime, TrainJob
from .uploads import Upload

#: Config fields that do not change the trained model (so changing them never asks to train again).


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
        ss.det_anchor = None    # a typed τ the live τ grid passes through exactly (None: the suggestion's)
        ss.det_rev = 0          # bumped when τ/k change other than from the live area (it then takes them)
        ss.kind = "experiment"  # which source the pages show: "experiment" or "case"
        ss.case = None          # the CaseConfig of the user's own folder and model, once one was investigated
        ss.case_weights = None  # Upload with bytes (None: the model is trained on the folder)
        ss.case_query = None    # Upload with a uint8 (3, H, W) tensor


#: Controls whose value outlives the pages that draw them (Streamlit forgets a widget's value on a page that
#: does not draw it): the Unlearn and Compare pages' choices, the Influence page's toggles, the Experiment page's
#: start.
KEPT = ("unlearn_methods", "unlearn_source", "until_clean", "escalate", "unlearn_shown", "grid_methods",
        "grid_detectors", "show_multiples", "det_rule", "review_open", "review_sort", "start")


def keep_controls() -> None:
    """Carry the :data:`KEPT` controls' values over this run, whatever page it draws."""
    ss = st.session_state
    for key in KEPT:
        if key in ss:
            ss[key] = ss[key]


def use_mode(mode: str) -> None:
    """Make the session's τ/k (``det_*``) those of ``mode``: label-only, image-only and full each keep their own."""
    ss = st.session_state
    if ss.get("det_mode") not in (None, mode):
        ss.setdefault("det_by_mode", {})[ss.det_mode] = (ss.det_tau, ss.det_k, ss.det_chosen, ss.det_scale,
                                                         ss.get("det_anchor"))
        ss.det_tau, ss.det_k, ss.det_chosen, ss.det_scale, ss.det_anchor = ss.det_by_mode.get(
            mode, (None, None, False, None, None))
    ss.det_mode = mode


def config() -> Config | CaseConfig:
    """The options of the session's source."""
    ss = st.session_state
    return ss.case if ss.kind == "case" else ss.config


def set_config(cfg: Config | CaseConfig) -> None:
    """Change the session's source's options; another model forgets the picked or uploaded test image."""
    ss = st.session_state
    if isinstance(cfg, CaseConfig):
        ss.case = cfg
        return
    old = ss.config
    if train_fields(cfg) != train_fields(old):
        if cfg.test_index == old.test_index:
            cfg = cfg.replace(test_index=None)
        ss.query = None
    ss.config = cfg


def adopt_case(cfg: CaseConfig, weights: Upload | None, query: Upload) -> None:
    """Make an investigation of the user's own folder and model the session's source (once it loaded)."""
    ss = st.session_state
    ss.kind, ss.case, ss.case_weights, ss.case_query = "case", cfg, weights, query


def use_experiment() -> None:
    st.session_state.kind = "experiment"


def train_fields(cfg: Config | CaseConfig) -> dict:
    """The options that determine the trained model and what is read of it (:func:`training_options`); a change of
    any other (the query, Δ, the verdict, detection, unlearning) keeps the model and the uploads."""
    names = training_options(type(cfg))
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k in names}


@functools.cache
def training_options(kind: type) -> frozenset[str]:
    """The fields of ``kind`` (Config or CaseConfig) read by training: data, the attack and its settings, the model,
    the recipe and where it runs (a case: its folder, model, weights and test image, but not its known poisons)."""
    from deltainf.config import (AttackOptions, CaseOptions, DataOptions, ModelOptions, RecipeOptions, RunOptions,
                                 entry_sections)

    sections = [CaseOptions] if kind is CaseConfig else [DataOptions, AttackOptions, ModelOptions,
                                                         *(s for _, s in entry_sections(("attack",)))]
    names = {f.name for s in [*sections, RecipeOptions, RunOptions] for f in dataclasses.fields(s)}
    return frozenset(names - {"known_poisons"})


def uploads(cfg=None) -> tuple[Upload | None, Upload | None]:
    """(weights, test image) uploaded for ``cfg``'s kind of source (default: the session's)."""
    ss = st.session_state
    if isinstance(cfg if cfg is not None else config(), CaseConfig):
        return ss.get("case_weights"), ss.get("case_query")
    return ss.get("weights"), ss.get("query")


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


def experiment(cfg=None, weights: Upload | None = None, query: Upload | None = None) -> tuple[Instance, object]:
    """(Instance, source) for ``cfg`` (default: the session's) with the given uploads, else the session's: an
    Experiment, or a Case for a CaseConfig."""
    cfg = cfg or config()
    if weights is None and query is None:
        weights, query = uploads(cfg)
    return runtime().experiment(cfg, weights, query)


def train_key(cfg=None, weights: Upload | None = None, query: Upload | None = None) -> TrainJob:
    """The job that trains (or loads) the model of ``cfg``'s source and reads what the pages show of it."""
    cfg = cfg or config()
    if weights is None and query is None:
        weights, query = uploads(cfg)
    case_query = query.digest if isinstance(cfg, CaseConfig) and query else None  # a case's loading predicts it
    return TrainJob(repr(sorted(train_fields(cfg).items())), weights.digest if weights else None,
                    str(cfg.cache_path), case_query)


def option(name: str):
    """The Config field ``name``'s metadata: its help, label and allowed values (the registries' own)."""
    return _OPTIONS[name]


def option_labels() -> dict[str, str]:
    """Config field → the label the app shows for it (fields without one are left out)."""
    return {name: meta["label"] for name, meta in _OPTIONS.items() if meta.get("label")}


_OPTIONS = {f.name: f.metadata for kind in (CaseConfig, Config) for f in dataclasses.fields(kind)}
