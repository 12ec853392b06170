"""The Influence page's live area, server side: Δ packed once per experiment for the browser, which recomputes
drop counts, histograms, the flagged count and (ground truth known) TPR / precision on every τ or k move; and
the points on either side of the cut, drawn once the user settles.

τ moves on a grid of ``step`` × scale. Each Δ is sent as the first grid position whose τ it falls below
(``first_below``), so ``Δ < τ_i`` ⇔ ``first_below ≤ i`` on the grid: the browser's counts are the engine's
(:func:`~deltainf.influence.delta.delta_flags`) at every τ the slider can take (up to a Δ equal to τ within
floating-point rounding).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

from .influence import CLEAN, POISON, DeltaView, symlog_ticks

STEP = 0.05       # τ's grid step, in units of the scale
MAX_POSITIONS = 254  # a uint8 per Δ: positions 0..n plus "never below" (n + 1)


@dataclass(frozen=True)
class TauGrid:
    """τ_i = anchor + (i − below) · step (units of the scale), i = 0..n: the anchor (the suggestion, or a typed
    τ) is position ``below``, exactly."""

    anchor: float
    below: int
    n: int
    step: float = STEP

    @property
    def lo(self) -> float:
        return self.value(0)

    def value(self, i: int) -> float:
        return self.anchor + (i - self.below) * self.step

    def index(self, tau_rel: float) -> int:
        return int(np.clip(round((tau_rel - self.anchor) / self.step) + self.below, 0, self.n))

    def holds(self, tau_rel: float, tol: float = 1e-9) -> bool:
        """Whether ``tau_rel`` is one of the grid's values."""
        return abs(self.value(self.index(tau_rel)) - tau_rel) <= tol * max(1.0, abs(tau_rel))

    @property
    def values(self) -> np.ndarray:
        return self.anchor + (np.arange(self.n + 1) - self.below) * self.step


def tau_grid(anchor: float, *others: float, reach: float = 2.0, room: float = 1.0) -> TauGrid:
    """A grid of ``STEP`` through ``anchor`` (units of the scale) covering ±``reach`` and every τ in ``others`` with
    ``room`` on both sides — at most ``MAX_POSITIONS`` steps; when that is too few, the side the anchor needs less
    of keeps what it needs and the other side gets the rest (the ``others`` may then fall off it)."""
    taus = [anchor] + [t for t in others if t is not None and np.isfinite(t)]
    below = int(np.ceil((anchor - min([-reach] + [t - room for t in taus])) / STEP - 1e-9))
    above = int(np.ceil((max([reach] + [t + room for t in taus]) - anchor) / STEP - 1e-9))
    if below + above > MAX_POSITIONS:
        half = MAX_POSITIONS // 2
        below = below if below <= half else max(half, MAX_POSITIONS - above)
        above = MAX_POSITIONS - below
    return TauGrid(float(anchor), below, below + above)


def first_below(rel: np.ndarray, grid: TauGrid) -> np.ndarray:
    """(N, T) uint8: for each Δ/scale, the first grid position i with Δ/scale < τ_i (n + 1: none)."""
    return np.searchsorted(grid.values, rel.T, side="right").astype(np.uint8)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, np.uint8).tobytes()).decode("ascii")


def live_payload(view: DeltaView, grid: TauGrid, version: str) -> dict:
    """What the browser needs, once per experiment and mode: Δ as grid positions and as histogram bins (uint8,
    base64, point-major), the ground truth where known, the copies' names and the axes."""
    bins = len(view.edges) - 1
    hist_bin = np.clip(np.searchsorted(view.edges, view.srel.T, side="right") - 1, 0, bins - 1)
    tv, tt = symlog_ticks(view.edges[0], view.edges[-1])
    known = view.is_poison is not None
    return {
        "version": version, "N": int(view.delta.shape[1]), "T": view.T, "scale": float(view.scale),
        "grid": {"lo": grid.lo, "step": grid.step, "n": grid.n},  # for the labels; the counts use "below"
        "below": _b64(first_below(view.rel, grid)), "bin": _b64(hist_bin),
        "truth": _b64(view.is_poison) if known else None,
        "edges": {"lo": float(view.edges[0]), "hi": float(view.edges[-1]), "bins": bins,
                  "ticks": [float(v) for v in tv], "labels": list(tt)},
        "names": list(view.names), "colours": {"clean": CLEAN, "poison": POISON},
        "groups": ["clean", "poisons"] if known else ["not flagged", "flagged"],
    }


def near_cut(view: DeltaView, counts: np.ndarray, k: int, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Given the drop counts at τ (:meth:`DeltaView.counts`), the flagged points nearest the cut (fewest drops,
    highest mean Δ first) and the unflagged nearest it (most drops, lowest mean Δ first): what a small change of
    τ or k would add or drop."""
    flagged = counts >= view.T - k
    mean = view.mean_rel
    inside, outside = np.flatnonzero(flagged), np.flatnonzero(~flagged)
    inside = inside[np.lexsort((-mean[inside], counts[inside]))][:n]
    outside = outside[np.lexsort((mean[outside], -counts[outside]))][:n]
    return inside, outside


__all__ = ["STEP", "TauGrid", "tau_grid", "first_below", "live_payload", "near_cut"]
