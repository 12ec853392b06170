"""The suspect set: the training points accused, how they were flagged, the analyst's marks, and its one CSV schema
(the CLI's ``--flagged-out``, the app's downloads and the report write it the same way)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from ..influence.delta import drop_counts

COLUMNS = ["index", "path", "label", "drop_count", "T", "mean_delta", "mean_delta_scaled", "flagged_by", "review"]


def described(name: str, params: dict) -> str:
    """How a set was flagged, in one phrase: the detector or rule, with τ and k where it has them."""
    return f"{name} (τ = {params['tau']:.4g}, k = {params['k']})" if "tau" in params and "k" in params else name


@dataclass
class SuspectSet:
    """The training points accused: ``flagged`` (bool, N), by ``flagged_by``; drop counts are taken at ``tau``;
    ``marks``: the analyst's review, training index → "confirmed", "dismissed" or "added" (not flagged by the
    rule)."""

    flagged: np.ndarray
    flagged_by: str
    tau: float = 0.0
    marks: dict[int, str] = field(default_factory=dict)

    @property
    def members(self) -> np.ndarray:
        """The flagged points and those the analyst added (bool, N)."""
        out = np.asarray(self.flagged, bool).copy()
        out[[i for i, m in self.marks.items() if m == "added"]] = True
        return out

    @property
    def removed(self) -> np.ndarray:
        """What unlearning removes: the members but those the analyst dismissed (bool, N)."""
        out = self.members
        out[[i for i, m in self.marks.items() if m == "dismissed"]] = False
        return out

    def summary(self) -> dict:
        """How the set was flagged and how many images each mark holds (the JSON report's ``suspects``)."""
        members = self.members
        count = {m: sum(v == m and (m == "dismissed" or members[i]) for i, v in self.marks.items())
                 for m in ("confirmed", "dismissed", "added")}
        return {"flagged_by": self.flagged_by, "n_flagged": int(np.sum(self.flagged)),
                "n_removed": int(self.removed.sum()), **count}

    def csv(self, delta: np.ndarray, scale: float, labels: np.ndarray, classes: list[str] | None = None,
            paths: list[str] | None = None, known: np.ndarray | None = None) -> str:
        """One row per member, most collapsed first (drop count #{t : Δ < τ} down, then mean Δ up): ``COLUMNS`` —
        index, path (relative to the folder; empty without files), label (class name), drop_count, T, mean Δ raw and
        in units of ``scale`` (the median |influence| on the test image), flagged_by, review (the analyst's mark) —
        and, with ``known`` (evaluation: the poisons' mask), known_poison."""
        counts, mean = drop_counts(delta, self.tau), delta.mean(axis=0)
        idx = np.flatnonzero(self.members)
        idx = idx[np.lexsort((idx, mean[idx], -counts[idx]))]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS + ([] if known is None else ["known_poison"]))
        for i in idx:
            label = int(labels[i])
            w.writerow([int(i), paths[i] if paths is not None else "", classes[label] if classes else label,
                        int(counts[i]), delta.shape[0], f"{mean[i]:.6g}",
                        f"{mean[i] / scale:.6g}" if scale else "", self.flagged_by, self.marks.get(int(i), "")]
                       + ([] if known is None else [int(known[i])]))
        return buf.getvalue()
