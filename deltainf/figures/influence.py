"""Δ per copy, drop counts with the T − k cut and every copy at a glance: the HTML report's and the Influence
page's plotly figures (the page's live area is :mod:`.live`). Figures are built from pre-binned counts, never from
raw per-point arrays."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import plotly.graph_objects as go

from ..evaluation.metrics import detection_metrics
from ..influence.delta import delta_flags, delta_matrix, drop_counts, score_scale
from .style import CLEAN, FONT, POISON, bar, base_layout, figure, vline


def symlog(x):
    """sign(x)·log10(1 + |x|): keeps 0 at 0, spreads ±1 and compresses ±1e4 (Δ/scale spans both)."""
    return np.sign(x) * np.log10(1.0 + np.abs(x))


def symlog_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick positions (in symlog units) and labels (in Δ/scale units) for the range [lo, hi]."""
    decades = range(0, 9) if hi - lo <= 6 else range(2, 9, 2)  # every decade, or 100, 10k, 1M on a wide range
    values = [0.0] + [s * 10.0 ** e for e in decades for s in (-1, 1)]
    values = sorted(v for v in values if lo - 1e-9 <= symlog(v) <= hi + 1e-9)
    return [float(symlog(v)) for v in values], [_short(v) for v in values]


def _short(v: float) -> str:
    a = abs(v)
    s = f"{a / 1e6:g}M" if a >= 1e6 else f"{a / 1e3:g}k" if a >= 1e3 else f"{a:g}"
    return ("−" if v < 0 else "") + s


@dataclass
class DeltaView:
    """Everything the Influence page draws, precomputed once per score matrix.

    ``rel`` is Δ in units of ``scale`` (the median |score| on the original query), so a τ slider
    over [−2, 2] means the same thing whatever the raw magnitude of the scores; ``srel`` is its
    symmetric log, because poisons' Δ can be 1e4 scales away while clean points sit within ±1.
    """

    delta: np.ndarray       # (T, N) raw Δ
    rel: np.ndarray         # (T, N) Δ / scale
    srel: np.ndarray        # (T, N) symlog(Δ / scale)
    scale: float
    is_poison: np.ndarray | None  # (N,) bool where ground truth is known (an experiment), else None
    edges: np.ndarray       # shared bin edges (symlog units) for the Δ histograms
    names: list[str]        # transform captions, T of them
    labels: np.ndarray      # training labels (N,)
    _thumbs: dict = field(default_factory=dict, repr=False)

    def thumb(self, i: int, make) -> str:
        """A training image's thumbnail (data URI), made once."""
        if i not in self._thumbs:
            self._thumbs[i] = make()
        return self._thumbs[i]

    @property
    def T(self) -> int:
        return self.delta.shape[0]

    @classmethod
    def build(cls, scores: np.ndarray, is_poison: np.ndarray | None, names: list[str], labels,
              bins: int = 80) -> "DeltaView":
        scale = score_scale(scores)
        delta = delta_matrix(scores)
        rel = delta / scale
        srel = symlog(rel)
        lo = min(float(srel.min()) if srel.size else 0.0, float(symlog(-2.0)))
        hi = max(float(srel.max()) if srel.size else 0.0, float(symlog(2.0)))
        truth = None if is_poison is None else np.asarray(is_poison, bool)
        return cls(delta, rel, srel, scale, truth, np.linspace(lo, hi, bins + 1), list(names), np.asarray(labels))

    @cached_property
    def mean_rel(self) -> np.ndarray:
        """Each point's mean Δ/scale over the T copies (how far its influence collapses on average)."""
        return self.rel.mean(axis=0)

    def counts(self, tau: float) -> np.ndarray:
        """#{t : Δ[t, i] < τ} (τ raw)."""
        return drop_counts(self.delta, tau)

    def flags(self, tau: float, k: int) -> np.ndarray:
        return delta_flags(self.delta, tau, k)

    def metrics(self, tau: float, k: int) -> dict:
        """The number flagged at τ/k, with TPR, precision and F1 where ground truth is known."""
        flagged = self.flags(tau, k)
        if self.is_poison is None:
            return {"n_flagged": int(flagged.sum())}
        return {**detection_metrics(flagged, self.is_poison), "n_poison": int(self.is_poison.sum())}

    def groups(self, flagged: np.ndarray | None = None) -> list[tuple[np.ndarray, str, str]]:
        """(mask, name, colour) of the point groups a histogram compares: poisons and clean points where ground
        truth is known; else the flagged and the rest (at τ/k); else all points."""
        if self.is_poison is not None:
            return [(~self.is_poison, "clean", CLEAN), (self.is_poison, "poisons", POISON)]
        if flagged is not None:
            return [(~flagged, "not flagged", CLEAN), (flagged, "flagged", POISON)]
        return [(np.ones(self.delta.shape[1], bool), "all points", CLEAN)]


def _group_hist(values: np.ndarray, groups, edges: np.ndarray, share: bool) -> list[np.ndarray]:
    """Per group, the share (%) of its points per bin, or (``share=False``) their number; values outside the
    edges go to the end bins."""
    v = np.clip(values, edges[0], edges[-1])
    out = []
    for mask, _, _ in groups:
        h = np.histogram(v[mask], edges)[0].astype(float)
        out.append(h * 100.0 / max(1, int(mask.sum())) if share else h)
    return out


def _y_axis(layout: dict, share: bool) -> None:
    """Shares of each group (ground truth known), or numbers of points on a log axis (a pile of a few dozen
    beside thousands)."""
    if share:
        layout["yaxis"]["title"]["text"] = "% of group"
    else:
        layout["yaxis"].update(type="log", title={"text": "training points (log)"})


def fmt_tau(tau_rel: float, tau_raw: float) -> str:
    return f"τ = {tau_rel:+.2f} × scale = {tau_raw:+.4g}"


def delta_histogram(view: DeltaView, t: int, tau: float, k: int | None = None) -> go.Figure:
    """Δ/scale for transform ``t`` (0-based row of Δ), symlog x: numbers of poisons and clean points (log axis)
    where ground truth is known, else of the points flagged at τ/k and the rest."""
    groups = view.groups(None if k is None else view.flags(tau, k))
    hists = _group_hist(view.srel[t], groups, view.edges, share=False)  # shares would hide a clean pile
    centres = (view.edges[:-1] + view.edges[1:]) / 2
    width = float(view.edges[1] - view.edges[0])
    custom = [_short(round(float(np.sign(c) * (10 ** abs(c) - 1)), 2)) for c in centres]
    hover = "Δ/scale ≈ %{customdata}<br>%{y:.0f} "
    data = [bar(centres, h, f"{name} ({int(mask.sum())})", colour, hover + name, width=width, customdata=custom)
            for (mask, name, colour), h in zip(groups, hists)]
    tau_rel = tau / view.scale
    tv, tt = symlog_ticks(view.edges[0], view.edges[-1])
    layout = base_layout(f"Δ on copy {view.names[t]}", "Δ / scale  (symmetric log axis; left of 0: influence dropped)",
                         "", subtitle=f"dashed: {fmt_tau(tau_rel, tau)}", legend_inside="right",
                         barmode="overlay",
                         shapes=[vline(float(np.clip(symlog(tau_rel), view.edges[0], view.edges[-1])), "dash")])
    layout["xaxis"].update(tickvals=tv, ticktext=tt, range=[float(view.edges[0]), float(view.edges[-1])])
    _y_axis(layout, share=False)
    return figure(data, layout)


def count_histogram(view: DeltaView, tau: float, k: int) -> go.Figure:
    """#{t : Δ < τ} per training point with the flag cut T − k drawn: numbers of poisons and clean points (log
    axis) where ground truth is known, else of the flagged and the rest."""
    T = view.T
    counts = view.counts(tau)
    groups = view.groups(view.flags(tau, k))
    hists = _group_hist(counts.astype(float), groups, np.arange(-0.5, T + 1.5), share=False)
    x = np.arange(T + 1)
    cut = T - k
    data = [bar(x, h, name, colour, "%{x} drops<br>%{y:.0f} " + name) for (_, name, colour), h in zip(groups, hists)]
    shade = {"type": "rect", "x0": cut - 0.5, "x1": T + 0.5, "y0": 0, "y1": 1, "yref": "paper", "fillcolor": "#999",
             "opacity": 0.18, "line": {"width": 0}, "layer": "below"}
    note = {"x": cut - 0.5, "y": 1.0, "yref": "paper", "text": f"flagged: ≥ {cut}", "showarrow": False,
            "xanchor": "right", "yanchor": "top", "font": {"size": 12}, "bgcolor": "rgba(255,255,255,0.8)"}
    layout = base_layout("Drops per training point: #{t : Δ < τ}", f"copies (of T = {T}) whose Δ < τ", "",
                         subtitle=f"{fmt_tau(tau / view.scale, tau)} · cut at T − k = {T} − {k} = {cut}",
                         legend_inside="left", barmode="overlay", shapes=[shade, vline(cut - 0.5)], annotations=[note])
    layout["xaxis"]["range"] = [-0.5, T + 0.5]
    _y_axis(layout, share=False)
    return figure(data, layout)


def flagged_order(view: DeltaView, flagged: np.ndarray, tau: float) -> np.ndarray:
    """Flagged indices, most collapsed first (more drops, then lower mean Δ)."""
    idx = np.flatnonzero(flagged)
    if len(idx) == 0:
        return idx
    counts = view.counts(tau)[idx]
    mean = view.mean_rel[idx]
    return idx[np.lexsort((mean, -counts))]


def small_multiples(view: DeltaView, ncols: int = 8, flagged: np.ndarray | None = None) -> go.Figure:
    """One small Δ/scale histogram per transform (poisons vs clean where known, else ``flagged`` vs the rest, or
    all points): influence collapse at a glance."""
    T = view.T
    share = view.is_poison is not None
    groups = view.groups(flagged)
    nrows = -(-T // ncols)
    edges = np.linspace(view.edges[0], view.edges[-1], 41)
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    reach = 0.7 * max(abs(edges[0]), abs(edges[-1]))
    m = 10.0 ** max(0, int(np.floor(np.log10(10 ** reach - 1)))) if reach > 0 else 1.0
    tv, tt = [float(symlog(-m)), 0.0, float(symlog(m))], [_short(-m), "0", _short(m)]
    gx, gy = 0.012, 0.11
    cw, ch = (1 - gx * (ncols - 1)) / ncols, (1 - gy * (nrows - 1)) / nrows
    data, annotations = [], []
    layout = {"barmode": "overlay", "height": max(260, 150 * nrows + 90), "font": FONT, "plot_bgcolor": "white",
              "margin": {"l": 20, "r": 20, "t": 80, "b": 30},
              "title": {"text": "Δ / scale on every copy (symmetric log axis; left of 0 = influence collapsed)",
                        "x": 0.01, "font": {"size": 15}},
              "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.03, "xanchor": "right", "x": 1.0}}
    for t in range(T):
        r, c = divmod(t, ncols)
        ax = "" if t == 0 else str(t + 1)
        x0, y1 = c * (cw + gx), 1 - r * (ch + gy)
        layout[f"xaxis{ax}"] = {"domain": [max(0.0, x0), min(1.0, x0 + cw)], "anchor": f"y{ax}", "showgrid": False,
                                "zeroline": True, "zerolinecolor": "#999", "range": [edges[0], edges[-1]],
                                "tickvals": tv, "ticktext": tt, "showticklabels": r == nrows - 1,
                                "tickfont": {"size": 9}}
        layout[f"yaxis{ax}"] = {"domain": [max(0.0, y1 - ch), min(1.0, y1)], "anchor": f"x{ax}",
                                "showticklabels": False, "showgrid": False}
        hover = "%{y:.1f} % of " if share else "%{y:.0f} "
        for (_, name, colour), values in zip(groups, _group_hist(view.srel[t], groups, edges, share)):
            data.append(bar(centres, values, name, colour, f"copy {view.names[t]}<br>{hover}{name}", width=width,
                            legendgroup=name, showlegend=t == 0, xaxis=f"x{ax}", yaxis=f"y{ax}"))
        if not share:
            layout[f"yaxis{ax}"]["type"] = "log"
        annotations.append({"text": "<br>".join(view.names[t].split(" · ", 1)), "x": x0 + cw / 2, "y": y1,
                            "xref": "paper", "yref": "paper", "showarrow": False, "yanchor": "bottom",
                            "font": {"size": 9}})
    layout["annotations"] = annotations
    return figure(data, layout)
