"""How like the test image a training image is, and the groups that likeness makes: the look-alikes, the kin of a
suspected set, the two-means split."""
from __future__ import annotations

import numpy as np


def similarity(features: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``features`` to ``query``."""
    f, q = features.astype(np.float64), np.asarray(query, dtype=np.float64)
    return f @ q / (np.linalg.norm(f, axis=1) * np.linalg.norm(q) + 1e-12)


def likeness(features: np.ndarray, query: np.ndarray, labels: np.ndarray, label: int) -> np.ndarray:
    """How far each row of ``features`` differs from a typical point labelled ``label`` in the way ``query`` does:
    the cosine of (f − m) and (query − m), m the coordinate-wise median of the points with that label."""
    same = labels == label
    m = np.median(features[same], axis=0) if same.any() else 0.0
    return similarity(features - m, np.asarray(query) - m)


def likeness_split(like: np.ndarray, among: np.ndarray, seed: int,
                   confidence: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The points of ``among`` (bool mask) in the upper of two groups of ``like`` (:func:`likeness`) plus
    ``confidence`` (the model's probability of the test image's label, when given), split by 2-means in one
    dimension: those that differ from a typical image the way the test image does, and that the model is as sure of,
    apart from the rest. Returns (that group, the least value in it); an empty group and 1.0 when ``among`` holds
    fewer than two points or a single value."""
    if confidence is not None:  # the trigger makes the model sure of a poison, as of the test image
        like = like + confidence
    split = two_means(like[among], seed)
    if split is None:
        return np.zeros_like(among), 1.0
    return among & (like >= split[0]), split[0]


def two_means(values: np.ndarray, seed: int) -> tuple[float, float] | None:
    """``values`` (1-D) split in two by 2-means: (the upper group's least value, the share of the variance between
    the groups — 1 when they hold two values); None for fewer than two points or a single value."""
    from sklearn.cluster import KMeans

    v = np.asarray(values).reshape(-1, 1)
    if len(v) < 2 or np.ptp(v) == 0:
        return None
    km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(v)
    upper = int(np.argmax(km.cluster_centers_[:, 0]))
    return float(v[km.labels_ == upper, 0].min()), 1.0 - float(km.inertia_) / float(((v - v.mean()) ** 2).sum())


def label_quantile(cosine: np.ndarray, labels: np.ndarray, label: int, quantile: float) -> float:
    """The ``quantile`` quantile of a cosine over the points labelled ``label`` (−1, its least, when none is)."""
    same = labels == label
    return float(np.quantile(cosine[same], quantile)) if same.any() else -1.0


def kin(removed: np.ndarray, like: np.ndarray, labels: np.ndarray, label: int, quantile: float) -> np.ndarray:
    """The points not ``removed``, labelled ``label``, at least as like the test image (``like``, :func:`likeness`)
    as the ``quantile`` quantile of the removed ones like it (those at least as like it as the median point of
    ``label``): poisons a detector missed share the trigger with those it found."""
    of_label = labels == label
    removed_like = removed & of_label & (like >= label_quantile(like, labels, label, 0.5))
    if not removed_like.any():
        return np.zeros_like(removed)
    return ~removed & of_label & (like >= np.quantile(like[removed_like], quantile))


def lookalikes(features: np.ndarray, query: np.ndarray, labels: np.ndarray, label: int,
               quantile: float = 0.5) -> np.ndarray:
    """The training points labelled ``label`` at least as similar to ``query`` as the ``quantile`` quantile of all
    points with that label (those that look like the test image more than a typical image of its label)."""
    sim = similarity(features, query)
    return (labels == label) & (sim >= label_quantile(sim, labels, label, quantile))
