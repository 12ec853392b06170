"""What the Unlearn and Compare pages show: before/after bars, the re-check loop round by round, each
detector's flags unlearned with each method, and detectors side by side."""
from __future__ import annotations

import plotly.graph_objects as go

from .style import CLEAN, POISON, axis, bar, base_layout, figure

# ----------------------------------------------------------------------------- unlearning
#: Okabe–Ito colours for the unlearning methods (the poisoned model's bars stay vermillion).
METHOD_COLOURS = {"eu": CLEAN, "cf": "#009E73", "ssd": "#E69F00", "scrub": "#CC79A7", "badt": "#56B4E9"}


def _method_colour(m: str, i: int = 0) -> str:
    return METHOD_COLOURS.get(m, ["#000000", "#F0E442"][i % 2])


#: (key, name, format) of what unlearning is judged by: with ground truth, clean accuracy and poison success
#: (as the metrics beside the chart show them); without, clean accuracy and the test image's P(y).
EXPERIMENT_MEASURES = (("clean_acc", "clean accuracy", ".3f"), ("poison_success", "poison success", ".2f"))
CASE_MEASURES = (("clean_acc", "clean accuracy", ".3f"), ("query_label_probability", "test image: P(y)", ".3f"))


def before_after_figure(before: dict, afters: dict[str, dict], measures=EXPERIMENT_MEASURES) -> go.Figure:
    """The measures of the model before unlearning, then after each unlearning method (measures that are None,
    such as clean accuracy without a test split, are left out)."""
    measures = [m for m in measures if before.get(m[0]) is not None]
    names = [name for _, name, _ in measures]

    def values(d):
        return [d[key] for key, _, _ in measures], [format(d[key], fmt) for key, _, fmt in measures]

    b, text = values(before)
    data = [bar(names, b, "before", POISON, "before: %{y:.3f}", opacity=1.0, text=text, textposition="outside")]
    for i, (m, a) in enumerate(afters.items()):
        v, text = values(a)
        data.append(bar(names, v, f"after {m.upper()}", _method_colour(m, i), f"after {m.upper()}: %{{y:.3f}}",
                        opacity=1.0, text=text, textposition="outside"))
    title = "Before and after unlearning" if len(afters) == 1 else "Before and after each unlearning method"
    layout = base_layout(title, "", "fraction", height=340, barmode="group")
    layout["yaxis"]["range"] = [0, 1.15]
    return figure(data, layout)


def rounds_figure(per_round: dict[str, list[dict]], before: dict | None = None) -> go.Figure:
    """The re-check loop, round by round per method: poison success where it is known, else the test image's
    P(y) (solid), how much more often than under EU the removed look-alikes still go to y (the re-check's
    second sign, dash-dot) and clean accuracy where there is a test split (dotted), with the number of
    training points removed so far on each marker; round 0 is the model before unlearning (``before``: its
    ``poison_success`` or ``query_label_probability``, and ``clean_acc``)."""
    before = before or {}
    positions = ["top right", "bottom right", "top left", "bottom left"]
    data = []
    for i, (m, rounds) in enumerate(per_round.items()):
        r = [x["round"] for x in rounds]
        colour = _method_colour(m, i)
        key, name, was = ("poison_success", "poison success", before.get("poison_success")) \
            if "poison_success" in rounds[0] else ("query_target_prob", "test image: P(y)",
                                                   before.get("query_label_probability"))
        x0, y0, t0 = ([0], [was], ["before" if i == 0 else ""]) if was is not None else ([], [], [])
        data.append({"type": "scatter", "x": x0 + r, "y": y0 + [x[key] for x in rounds], "name": f"{m.upper()} {name}",
                     "mode": "lines+markers+text", "text": t0 + [f"{x['n_removed']} removed" for x in rounds],
                     "textposition": positions[i % len(positions)], "textfont": {"size": 11, "color": colour},
                     "line": {"color": colour},
                     "hovertemplate": f"round %{{x}}<br>{name} %{{y:.3f}}<br>%{{text}}<extra></extra>"})
        if any(x.get("trigger_rate") is not None for x in rounds):  # the re-check's own sign, known without truth
            excess = [None if x.get("trigger_rate") is None else x["trigger_rate"] - x["reference_rate"]
                      for x in rounds]
            data.append({"type": "scatter", "x": r, "y": excess,
                         "name": f"{m.upper()} removed look-alikes → y, beyond EU (check)", "mode": "lines+markers",
                         "line": {"color": colour, "dash": "dashdot"}, "marker": {"symbol": "diamond"},
                         "hovertemplate": "round %{x}<br>removed look-alikes sent to y, beyond EU %{y:+.2f}"
                                          "<extra></extra>"})
        if "clean_acc" in rounds[0]:
            c0 = [before["clean_acc"]] if before.get("clean_acc") is not None else []
            data.append({"type": "scatter", "x": ([0] if c0 else []) + r, "y": c0 + [x["clean_acc"] for x in rounds],
                         "name": f"{m.upper()} clean accuracy", "mode": "lines+markers",
                         "line": {"color": colour, "dash": "dot"},
                         "hovertemplate": "round %{x}<br>clean accuracy %{y:.3f}<extra></extra>"})
    n = max((len(v) for v in per_round.values()), default=1)
    layout = base_layout("Detect → unlearn → re-check, round by round", "round (0: before unlearning)",
                         "fraction of test images", height=420,
                         subtitle="each round re-runs Δ-Influence on the unlearned model while the test image is not clean")
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0.0}
    layout["margin"]["b"] = 120
    layout["xaxis"].update(tickvals=list(range(0, n + 1)), range=[-0.3, n + 0.6])
    layout["yaxis"]["range"] = [-0.08, 1.12]
    return figure(data, layout)


def unlearning_grid_figure(rows: list[dict], before: dict | None = None) -> go.Figure:
    """Poison success (left) and clean accuracy (right) after each method, grouped by detector; dotted lines at
    the model's figures before unlearning (``before``: its ``poison_success`` and ``clean_acc``)."""
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["detector"], r["method"]): r for r in rows}
    data = []
    for i, m in enumerate(methods):
        for j, (metric, xaxis) in enumerate((("poison_success", "x"), ("clean_acc", "x2"))):
            y = [by[(d, m)][metric] if (d, m) in by else None for d in detectors]
            data.append(bar(detectors, y, m.upper(), _method_colour(m, i),
                             f"{m.upper()} · %{{x}}<br>{metric.replace('_', ' ')} %{{y:.3f}}", opacity=1.0,
                             xaxis=xaxis, yaxis="y" if j == 0 else "y2", legendgroup=m, showlegend=j == 0))
    layout = base_layout("After unlearning each detector's flags", "", "poison success (lower is better)", height=420,
                     barmode="group", subtitle="left: poison success · right: clean accuracy")
    layout["xaxis"].update(domain=[0.0, 0.47], tickangle=-30)
    layout["xaxis2"] = {**axis(""), "domain": [0.53, 1.0], "tickangle": -30, "anchor": "y2"}
    layout["yaxis"]["range"] = [0, 1.05]
    layout["yaxis2"] = {**axis("clean accuracy (higher is better)"), "range": [0, 1.05], "anchor": "x2"}
    layout["bargap"] = 0.2
    if before:
        layout["shapes"] = [{"type": "line", "xref": f"{x} domain", "x0": 0, "x1": 1, "yref": y, "y0": before[m],
                             "y1": before[m], "line": {"color": "black", "width": 1.5, "dash": "dot"}}
                            for m, x, y in (("poison_success", "x", "y"), ("clean_acc", "x2", "y2"))]
        layout["annotations"] = [{"xref": f"{x} domain", "x": 1, "yref": y, "y": before[m], "text": "before",
                                  "showarrow": False, "xanchor": "right", "yanchor": "bottom", "font": {"size": 12}}
                                 for m, x, y in (("poison_success", "x", "y"), ("clean_acc", "x2", "y2"))]
    return figure(data, layout)


#: One marker shape per series (never two alike) in Okabe–Ito colours: shape and colour both tell detectors apart.
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star", "cross", "pentagon", "triangle-down",
           "hexagon", "hourglass", "star-square", "bowtie", "triangle-left")
OKABE_ITO = (POISON, CLEAN, "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def compare_figure(rows: list[dict]) -> go.Figure:
    """Precision against TPR, one marker per detector named in the legend beside the plot (labels on the points
    overlap where detectors agree; top right is best)."""
    data = [{"type": "scatter", "x": [r["TPR"]], "y": [r["precision"]], "mode": "markers", "name": r["detector"],
             "marker": {"size": 14, "symbol": SYMBOLS[i % len(SYMBOLS)], "color": OKABE_ITO[i % len(OKABE_ITO)],
                        "line": {"width": 1, "color": "white"}},
             "hovertemplate": f"{r['detector']}<br>TPR %{{x:.2f}}<br>precision %{{y:.2f}}<br>"
                              f"{r['flagged']} flagged<extra></extra>"} for i, r in enumerate(rows)]
    layout = base_layout("Precision vs TPR (top right is best)", "TPR (share of poisons found)",
                         "precision (share of flagged that are poisons)", height=420)
    layout["legend"] = {"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.02}
    layout["margin"]["r"] = 170
    layout["xaxis"]["range"] = [-0.05, 1.05]
    layout["yaxis"]["range"] = [-0.05, 1.05]
    return figure(data, layout)
