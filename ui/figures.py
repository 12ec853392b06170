"""What the pages draw, built once per experiment in the server's runtime and shared by sessions; and τ/k,
kept across pages."""
from __future__ import annotations

import numpy as np
import streamlit as st

from deltainf import Config
from deltainf.figures import experiment as experiment_figures
from deltainf.figures import images
from deltainf.figures.influence import DeltaView

from .jobs import Instance
from .state import runtime


def delta_view(instance: Instance, exp) -> DeltaView:
    """The Influence page's precomputed Δ view of this experiment (built once, shared by sessions)."""
    def make():
        inv = exp.investigation
        names = experiment_figures.query_captions(inv.queries(), exp.train_set.classes)[1:]  # the scores job cached them
        return DeltaView.build(inv.scores(), exp.truth, names, exp.train_set.y_train.numpy())

    return runtime().view(("delta", instance.content, exp.config.mode), make)


def detector_params(view: DeltaView, exp) -> tuple[float, int]:
    """The τ (raw) and k last chosen on the Influence page (rescaled if the score scale changed), or the
    engine's suggestion from Δ alone while none was chosen — suggested again for every new Δ matrix."""
    ss = st.session_state
    seen = (view.scale, view.T, exp.config.mode, exp.query.draw_seed, exp.query.label)
    if not ss.get("det_chosen") and ss.get("det_seen") != seen:
        ss.det_tau = ss.det_k = None  # a suggestion for another experiment is not a choice
    ss.det_seen = seen
    if ss.det_tau is None or ss.det_k is None:
        tau, k, _ = exp.investigation.tau_k()
        ss.det_tau = float(tau) if ss.det_tau is None else ss.det_tau
        ss.det_k = int(k) if ss.det_k is None else ss.det_k
    elif ss.det_scale is not None and ss.det_scale != view.scale:
        ss.det_tau = ss.det_tau / ss.det_scale * view.scale
    ss.det_scale = view.scale
    ss.det_k = max(0, min(int(ss.det_k), view.T - 1))
    return float(ss.det_tau), int(ss.det_k)


def suggestion(instance: Instance, exp) -> tuple[float, int]:
    """The engine's ground-truth-free (τ, k) for this experiment's Δ (cached)."""
    from deltainf.influence.suggest import resolve_tau_k

    return runtime().view(("suggest", instance.content, exp.config.mode),
                          lambda: resolve_tau_k(exp.investigation.scores(), None, None)[:2])


def experiment_facts(instance: Instance, exp) -> dict:
    return runtime().view(("facts", instance.content), lambda: experiment_figures.experiment_facts(exp))


def poison_strip(instance: Instance, exp) -> dict:
    def make():
        s = experiment_figures.poison_strip(exp)
        return {**s, "poisons": images.thumbnails(s["poisons"]), "clean": images.thumbnails(s["clean"])}

    return runtime().view(("strip", instance.content), make)


def trigger_picture(instance: Instance, exp) -> tuple[list, list[str]]:
    return runtime().view(("trigger", instance.content), lambda: experiment_figures.trigger_picture(exp))


@st.cache_resource(show_spinner=False)
def attack_previews(attacks: tuple[str, ...], settings: tuple, seed: int) -> dict[str, tuple[list, list[str]]]:
    """Each attack's trigger drawn on a built-in digit (instant, offline), for choosing an attack; ``settings``
    are (field, value) pairs of the configured trigger settings."""
    from deltainf.data import load_dataset

    digits = load_dataset("digits", None, seed=0)
    sample = digits.x_train[int((digits.y_train == 3).nonzero()[0, 0])]
    cfg = Config(**dict(settings), seed=seed)
    return {a: experiment_figures.attack_preview(a, cfg, sample) for a in attacks}


def query_likeness(instance: Instance, exp) -> np.ndarray:
    """Every training image's likeness to the test image (what the refined Δ-Influence thresholds; cached)."""
    from deltainf.models.features import likeness

    def make():
        inv = exp.investigation
        return likeness(inv.features(), inv.query_features(), inv.data.y_train.numpy(), inv.query.label)

    return runtime().view(("likeness", instance.content), make)
