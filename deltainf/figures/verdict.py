"""The verdict as a picture: the test image's margin of its label y under the model investigated, a model retrained
without the suspects and one retrained without as many random images of y; the share of each removed group that the
model retrained without it labels otherwise; and, where measured, the share of images of other labels each group's
shared signal sends to y."""
from __future__ import annotations

import plotly.graph_objects as go

from .style import CLEAN, POISON, base_layout, figure

NEUTRAL = "#999999"


def verdict_figure(verdict: dict, label: str = "y") -> go.Figure:
    """Panels of bars from a verdict's ``parts`` (:class:`~deltainf.verdict.Verdict` as a dict): the test image's
    margin, the share relabelled and, where measured, the share of other images sent to ``label``."""
    p = verdict["parts"]
    n = p.get("n_suspects", 0)
    if not n:
        return figure([], base_layout("Nothing to put to the test: no training image of its label collapses", "", ""))
    groups = [f"without the {n}<br>suspects", f"without {n}<br>random ones"]
    panels = [(["the model<br>investigated"] + groups,
               [p["margin_before"], p["margin_without_suspects"], p["margin_without_control"]],
               [NEUTRAL, POISON, CLEAN], "{:+.1f}", f"the test image's margin of {label}"),
              (groups, [p["relabelled_suspects"], p["relabelled_control"]], [POISON, CLEAN], "{:.0%}",
               "the removed ones labelled otherwise")]
    if "sent_by_suspects" in p:
        panels.append((["the suspects'<br>signal", "the random<br>ones'"], [p["sent_by_suspects"], p["sent_by_control"]],
                       [POISON, CLEAN], "{:.0%}", f"other images sent to {label}"))
    widths = [0.4, 0.3, 0.3][:len(panels)] if len(panels) == 3 else [0.58, 0.42]
    gap, left, data, axes, notes = 0.08, 0.0, [], {}, []
    for i, (names, values, colours, fmt, heading) in enumerate(panels, start=1):
        right = min(1.0, left + widths[i - 1] - (gap if i < len(panels) else 0))
        suffix = "" if i == 1 else str(i)
        data.append({"type": "bar", "x": names, "y": values, "marker": {"color": colours}, "xaxis": f"x{suffix}",
                     "yaxis": f"y{suffix}", "text": [fmt.format(v) for v in values], "textposition": "outside",
                     "showlegend": False, "hovertemplate": f"%{{x}}: %{{y}} ({heading})<extra></extra>",
                     "cliponaxis": False})
        if i == 1:
            low, high = min(0.0, *values), max(0.0, *values)
            pad = 0.25 * (high - low or 1.0)
            y_axis = {"range": [low - pad, high + pad], "zeroline": True, "zerolinecolor": "#333"}
        else:
            y_axis = {"range": [0, 1.2], "tickformat": ".0%", "anchor": f"x{suffix}"}
        axes[f"xaxis{suffix}"] = {"domain": [left, right], "anchor": f"y{suffix}", "tickfont": {"size": 11}}
        axes[f"yaxis{suffix}"] = {**y_axis, "gridcolor": "#eee"}
        notes.append({"text": heading, "x": (left + right) / 2, "y": 1.0, "xref": "paper", "yref": "paper",
                      "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 12}})
        left += widths[i - 1]
    headline = "Poisoned" if verdict["poisoned"] else "No evidence of poisoning"
    layout = base_layout(f"{headline}: evidence {verdict['score']:.1f} (threshold {verdict['threshold']:g})", "", "",
                         height=340, subtitle="Counterfactual: models retrained without the suspects, and without as "
                                              "many random images of its label")
    layout["margin"] = {**layout["margin"], "t": 96}
    layout.update(annotations=notes, **axes)
    return figure(data, layout)
