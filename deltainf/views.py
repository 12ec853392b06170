"""What the app's pages show, prepared from a pipeline's results: thumbnails, tables and plotly figures.

Pure data preparation (numpy, plotly, PIL): nothing here imports streamlit, so every builder can be
tested and timed on its own. Figures are built from pre-binned counts, never from raw per-point
arrays, so the τ/k controls redraw in a few milliseconds.
"""
from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go

from .detect import delta_matrix, detection_metrics, drop_counts, score_scale

#: A colour-blind-safe pair (Okabe–Ito vermillion and blue): poisons vs clean training points.
POISON = "#D55E00"
CLEAN = "#0072B2"
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


def png_data_uri(hwc: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(hwc).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


# ----------------------------------------------------------------------------- experiment
def poison_strip(pipe, n: int = 8) -> dict:
    """Poisoned training images beside clean training images of the class they really show.

    Works for dirty-label attacks (BadNet: a victim-class image with the trigger, relabelled) and
    clean-label ones (the label is kept, the image perturbed) alike: the true class is read from the
    unpoisoned data. Returns the two uint8 batches, their captions and the true class.
    """
    p = pipe.poisoned
    idx = p.poison_idx.numpy()[:n]
    given = p.data.y_train.numpy()
    true = pipe.data.y_train.numpy()  # the labels before poisoning
    classes = p.data.classes
    shown = int(np.bincount(true[idx]).argmax()) if len(idx) else int(p.victim)
    clean = np.flatnonzero((given == shown) & (true == shown) & ~pipe.is_poison)[:n]
    return {
        "poisons": p.data.x_train[idx],
        "poison_captions": [f"#{i}: {classes[true[i]]}, labelled {classes[given[i]]}" if true[i] != given[i]
                            else f"#{i}: {classes[given[i]]} (perturbed)" for i in idx],
        "clean": p.data.x_train[clean],
        "clean_captions": [f"#{i}: {classes[shown]}" for i in clean],
        "true_class": classes[shown],
    }


ATTACK_BLURBS = {
    "badnet": "BadNet: a small patch in a corner; poisons are victim-class images with it, relabelled to the target.",
    "frequency": "Frequency trigger: a faint, smooth pattern over the whole image (low DCT frequencies), optimised "
                 "towards the target on a surrogate model; relabelled like BadNet.",
    "witches_brew": "Witches' Brew: clean-label. Target-class images get invisible ε-bounded perturbations (gradient "
                    "matching) so that one chosen test image of another class goes to the target.",
}


def attack_preview(attack: str, config, sample) -> tuple[list[np.ndarray], list[str]]:
    """A cheap picture of ``attack``'s trigger before anything is trained, drawn on one uint8 image
    ``sample`` (3, H, W) with the experiment's trigger settings: (enlarged images, captions)."""
    import torch

    x = torch.as_tensor(sample)
    h = x.shape[-1]
    if attack == "badnet":
        from .attacks.badnet import apply_trigger, trigger

        size = min(config.trigger_size or max(2, h // 8), h // 2)
        mask, pattern = trigger(tuple(x.shape), size, config.trigger_pattern, config.trigger_corner, config.seed)
        shown, caps = [apply_trigger(torch.zeros_like(x) + 128, mask, pattern), apply_trigger(x, mask, pattern)], \
            [f"the {size}×{size} {config.trigger_pattern} patch", "on an image"]
    elif attack == "frequency":
        from .attacks.frequency import AMPLITUDE, FREQ_RADIUS, OFFSET, add_pattern, random_pattern, visualise_pattern

        pattern = random_pattern(tuple(x.shape), config.seed, AMPLITUDE, FREQ_RADIUS)
        encoded = torch.from_numpy((np.round(pattern).astype(np.int32) + OFFSET).clip(0, 255).astype(np.uint8))
        shown, caps = [visualise_pattern(encoded), add_pattern(x, np.round(pattern))], \
            ["a smooth pattern (contrast stretched)", f"added at ±{AMPLITUDE} grey levels"]
    elif attack == "witches_brew":
        from .attacks.witches_brew import EPS

        eps = round(EPS * 255)
        noise = np.random.default_rng([config.seed, 5]).choice([-eps, eps], size=tuple(x.shape))
        delta = torch.from_numpy((128 + noise * 127 / eps).astype(np.uint8))
        shown = [delta, (x.to(torch.int16) + torch.from_numpy(noise).to(torch.int16)).clamp(0, 255).to(torch.uint8)]
        caps = [f"a ±{eps}/255 perturbation (stretched)", "added: hard to see"]
    else:
        return [], []
    s = thumb_scale(h)
    return [upscale(im, s) for im in [x] + shown], ["clean"] + caps


def trigger_picture(pipe) -> tuple[list[np.ndarray], list[str]]:
    """This experiment's actual trigger: (enlarged images, captions). BadNet: the patch and one poison;
    frequency: the learned pattern and one poison; Witches' Brew: the target test image, one poison's
    perturbation (stretched) and the poison."""
    import torch

    p = pipe.poisoned
    if len(p.poison_idx) == 0:
        return [], []
    i = int(p.poison_idx[0])
    clean, poison = pipe.data.x_train[i], p.data.x_train[i]
    classes = p.data.classes
    diff = poison.to(torch.int16) - clean.to(torch.int16)
    m = int(diff.abs().max()) or 1
    stretched = (128 + diff.float() * 127 / m).round().clamp(0, 255).to(torch.uint8)
    if p.trigger_mask.any() and not p.trigger_mask.all():  # a patch
        images = [torch.where(p.trigger_mask, p.trigger_pattern, torch.full_like(clean, 128)), clean, poison]
        caps = ["the trigger patch", f"#{i} clean ({classes[int(pipe.data.y_train[i])]})",
                f"#{i} poisoned, labelled {classes[int(p.data.y_train[i])]}"]
    elif p.trigger_mask.all():  # a whole-image additive pattern
        images = [stretched, clean, poison]
        caps = [f"the pattern (±{m} grey levels, stretched)", f"#{i} clean ({classes[int(pipe.data.y_train[i])]})",
                f"#{i} poisoned, labelled {classes[int(p.data.y_train[i])]}"]
    else:  # clean-label: the target test image and a perturbed poison
        images = [p.x_trigger_test[0], stretched, poison]
        caps = [f"test image #{int(p.trigger_test_idx[0])} ({classes[p.victim]}) to send to {classes[p.target]}",
                f"#{i}'s perturbation (±{m}/255, stretched)", f"#{i} poisoned, still labelled {classes[int(p.data.y_train[i])]}"]
    s = thumb_scale(clean.shape[-1])
    return [upscale(im, s) for im in images], caps


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
    if compare is None:
        colours = [POISON if i == int(np.argmax(probs)) else CLEAN for i in range(len(probs))]
        data = [_bar(labels, probs, "probability", colours, "class %{x}<br>p = %{y:.3f}", opacity=1.0)]
    else:
        data = [_bar(labels, probs, names[0], POISON, names[0] + ": class %{x}, p = %{y:.3f}", opacity=1.0),
                _bar(labels, compare, names[1], CLEAN, names[1] + ": class %{x}, p = %{y:.3f}", opacity=1.0)]
    layout = _layout(title, "class", "probability", height=300, barmode="group")
    layout["xaxis"]["type"] = "category"
    layout["yaxis"]["range"] = [0, 1.02]
    return _figure(data, layout)


# ----------------------------------------------------------------------------- transformations
def query_captions(queries, classes: list[str]) -> list[str]:
    """"t: augmentation → label" for every row of a :class:`~deltainf.transforms.Queries`."""
    out = []
    for t, (name, label) in enumerate(zip(queries.names, queries.labels.tolist())):
        out.append(f"original · label {classes[label]}" if t == 0 else f"{t}: {name} → {classes[label]}")
    return out


# ----------------------------------------------------------------------------- influence
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
    is_poison: np.ndarray   # (N,) bool
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
    def build(cls, scores: np.ndarray, is_poison: np.ndarray, names: list[str], labels, bins: int = 80) -> "DeltaView":
        scale = score_scale(scores)
        delta = delta_matrix(scores)
        rel = delta / scale
        srel = symlog(rel)
        lo = min(float(srel.min()) if srel.size else 0.0, float(symlog(-2.0)))
        hi = max(float(srel.max()) if srel.size else 0.0, float(symlog(2.0)))
        return cls(delta, rel, srel, scale, np.asarray(is_poison, bool), np.linspace(lo, hi, bins + 1), list(names),
                   np.asarray(labels))

    def counts(self, tau: float) -> np.ndarray:
        """#{t : Δ[t, i] < τ} (τ raw)."""
        return drop_counts(self.delta, tau)

    def flags(self, tau: float, k: int) -> np.ndarray:
        return self.counts(tau) >= self.T - k

    def metrics(self, tau: float, k: int) -> dict:
        flagged = self.flags(tau, k)
        return {**detection_metrics(flagged, self.is_poison), "n_poison": int(self.is_poison.sum())}


def _figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plain specs: one validation pass (~3 ms) instead of plotly's slower helper methods."""
    return go.Figure({"data": data, "layout": layout})


def _bar(x, y, name: str, colour, hover: str, opacity: float = 0.7, **extra) -> dict:
    return {"type": "bar", "x": x, "y": y, "name": name, "marker": {"color": colour}, "opacity": opacity,
            "hovertemplate": hover + "<extra></extra>", **extra}


def _axis(title: str) -> dict:
    return {"title": {"text": title}, "showgrid": True, "gridcolor": "#eee", "zeroline": False, "linecolor": "#999"}


def _layout(title: str, xtitle: str, ytitle: str, height: int = 320, subtitle: str | None = None,
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
            "xaxis": _axis(xtitle), "yaxis": _axis(ytitle), **extra}


def _vline(x: float, dash: str = "solid") -> dict:
    return {"type": "line", "x0": x, "x1": x, "y0": 0, "y1": 1, "yref": "paper",
            "line": {"color": "black", "width": 2, "dash": dash}}


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
    """Δ/scale for transform ``t`` (0-based row of Δ): poisons vs clean, as shares of each group, symlog x."""
    hp, hc = _group_hist(view.srel[t], view.is_poison, view.edges)
    centres = (view.edges[:-1] + view.edges[1:]) / 2
    width = float(view.edges[1] - view.edges[0])
    custom = [_short(round(float(np.sign(c) * (10 ** abs(c) - 1)), 2)) for c in centres]
    hover = "Δ/scale ≈ %{customdata}<br>%{y:.1f} % of "
    data = [_bar(centres, hc, f"clean ({int((~view.is_poison).sum())})", CLEAN, hover + "clean", width=width,
                 customdata=custom),
            _bar(centres, hp, f"poisons ({int(view.is_poison.sum())})", POISON, hover + "poisons", width=width,
                 customdata=custom)]
    tau_rel = tau / view.scale
    tv, tt = symlog_ticks(view.edges[0], view.edges[-1])
    layout = _layout(f"Δ on copy {view.names[t]}", "Δ / scale  (symmetric log axis; left of 0: influence dropped)",
                     "% of group", subtitle=f"dashed: {fmt_tau(tau_rel, tau)}", legend_inside="right",
                     barmode="overlay",
                     shapes=[_vline(float(np.clip(symlog(tau_rel), view.edges[0], view.edges[-1])), "dash")])
    layout["xaxis"].update(tickvals=tv, ticktext=tt, range=[float(view.edges[0]), float(view.edges[-1])])
    return _figure(data, layout)


def count_histogram(view: DeltaView, tau: float, k: int) -> go.Figure:
    """#{t : Δ < τ} per training point, poisons vs clean, with the flag cut T − k drawn."""
    T = view.T
    counts = view.counts(tau)
    hp, hc = _group_hist(counts.astype(float), view.is_poison, np.arange(-0.5, T + 1.5))
    x = np.arange(T + 1)
    cut = T - k
    data = [_bar(x, hc, "clean", CLEAN, "%{x} drops<br>%{y:.1f} % of clean"),
            _bar(x, hp, "poisons", POISON, "%{x} drops<br>%{y:.1f} % of poisons")]
    shade = {"type": "rect", "x0": cut - 0.5, "x1": T + 0.5, "y0": 0, "y1": 1, "yref": "paper", "fillcolor": "#999",
             "opacity": 0.18, "line": {"width": 0}, "layer": "below"}
    note = {"x": cut - 0.5, "y": 1.0, "yref": "paper", "text": f"flagged: ≥ {cut}", "showarrow": False,
            "xanchor": "right", "yanchor": "top", "font": {"size": 12}, "bgcolor": "rgba(255,255,255,0.8)"}
    layout = _layout("Drops per training point: #{t : Δ < τ}", f"copies (of T = {T}) whose Δ < τ", "% of group",
                     subtitle=f"{fmt_tau(tau / view.scale, tau)} · cut at T − k = {T} − {k} = {cut}",
                     legend_inside="left", barmode="overlay", shapes=[shade, _vline(cut - 0.5)], annotations=[note])
    layout["xaxis"]["range"] = [-0.5, T + 0.5]
    return _figure(data, layout)


def flagged_order(view: DeltaView, flagged: np.ndarray, tau: float) -> np.ndarray:
    """Flagged indices, most collapsed first (more drops, then lower mean Δ)."""
    idx = np.flatnonzero(flagged)
    if len(idx) == 0:
        return idx
    counts = view.counts(tau)[idx]
    mean = view.rel[:, idx].mean(axis=0)
    return idx[np.lexsort((mean, -counts))]


def flagged_rows_figure(view: DeltaView, images, idx: np.ndarray, classes: list[str]) -> go.Figure:
    """Each flagged training point as a row: its thumbnail, then its Δ over the T copies (heatmap)."""
    n = len(idx)
    s = max(1, round(32 / images.shape[-1]))
    ticks = [f"<span style='color:{POISON if view.is_poison[i] else CLEAN}'>#{i} · label {classes[view.labels[i]]}"
             f"{' · poison' if view.is_poison[i] else ' · clean'}</span>" for i in idx]
    lim = float(max(1e-9, np.abs(view.srel).max()))
    tv, tt = symlog_ticks(-lim, lim)
    heat = {"type": "heatmap", "z": view.srel[:, idx].T, "x": np.arange(1, view.T + 1), "y": np.arange(n),
            "colorscale": "RdBu", "zmid": 0, "zmin": -lim, "zmax": lim,
            "colorbar": {"title": {"text": "Δ/scale", "side": "top"}, "orientation": "h", "thickness": 10,
                         "len": 0.45, "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
                         "tickvals": tv, "ticktext": tt},
            "customdata": view.rel[:, idx].T,
            "hovertemplate": "copy t = %{x}<br>Δ/scale = %{customdata:.3g}<extra></extra>"}
    thumbs = [{"source": view.thumb(i, lambda: png_data_uri(upscale(images[i], s))), "xref": "paper", "yref": "y", "x": 0.0, "y": r - 0.5,
               "sizex": 0.06, "sizey": 1.0, "xanchor": "left", "yanchor": "top", "sizing": "contain",
               "layer": "above"} for r, i in enumerate(idx)]
    layout = {
        "images": thumbs, "height": max(220, 34 * n + 120), "font": FONT, "plot_bgcolor": "white",
        "margin": {"l": 10, "r": 10, "t": 80, "b": 45},
        "title": {"text": "Flagged training points: thumbnail, then Δ on each copy", "x": 0.01, "font": {"size": 15},
                  "subtitle": {"text": "red = influence dropped, blue = rose; orange label = true poison",
                               "font": {"size": 12, "color": "#555"}}},
        "xaxis": {"domain": [0.07, 0.78], "title": {"text": "copy t (1..T)"}, "showgrid": False},
        "yaxis": {"range": [n - 0.5, -0.5], "tickvals": list(range(n)), "ticktext": ticks, "side": "right",
                  "showgrid": False, "tickfont": {"size": 12}},
    }
    return _figure([heat], layout)


def small_multiples(view: DeltaView, ncols: int = 10) -> go.Figure:
    """One small Δ/scale histogram per transform (poisons vs clean): influence collapse at a glance."""
    T = view.T
    nrows = -(-T // ncols)
    edges = np.linspace(view.edges[0], view.edges[-1], 41)
    centres = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    reach = 0.7 * max(abs(edges[0]), abs(edges[-1]))
    m = 10.0 ** max(0, int(np.floor(np.log10(10 ** reach - 1)))) if reach > 0 else 1.0
    tv, tt = [float(symlog(-m)), 0.0, float(symlog(m))], [_short(-m), "0", _short(m)]
    gx, gy = 0.012, 0.06
    cw, ch = (1 - gx * (ncols - 1)) / ncols, (1 - gy * (nrows - 1)) / nrows
    data, annotations = [], []
    layout = {"barmode": "overlay", "height": max(260, 130 * nrows + 90), "font": FONT, "plot_bgcolor": "white",
              "margin": {"l": 20, "r": 20, "t": 80, "b": 30},
              "title": {"text": "Δ / scale on every copy (symmetric log axis; poisons left of 0 = collapse)",
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
        hp, hc = _group_hist(view.srel[t], view.is_poison, edges)
        for values, colour, name in ((hc, CLEAN, "clean"), (hp, POISON, "poisons")):
            data.append(_bar(centres, values, name, colour, f"copy {view.names[t]}<br>%{{y:.1f}} % of {name}",
                             width=width, legendgroup=name, showlegend=t == 0, xaxis=f"x{ax}", yaxis=f"y{ax}"))
        annotations.append({"text": view.names[t], "x": x0 + cw / 2, "y": y1, "xref": "paper", "yref": "paper",
                            "showarrow": False, "yanchor": "bottom", "font": {"size": 10}})
    layout["annotations"] = annotations
    return _figure(data, layout)


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


def doc_line(fn) -> str:
    """First line of a registry entry's docstring (its one-line description)."""
    return ((getattr(fn, "__doc__", None) or "").strip().splitlines() or [""])[0]
