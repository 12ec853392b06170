"""The verdict as a picture: the test image's margin of its label y under the model investigated, a model retrained
without the suspects and one retrained without as many random images of y; and the share of each removed group
that the model retrained without it labels otherwise."""
from __future__ import annotations

import plotly.graph_objects as go

from .style import CLEAN, POISON, base_layout, figure

NEUTRAL = "#999999"


def verdict_figure(verdict: dict, label: str = "y") -> go.Figure:
    """Two panels of bars from a verdict's ``parts`` (:class:`~deltainf.verdict.Verdict` as a dict)."""
    p = verdict["parts"]
    n = p.get("n_suspects", 0)
    if not n:
        return figure([], base_layout("Nothing to put to the test: no training image of its label collapses", "", ""))
    names = ["the model investigated", f"without the {n} suspects", f"without {n} random images of {label}"]
    margins = [p["margin_before"], p["margin_without_suspects"], p["margin_without_control"]]
    shares = [p["relabelled_suspects"], p["relabelled_control"]]
    data = [
        {"type": "bar", "x": names, "y": margins, "marker": {"color": [NEUTRAL, POISON, CLEAN]}, "xaxis": "x",
         "yaxis": "y", "text": [f"{m:+.1f}" for m in margins], "textposition": "outside", "showlegend": False,
         "hovertemplate": "%{x}: margin %{y:+.2f}<extra></extra>", "cliponaxis": False},
        {"type": "bar", "x": names[1:], "y": shares, "marker": {"color": [POISON, CLEAN]}, "xaxis": "x2",
         "yaxis": "y2", "text": [f"{s:.0%}" for s in shares], "textposition": "outside", "showlegend": False,
         "hovertemplate": "%{x}: %{y:.0%} labelled otherwise<extra></extra>", "cliponaxis": False},
    ]
    headline = "Poisoned" if verdict["poisoned"] else "No evidence of poisoning"
    layout = base_layout(f"{headline}: evidence {verdict['score']:.1f} (threshold {verdict['threshold']:g})", "", "",
                         height=330, subtitle="Counterfactual: models retrained without the suspects, and without as "
                                              "many random images of its label")
    low, high = min(0.0, *margins), max(0.0, *margins)
    pad = 0.2 * (high - low or 1.0)
    layout.update(
        xaxis={"domain": [0, 0.58], "tickfont": {"size": 11}},
        yaxis={"title": {"text": f"test image's margin of {label}"}, "range": [low - pad, high + pad],
               "zeroline": True, "zerolinecolor": "#333", "gridcolor": "#eee"},
        xaxis2={"domain": [0.68, 1.0], "anchor": "y2", "tickfont": {"size": 11}},
        yaxis2={"title": {"text": "labelled otherwise"}, "range": [0, 1.15], "anchor": "x2", "tickformat": ".0%",
                "gridcolor": "#eee"})
    return figure(data, layout)
