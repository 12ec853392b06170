"""What the pages draw, built once per experiment in the server's runtime and shared by sessions; and τ/k,
kept across pages."""
from __future__ import annotations

from html import escape

import numpy as np
import streamlit as st

from deltainf import Config
from deltainf.figures import experiment as experiment_figures
from deltainf.figures import images
from deltainf.figures.influence import DeltaView
from deltainf.suspicion.suspects import SuspectSet, described

from .jobs import Instance
from .state import runtime, use_mode


def delta_view(instance: Instance, exp) -> DeltaView:
    """The Influence page's precomputed Δ view of this experiment (built once, shared by sessions)."""
    def make():
        inv = exp.investigation
        names = experiment_figures.query_captions(inv.queries(), exp.train_set.classes)[1:]  # the scores job cached them
        return DeltaView.build(inv.scores(), exp.truth, names, exp.train_set.y_train.numpy())

    return runtime().view(("delta", instance.content, exp.config.mode), make)


def detector_params(view: DeltaView, exp) -> tuple[float, int]:
    """The τ (raw) and k last chosen on the Influence page for this mode (label-only and full each keep their
    own; rescaled if the score scale changed), or the engine's suggestion from Δ alone while none was chosen —
    suggested again for every new Δ matrix."""
    ss = st.session_state
    mode = exp.config.mode
    use_mode(mode)
    seen = (view.scale, view.T, mode, exp.query.draw_seed, exp.query.label)
    if not ss.get("det_chosen") and ss.get("det_seen") != seen:
        ss.det_tau = ss.det_k = ss.det_anchor = None  # a suggestion for another experiment is not a choice
    ss.det_seen = seen
    if ss.det_tau is None or ss.det_k is None:
        tau, k, _ = exp.investigation.tau_k()
        ss.det_tau = float(tau) if ss.det_tau is None else ss.det_tau
        ss.det_k = int(k) if ss.det_k is None else ss.det_k
    elif ss.det_scale is not None and ss.det_scale != view.scale:
        ss.det_tau = ss.det_tau / ss.det_scale * view.scale
    ss.det_scale = view.scale
    ss.det_k = max(0, min(int(ss.det_k), view.T - 1))
    ss.det_for = exp.config  # whose Δ they were set on (the sidebar names them only for that source)
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
def attack_previews(attacks: tuple[str, ...], settings: tuple, seed: int, dataset: str
                    ) -> dict[str, tuple[list, list[str]]]:
    """Each attack's trigger drawn on a built-in digit (instant, offline) as it would be on ``dataset``, for
    choosing an attack; ``settings`` are (field, value) pairs of the configured trigger settings."""
    from deltainf.data import load_dataset

    digits = load_dataset("digits", None, seed=0)
    sample = digits.x_train[int((digits.y_train == 3).nonzero()[0, 0])]
    cfg = Config(**dict(settings), seed=seed)
    return {a: experiment_figures.attack_preview(a, cfg, sample, dataset) for a in attacks}


def training_thumb(view: DeltaView, x_train, i: int) -> str:
    """Training image ``i`` as a ~48-px data URI, made once per view (the review table and the strips share it)."""
    scale = images.thumb_scale(x_train.shape[-1], 48)
    return view.thumb(int(i), lambda: images.png_data_uri(images.upscale(x_train[int(i)], scale)))


def thumbnail_strip(exp, view: DeltaView, idx: np.ndarray, counts: np.ndarray, title: str) -> None:
    """A row of training images with their file (or index), label and drop count; coloured by the ground truth
    where it is known."""
    data = exp.train_set
    cells = []
    for i in idx:
        name = data.train_paths[i].rsplit("/", 1)[-1] if data.train_paths else f"#{i}"
        label = escape(data.classes[int(view.labels[i])])
        truth = "" if view.is_poison is None else ("<br>poison" if view.is_poison[i] else "<br>clean")
        colour = "" if not truth else f"border-color:{'#D55E00' if view.is_poison[i] else '#0072B2'};"
        cells.append(f"<figure style='margin:0;text-align:center;font-size:13px;line-height:1.2;max-width:84px'>"
                     f"<img src='{training_thumb(view, data.x_train, i)}' style='width:48px;height:48px;"
                     f"image-rendering:pixelated;border:3px solid #ccc;{colour}'/><figcaption title='{escape(name, quote=True)}'>"
                     f"{escape(name[:12])}<br>{label} · {int(counts[i])} drops{truth}</figcaption></figure>")
    body = "".join(cells) or "<span style='color:#555'>none</span>"
    st.html(f"<div style='font-weight:600;margin:4px 0 2px'>{title}</div>"
            f"<div style='display:flex;flex-wrap:wrap;gap:8px'>{body}</div>")


def flagged_table(exp, view: DeltaView, tau: float, k: int, counts: np.ndarray, flagged: np.ndarray | None = None,
                  by: str | None = None, marks: dict | None = None) -> None:
    """The suspect set — ``flagged`` by ``by`` (default: the τ/k rule's flags, ``counts``: the drop counts at τ),
    with the analyst's ``marks`` — as a sortable table, and as its CSV."""
    import pandas as pd

    cfg = exp.config
    if flagged is None:
        flagged = counts >= view.T - k
        by = described(f"τ/k rule, {cfg.mode} copies, seed {cfg.seed}", {"tau": tau, "k": k})
    data, idx = exp.train_set, np.flatnonzero(flagged)
    counts, mean = counts[idx], view.mean_rel[idx]
    table = pd.DataFrame({"index": idx, "file": [data.train_paths[i] for i in idx] if data.train_paths else None,
                          "label": [data.classes[int(view.labels[i])] for i in idx], "drops": counts,
                          "mean Δ / scale": mean})
    if data.train_paths is None:
        table = table.drop(columns="file")
    if view.is_poison is not None:
        table["poison (known here)"] = view.is_poison[idx]
    table = table.sort_values(["drops", "mean Δ / scale"], ascending=[False, True])
    with st.expander(f"The flagged set: {len(idx)} training points — {by} (table, CSV)"):
        st.dataframe(table, key="flagged_table", hide_index=True, width="stretch", height=260,
                     column_config={"mean Δ / scale": st.column_config.NumberColumn(format="%.3g")})
        suspects = SuspectSet(flagged, by, tau, dict(marks or {}))
        csv = suspects.csv(view.delta, view.scale, view.labels, data.classes, data.train_paths, view.is_poison)
        st.download_button("Download the flagged set (CSV)", csv, key="flagged_csv", on_click="ignore",
                           file_name=f"flagged_tau{tau:.4g}_k{k}_T{view.T}_{cfg.mode}_seed{cfg.seed}.csv",
                           mime="text/csv")
