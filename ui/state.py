"""Session state and the server's runtime: the session's experiment (a Config and the uploads), and the one
:class:`~ui.jobs.Runtime` of the server, shared by every session."""
from __future__ import annotations

import dataclasses

import streamlit as st

from deltainf import Config
from deltainf.errors import DeltaInfError

from .jobs import Instance, Runtime, TrainJob
from .uploads import Upload

#: Config fields that do not change the trained model (so changing them never asks to train again).
QUERY_FIELDS = ("test_index", "transforms", "mode", "transform_seed", "tau", "k", "damping", "ekfac_threshold",
                "detectors", "unlearn")


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


def experiment(cfg: Config | None = None) -> tuple[Instance, object]:
    """(Instance, Experiment) for ``cfg`` (default: the session's experiment) with the session's uploads."""
    weights, query = uploads()
    return runtime().experiment(cfg or config(), weights, query)


def train_key(cfg: Config | None = None) -> TrainJob:
    cfg = cfg or config()
    weights, _ = uploads()
    return TrainJob(repr(sorted(train_fields(cfg).items())), weights.digest if weights else None, str(cfg.cache_path))


def option(name: str):
    """The Config field ``name``'s metadata: its help, label and allowed values (the registries' own)."""
    return _OPTIONS[name]


_OPTIONS = {f.name: f.metadata for f in dataclasses.fields(Config)}
