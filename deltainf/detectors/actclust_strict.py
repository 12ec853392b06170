"""Activation Clustering, strict: Chen et al.'s method (2018) with their tests that a split is real.

Unlike ``actclust`` (the paper's comparison, IBM ART's defaults, which flags the smaller cluster of every
class), per class, the last hidden layer's activations of the training points carrying that label, reduced
with PCA (Chen et al. use ICA; whitening every component drowned the poison direction among noise
directions here), split by 2-means. The smaller cluster is flagged when the split is real: it holds
at most ``actclust_strict_max_fraction`` of the class, its silhouette is at least
``actclust_strict_min_silhouette``, and exclusionary reclassification (Chen et al.'s strongest test) sends
it elsewhere — k nearest neighbours among all OTHER training points' activations give at most
``actclust_strict_max_keep`` of it the class's own label (Chen et al. retrain without the cluster;
neighbours stand in for that). Silhouette alone does not separate here: clean digit classes split
into writing styles with silhouettes as high as the poisoned class's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import option
from . import Detection, DetectorInput, register


@dataclass(frozen=True)
class StrictActClustSettings:
    actclust_strict_dims: int = option(10, "ActClust strict: PCA dimensions of the activations", low=1)
    actclust_strict_max_fraction: float = option(0.35, "ActClust strict: the small cluster holds at most this share of "
                                                       "its class", kind="probability")
    actclust_strict_min_silhouette: float = option(0.10, "ActClust strict: the split's silhouette is at least this",
                                                   kind="finite")
    actclust_strict_max_keep: float = option(0.35, "ActClust strict: neighbours give at most this share of the "
                                                   "cluster its own label", kind="probability")
    actclust_strict_neighbours: int = option(10, "ActClust strict: neighbours of exclusionary reclassification", low=1)


def activation_clustering(emb: np.ndarray, labels: np.ndarray, seed: int, dims: int = 10, max_fraction: float = 0.35,
                          min_silhouette: float = 0.10, max_keep: float = 0.35,
                          neighbours: int = 10) -> tuple[np.ndarray, np.ndarray, dict]:
    """Chen et al.'s per-class 2-means split. Returns (flagged, score, per-class details).

    A class's smaller cluster is flagged when the split is real: it holds at most ``max_fraction``
    of the class, the silhouette is at least ``min_silhouette``, and exclusionary reclassification
    says it belongs elsewhere — a k-nearest-neighbour classifier on the activations of every
    OTHER training point labels at most ``max_keep`` of the cluster with the class's own label
    (Chen et al. retrain the network without the cluster; neighbours in activation space are the
    cheap stand-in). A point's score is ``(1 − keep) · silhouette`` of its class's split times its
    margin towards the smaller cluster, (d_large − d_small) / (d_large + d_small) ∈ [−1, 1].
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    n = len(labels)
    flagged, score = np.zeros(n, bool), np.zeros(n)
    per_class = {}
    for c in (int(c) for c in np.unique(labels)):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 4:
            continue
        x = emb[idx].astype(np.float64)
        k = max(1, min(dims, len(idx) - 1, x.shape[1]))
        z = PCA(n_components=k, random_state=seed).fit_transform(x)
        km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(z)
        sizes = np.bincount(km.labels_, minlength=2)
        small = int(np.argmin(sizes))
        frac = float(sizes[small] / len(idx))
        sil = float(silhouette_score(z, km.labels_)) if sizes.min() > 0 else 0.0
        members = idx[km.labels_ == small]
        rest = np.setdiff1d(np.arange(n), members)
        keep = 1.0
        if len(members) and len(rest) >= neighbours:
            knn = KNeighborsClassifier(neighbours).fit(emb[rest], labels[rest])
            keep = float((knn.predict(emb[members]) == c).mean())
        d = np.linalg.norm(z[:, None, :] - km.cluster_centers_[None], axis=2)
        margin = (d[:, 1 - small] - d[:, small]) / (d.sum(1) + 1e-12)
        real = frac <= max_fraction and sil >= min_silhouette and keep <= max_keep
        score[idx] = (1 - keep) * max(sil, 0.0) * margin
        if real:
            flagged[members] = True
        per_class[c] = {"small_fraction": round(frac, 4), "silhouette": round(sil, 4), "keep": round(keep, 4),
                        "flagged": bool(real)}
    return flagged, score, per_class


@register("actclust_strict", label="Activation Clustering, strict", order=13, settings=StrictActClustSettings,
          features=True)
def actclust_strict(inputs: DetectorInput, s: StrictActClustSettings) -> Detection:
    """Activation Clustering, strict: per class, 2-means on last-layer activations; flags a small cluster only when the
    split is real.

    The activations are reduced with PCA; the smaller cluster is flagged when the split is real (size,
    silhouette, and exclusionary reclassification by nearest neighbours)."""
    flagged, score, per_class = activation_clustering(
        inputs.features, inputs.labels, inputs.seed, s.actclust_strict_dims, s.actclust_strict_max_fraction,
        s.actclust_strict_min_silhouette, s.actclust_strict_max_keep, s.actclust_strict_neighbours)
    return Detection("actclust_strict", flagged, score, {
        "dims": s.actclust_strict_dims, "reduction": "PCA", "max_fraction": s.actclust_strict_max_fraction,
        "min_silhouette": s.actclust_strict_min_silhouette, "max_keep": s.actclust_strict_max_keep,
        "neighbours": s.actclust_strict_neighbours,
        "flagged_classes": [c for c, d in per_class.items() if d["flagged"]], "per_class": per_class})
