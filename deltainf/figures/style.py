"""The figures' shared look: colours, fonts, axes and layout, as plain plotly specs (one validation pass
per figure, so a τ/k move redraws in milliseconds)."""
from __future__ import annotations

import plotly.graph_objects as go

#: A colour-blind-safe pair (Okabe–Ito vermillion and blue): poisons vs clean training points.
POISON = "#D55E00"
CLEAN = "#0072B2"
FONT = dict(family="Source Sans Pro, sans-serif", size=13)


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain specs: one validation pass (~3 ms) instead of plotly's slower helper methods."""
    return go.Figure({"data": data, "layout": layout})


def bar(x, y, name: str, colour, hover: str, opacity: float = 0.7, **extra) -> dict:
    return {"type": "bar", "x": x, "y": y, "name": name, "marker": {"color": colour}, "opacity": opacity,
            "hovertemplate": hover + "<extra></extra>", **extra}


def axis(title: str) -> dict:
    return {"title": {"text": title}, "showgrid": True, "gridcolor": "#eee", "zeroline": False, "linecolor": "#999"}


def base_layout(title: str, xtitle: str, ytitle: str, height: int = 320, subtitle: str | None = None,
            legend_inside: str | None = None, **extra) -> dict:
    """Shared look: left-aligned title (+ subtitle), light grid, legend on top or inside a corner."""
    t = {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}}
    if subtitle:
        t["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": "#555"}}
    legend = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0}
    if legend_inside:
        left = legend_inside == "left"
        legend = {"orientation": "v", "yanchor": "top", "y": 0.98, "xanchor": "left" if left else "right",
                  "x": 0.01 if left else 0.99, "bgcolor": "rgba(255,255,255,0.8)", "bordercolor": "#ccc",
                  "borderwidth": 1}
    return {"title": t, "height": height, "margin": {"l": 60, "r": 20, "t": 70 if subtitle else 48, "b": 50},
            "font": FONT, "plot_bgcolor": "white", "bargap": 0.02, "legend": legend,
            "xaxis": axis(xtitle), "yaxis": axis(ytitle), **extra}


def vline(x: float, dash: str = "solid") -> dict:
    return {"type": "line", "x0": x, "x1": x, "y0": 0, "y1": 1, "yref": "paper",
            "line": {"color": "black", "width": 2, "dash": dash}}
