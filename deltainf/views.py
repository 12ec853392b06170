"""What the app's pages show, prepared from a pipeline's results: thumbnails, tables and plotly figures.

Pure data preparation (numpy, plotly, PIL): nothing here imports streamlit, so every builder can be
tested and timed on its own. Figures are built from pre-binned counts, never from raw per-point
arrays, so the τ/k controls redraw in a few milliseconds.
"""
from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from .detect import delta_matrix, detection_metrics, drop_counts, score_scale

#: A colour-blind-safe pair (Okabe–Ito vermillion and blue): poisons vs clean training points.
POISON = "#D55E00"
CLEAN = "#0072B2"
#: Diverging scale for Δ (purple = drop, orange = rise), readable with the common colour-vision deficiencies.
DELTA_SCALE = "PuOr"
FONT = dict(family="Source Sans Pro, sans-serif", size=13)


# ----------------------------------------------------------------------------- images
def to_uint8_hwc(image) -> np.ndarray:
    """One image (3, H, W) as uint8 or float in [0, 1] (numpy or torch) → uint8 (H, W, 3)."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.ascontiguousarray(a.transpose(1, 2, 0))


def upscale(image, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement (no smoothing, so a few-pixel trigger stays crisp) → uint8 (H·s, W·s, 3)."""
    a = to_uint8_hwc(image)
    return a.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else a


def thumb_scale(image_side: int, target: int = 96) -> int:
    """Integer factor that brings an image side close to ``target`` pixels."""
    return max(1, round(target / max(1, image_side)))


def thumbnails(images, target: int = 96) -> list[np.ndarray]:
    """Upscaled thumbnails for a batch (N, 3, H, W)."""
    if len(images) == 0:
        return []
    s = thumb_scale(images.shape[-1], target)
    return [upscale(im, s) for im in images]


def mosaic(images, ncols: int, target: int = 64, borders: list[str] | None = None, border: int = 3,
           gap: int = 4) -> np.ndarray:
    """Images (N, 3, H, W) tiled in a grid on white, each optionally framed in a hex colour."""
    n = len(images)
    s = thumb_scale(images.shape[-1], target)
    h, w = images.shape[-2] * s, images.shape[-1] * s
    cell_h, cell_w = h + 2 * border, w + 2 * border
    nrows = max(1, -(-n // ncols))
    ncols = max(1, min(ncols, n))
    out = np.full((nrows * (cell_h + gap) - gap, ncols * (cell_w + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncols)
        y, x = r * (cell_h + gap), c * (cell_w + gap)
        if borders is not None and borders[i]:
            out[y:y + cell_h, x:x + cell_w] = hex_rgb(borders[i])
        out[y + border:y + border + h, x + border:x + border + w] = upscale(images[i], s)
    return out


def hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def png_data_uri(hwc: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# ----------------------------------------------------------------------------- experiment
def poison_strip(pipe, n: int = 8) -> dict:
    """Poisoned training images beside clean training images of their true (victim) class.

    Returns the two uint8 batches and their captions; poisons come from the seeded poison set.
    """
    p = pipe.poisoned
    idx = p.poison_idx.numpy()[:n]
    y = p.data.y_train.numpy()
    clean = np.flatnonzero((y == p.victim) & ~pipe.is_poison)[:n]
    classes = p.data.classes
    return {
        "poisons": p.data.x_train[idx],
        "poison_captions": [f"#{i}: labelled {classes[p.target]}" for i in idx],
        "clean": p.data.x_train[clean],
        "clean_captions": [f"#{i}: {classes[p.victim]}" for i in clean],
    }


def experiment_facts(pipe) -> dict:
    """Counts and classes for the Experiment page (needs the poisoned data, not the model)."""
    p = pipe.poisoned
    return {"n_train": int(len(p.data.y_train)), "n_test": int(len(p.data.y_test)),
            "n_poison": int(len(p.poison_idx)), "victim": p.data.classes[p.victim],
            "target": p.data.classes[p.target], "image_shape": tuple(p.data.x_train.shape[1:]),
            "n_trigger_test": int(len(p.x_trigger_test))}


# ----------------------------------------------------------------------------- the test image
def class_probabilities(pipe, image, model=None) -> np.ndarray:
    """Softmax over the classes for one uint8 (3, H, W) image, with ``model`` (default: the trained one)."""
    import torch

    from .train import predict_logits

    logits = predict_logits(model if model is not None else pipe.model, image[None], pipe.device)
    return torch.softmax(logits.float(), dim=1)[0].numpy()


def probability_figure(probs: np.ndarray, classes: list[str], target: int | None = None,
                       title: str = "Class probabilities", compare: np.ndarray | None = None,
                       names: tuple[str, str] = ("before", "after")) -> go.Figure:
    """Bars of class probabilities (optionally a second set beside them); the target class is marked."""
    labels = [f"{c} (target)" if i == target else str(c) for i, c in enumerate(classes)]
    fig = go.Figure()
    if compare is None:
        colours = [POISON if i == int(np.argmax(probs)) else CLEAN for i in range(len(probs))]
        fig.add_bar(x=labels, y=probs, marker_color=colours, name="probability",
                    hovertemplate="class %{x}<br>p = %{y:.3f}<extra></extra>")
    else:
        fig.add_bar(x=labels, y=probs, marker_color=POISON, name=names[0],
                    hovertemplate=names[0] + ": class %{x}, p = %{y:.3f}<extra></extra>")
        fig.add_bar(x=labels, y=compare, marker_color=CLEAN, name=names[1],
                    hovertemplate=names[1] + ": class %{x}, p = %{y:.3f}<extra></extra>")
    _layout(fig, title, "class", "probability", height=300)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_xaxes(type="category")
    return fig


# ----------------------------------------------------------------------------- transformations
def query_captions(queries, classes: list[str]) -> list[str]:
    """"t: augmentation → label" for every row of a :class:`~deltainf.transforms.Queries`."""
    out = []
    for t, (name, label) in enumerate(zip(queries.names, queries.labels.tolist())):
        out.append(f"original · label {classes[label]}" if t == 0 else f"{t}: {name} → {classes[label]}")
    return out


# ----------------------------------------------------------------------------- influence
@dataclass
class DeltaView:
    """Everything the Influence page draws, precomputed once per score matrix.

    ``rel`` is Δ in units of ``scale`` (the median |score| on the original query), so a τ slider
    over [−2, 2] means the same thing whatever the raw magnitude of the scores.
    """

    delta: np.ndarray       # (T, N) raw Δ
    rel: np.ndarray         # (T, N) Δ / scale
    scale: float
    is_poison: np.ndarray   # (N,) bool
    edges: np.ndarray       # shared bin edges for Δ/scale histograms
    names: list[str]        # transform captions, T of them
    labels: np.ndarray      # training labels (N,)

    @property
    def T(self) -> int:
        return self.delta.shape[0]

    @classmethod
    def build(cls, scores: np.ndarray, is_poison: np.ndarray, names: list[str], labels, bins: int = 60) -> "DeltaView":
        scale = score_scale(scores)
        delta = delta_matrix(scores)
        rel = delta / scale
        lo, hi = np.percentile(rel, [0.5, 99.5]) if rel.size else (-1.0, 1.0)
        lo, hi = min(float(lo), -2.0), max(float(hi), 2.0)  # always cover the τ slider's range
        return cls(delta, rel, scale, np.asarray(is_poison, bool), np.linspace(lo, hi, bins + 1), list(names),
                   np.asarray(labels))

    def counts(self, tau: float) -> np.ndarray:
        """#{t : Δ[t, i] < τ} (τ raw)."""
        return drop_counts(self.delta, tau)

    def flags(self, tau: float, k: int) -> np.ndarray:
        return self.counts(tau) >= self.T - k

    def metrics(self, tau: float, k: int) -> dict:
        flagged = self.flags(tau, k)
        return {**detection_metrics(flagged, self.is_poison), "n_poison": int(self.is_poison.sum())}


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, height: int = 320) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)), height=height,
                      margin=dict(l=60, r=20, t=48, b=50), font=FONT, plot_bgcolor="white",
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
                      bargap=0.02)
    fig.update_xaxes(title_text=xtitle, showgrid=True, gridcolor="#eee", zeroline=False, linecolor="#999")
    fig.update_yaxes(title_text=ytitle, showgrid=True, gridcolor="#eee", zeroline=False, linecolor="#999")
    return fig


def _group_hist(values: np.ndarray, is_poison: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share (%) of poisons and of clean points per bin (values outside the edges go to the end bins)."""
    v = np.clip(values, edges[0], edges[-1])
    n_p, n_c = max(1, int(is_poison.sum())), max(1, int((~is_poison).sum()))
    hp = np.histogram(v[is_poison], edges)[0] * 100.0 / n_p
    hc = np.histogram(v[~is_poison], edges)[0] * 100.0 / n_c
    return hp, hc


def fmt_tau(tau_rel: float, tau_raw: float) -> str:
    return f"τ = {tau_rel:+.2f} × scale = {tau_raw:+.4g}"


def delta_histogram(view: DeltaView, t: int, tau: float) -> go.Figure:
    """Δ/scale for transform ``t`` (0-based row of Δ): poisons vs clean, as shares of each group."""
    hp, hc = _group_hist(view.rel[t], view.is_poison, view.edges)
    centres = (view.edges[:-1] + view.edges[1:]) / 2
    width = float(view.edges[1] - view.edges[0])
    fig = go.Figure()
    fig.add_bar(x=centres, y=hc, width=width, name=f"clean ({int((~view.is_poison).sum())})", marker_color=CLEAN,
                opacity=0.65, hovertemplate="Δ/scale ≈ %{x:.2f}<br>%{y:.1f} % of clean<extra></extra>")
    fig.add_bar(x=centres, y=hp, width=width, name=f"poisons ({int(view.is_poison.sum())})", marker_color=POISON,
                opacity=0.65, hovertemplate="Δ/scale ≈ %{x:.2f}<br>%{y:.1f} % of poisons<extra></extra>")
    tau_rel = tau / view.scale
    fig.add_vline(x=float(np.clip(tau_rel, view.edges[0], view.edges[-1])), line=dict(color="black", dash="dash", width=2))
    fig.update_layout(barmode="overlay")
    return _layout(fig, f"Δ for copy {view.names[t]}   ({fmt_tau(tau_rel, tau)}, dashed)",
                   "Δ / scale  (score of the copy − score of the original)", "% of group")


def count_histogram(view: DeltaView, tau: float, k: int) -> go.Figure:
    """#{t : Δ < τ} per training point, poisons vs clean, with the flag cut T − k drawn."""
    T = view.T
    counts = view.counts(tau)
    edges = np.arange(-0.5, T + 1.5)
    hp, hc = _group_hist(counts.astype(float), view.is_poison, edges)
    x = np.arange(T + 1)
    fig = go.Figure()
    cut = T - k
    fig.add_vrect(x0=cut - 0.5, x1=T + 0.5, fillcolor="#999", opacity=0.15, line_width=0,
                  annotation_text="flagged", annotation_position="top left")
    fig.add_bar(x=x, y=hc, name="clean", marker_color=CLEAN, opacity=0.65,
                hovertemplate="%{x} drops<br>%{y:.1f} % of clean<extra></extra>")
    fig.add_bar(x=x, y=hp, name="poisons", marker_color=POISON, opacity=0.65,
                hovertemplate="%{x} drops<br>%{y:.1f} % of poisons<extra></extra>")
    fig.add_vline(x=cut - 0.5, line=dict(color="black", width=2))
    fig.update_layout(barmode="overlay")
    _layout(fig, f"Drops per training point #{{t : Δ < τ}}   ({fmt_tau(tau / view.scale, tau)}; "
                 f"flag at ≥ T − k = {T} − {k} = {cut})", f"number of the T = {T} copies whose Δ < τ", "% of group")
    fig.update_xaxes(range=[-0.5, T + 0.5])
    return fig


def flagged_order(view: DeltaView, flagged: np.ndarray, tau: float) -> np.ndarray:
    """Flagged indices, most collapsed first (more drops, then lower mean Δ)."""
    idx = np.flatnonzero(flagged)
    if len(idx) == 0:
        return idx
    counts = view.counts(tau)[idx]
    mean = view.rel[:, idx].mean(axis=0)
    return idx[np.lexsort((mean, -counts))]


def flagged_rows_figure(view: DeltaView, images, idx: np.ndarray, classes: list[str]) -> go.Figure:
    """Thumbnails of flagged training points (left) aligned with their Δ rows as a heatmap (right)."""
    n = len(idx)
    h = images.shape[-2]
    s = max(1, round(28 / h))
    column = np.concatenate([upscale(images[i], s) for i in idx], axis=0) if n else np.zeros((h, h, 3), np.uint8)
    cell = h * s
    poison = view.is_poison[idx]
    ticks = [f"<span style='color:{POISON if p else CLEAN}'>#{i} · {classes[view.labels[i]]}"
             f"{' · poison' if p else ''}</span>" for i, p in zip(idx, poison)]
    y = (np.arange(n) + 0.5) * cell
    z = view.rel[:, idx].T
    lim = float(max(1e-9, np.percentile(np.abs(view.rel), 99)))
    fig = go.Figure()
    fig.add_trace(go.Image(source=png_data_uri(column), x0=0, dx=1, y0=0, dy=1, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=z, x=np.arange(1, view.T + 1), y=y, xaxis="x2", yaxis="y2", colorscale=DELTA_SCALE,
                             zmid=0, zmin=-lim, zmax=lim,
                             colorbar=dict(title=dict(text="Δ/scale", side="top"), orientation="h", thickness=10,
                                           len=0.4, x=0.06, xanchor="left", y=1.0, yanchor="bottom"),
                             customdata=np.array([[view.names[t]] * n for t in range(view.T)]).T,
                             hovertemplate="copy %{customdata}<br>Δ/scale = %{z:.2f}<extra></extra>"))
    yrange = [n * cell - 0.5, -0.5]
    fig.update_layout(
        height=max(200, min(1600, 30 * n + 130)), font=FONT, margin=dict(l=10, r=10, t=80, b=45),
        plot_bgcolor="white", title=dict(text="Flagged training points: thumbnail, then Δ over the T copies "
                                               "(orange label = true poison)", x=0.01, font=dict(size=15)),
        xaxis=dict(domain=[0.0, 0.045], range=[-0.5, cell - 0.5], visible=False),
        yaxis=dict(range=yrange, visible=False),
        xaxis2=dict(domain=[0.055, 0.8], anchor="y2", title_text="copy t (1..T)", showgrid=False),
        yaxis2=dict(range=yrange, anchor="x2", side="right", tickvals=y, ticktext=ticks, showgrid=False,
                    tickfont=dict(size=12)),
    )
    return fig


def small_multiples(view: DeltaView, ncols: int = 10) -> go.Figure:
    """One small Δ/scale histogram per transform (poisons vs clean): influence collapse at a glance."""
    T = view.T
    nrows = -(-T // ncols)
    edges = np.linspace(view.edges[0], view.edges[-1], 31)
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    fig = go.Figure()
    gx, gy = 0.012, 0.045
    cw, ch = (1 - gx * (ncols - 1)) / ncols, (1 - gy * (nrows - 1)) / nrows
    layout = {}
    annotations = []
    for t in range(T):
        r, c = divmod(t, ncols)
        ax = "" if t == 0 else str(t + 1)
        x0, y1 = c * (cw + gx), 1 - r * (ch + gy)
        layout[f"xaxis{ax}"] = dict(domain=[max(0.0, x0), min(1.0, x0 + cw)], anchor=f"y{ax}", showticklabels=r == nrows - 1,
                                     showgrid=False, zeroline=False, range=[edges[0], edges[-1]], tickfont=dict(size=9))
        layout[f"yaxis{ax}"] = dict(domain=[max(0.0, y1 - ch), min(1.0, y1)], anchor=f"x{ax}", showticklabels=False, showgrid=False)
        hp, hc = _group_hist(view.rel[t], view.is_poison, edges)
        for values, colour, name in ((hc, CLEAN, "clean"), (hp, POISON, "poisons")):
            fig.add_bar(x=centres, y=values, width=width, marker_color=colour, opacity=0.65, name=name,
                        legendgroup=name, showlegend=t == 0, xaxis=f"x{ax}", yaxis=f"y{ax}",
                        hovertemplate=f"copy {view.names[t]}<br>Δ/scale ≈ %{{x:.2f}}<br>%{{y:.1f}} % of {name}<extra></extra>")
        annotations.append(dict(text=view.names[t], x=x0 + cw / 2, y=y1, xref="paper", yref="paper", showarrow=False,
                                yanchor="bottom", font=dict(size=10)))
    fig.update_layout(**layout, annotations=annotations, barmode="overlay", height=max(260, 120 * nrows + 80),
                      font=FONT, margin=dict(l=20, r=20, t=70, b=30), plot_bgcolor="white",
                      title=dict(text="Δ / scale for every copy (x from "
                                      f"{edges[0]:.1f} to {edges[-1]:.1f}; poisons left of 0 = influence collapse)",
                                 x=0.01, font=dict(size=15)),
                      legend=dict(orientation="h", yanchor="bottom", y=1.04, xanchor="right", x=1.0))
    return fig


def flagged_csv(view: DeltaView, flagged: np.ndarray, tau: float) -> str:
    """CSV of the flagged training points: index, label, drop count, T, mean Δ, ground truth.

    Same columns as the CLI's ``--flagged-out``.
    """
    counts = view.counts(tau)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "label", "count", "T", "mean_delta", "is_poison"])
    for i in np.flatnonzero(flagged):
        w.writerow([int(i), int(view.labels[i]), int(counts[i]), view.T, f"{view.delta[:, i].mean():.6g}",
                    int(view.is_poison[i])])
    return buf.getvalue()


# ----------------------------------------------------------------------------- unlearning
def before_after_figure(before: dict, after: dict, method: str) -> go.Figure:
    """Clean accuracy and poison success of the poisoned model vs the unlearned one."""
    names = ["clean accuracy", "poison success"]
    b = [before["clean_acc"], before["poison_success"]]
    a = [after["clean_acc"], after["poison_success"]]
    fig = go.Figure()
    fig.add_bar(x=names, y=b, name="before (poisoned model)", marker_color=POISON, text=[f"{v:.2f}" for v in b],
                textposition="outside")
    fig.add_bar(x=names, y=a, name=f"after {method.upper()}", marker_color=CLEAN, text=[f"{v:.2f}" for v in a],
                textposition="outside")
    fig.update_layout(barmode="group")
    _layout(fig, "Before and after unlearning", "", "fraction of test images", height=340)
    fig.update_yaxes(range=[0, 1.15])
    return fig


# ----------------------------------------------------------------------------- compare
def detector_rows(pipe, names) -> list[dict]:
    """One row per detector: TPR, precision, number flagged and its parameters."""
    rows = []
    for name in names:
        r = pipe.detection_report(name)
        params = {k: v for k, v in r.items() if k not in ("tpr", "precision", "n_flagged")}
        rows.append({"detector": name, "TPR": float(r["tpr"]), "precision": float(r["precision"]),
                     "flagged": int(r["n_flagged"]), "parameters": ", ".join(f"{k}={v}" for k, v in params.items())})
    return rows


def compare_figure(rows: list[dict]) -> go.Figure:
    """Precision against TPR, one labelled marker per detector (top right is best)."""
    symbols = ["circle", "diamond", "square", "triangle-up", "x", "star", "cross", "pentagon"]
    colours = [POISON, CLEAN, "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
    fig = go.Figure()
    for i, r in enumerate(rows):
        fig.add_scatter(x=[r["TPR"]], y=[r["precision"]], mode="markers+text", name=r["detector"],
                        text=[r["detector"]], textposition="top center",
                        marker=dict(size=14, symbol=symbols[i % len(symbols)], color=colours[i % len(colours)]),
                        hovertemplate=f"{r['detector']}<br>TPR %{{x:.2f}}<br>precision %{{y:.2f}}<br>"
                                      f"{r['flagged']} flagged<extra></extra>")
    _layout(fig, "Precision vs TPR (top right is best)", "TPR (share of poisons found)",
            "precision (share of flagged that are poisons)", height=420)
    fig.update_xaxes(range=[-0.05, 1.08])
    fig.update_yaxes(range=[-0.05, 1.12])
    return fig


def doc_line(fn) -> str:
    """First line of a registry entry's docstring (its one-line description)."""
    return ((getattr(fn, "__doc__", None) or "").strip().splitlines() or [""])[0]
