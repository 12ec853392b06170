"""Activation Clustering (Chen et al., 2018) as the paper compares against it: IBM ART's ``ActivationDefence``
with its defaults.

Per class, the last hidden layer's activations of the training points carrying that label, reduced to
``actclust_dims`` (10) dimensions by PCA and split by 2-means; the smaller cluster of **every** class is
flagged (ART's ``cluster_analysis="smaller"``). It flags a large share of any data set (on the paper's
CIFAR-10 notebooks 20,564 of 50,000), most of it clean: the behaviour the paper's table reports. The variant
that flags a cluster only when the split is real is ``actclust_strict``.

The random choices (PCA's solver where randomised, k-means++'s seeds) draw from one ``RandomState`` seeded
with the experiment's seed, class after class, in ART's order: ART with ``np.random.seed(seed)`` flags the
same points (``tests/detectors/test_art_crosscheck.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import option
from . import Detection, DetectorInput, register


@dataclass(frozen=True)
class ActClustSettings:
    actclust_dims: int = option(10, "ActClust: PCA dimensions of each class's activations (ART's nb_dims)", low=1)


def smaller_clusters(emb: np.ndarray, labels: np.ndarray, seed: int, dims: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per class (in label order): PCA to ``dims``, 2-means, the smaller cluster flagged. Returns (flagged, score,
    per-class share of the smaller cluster); a point's score is its margin towards its class's smaller cluster,
    (d_large − d_small) / (d_large + d_small) ∈ [−1, 1]."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(seed)
    flagged, score, per_class = np.zeros(len(labels), bool), np.zeros(len(labels)), {}
    for c in (int(c) for c in np.unique(labels)):
        idx = np.flatnonzero(labels == c)
        x = emb[idx]
        if x.shape[1] > dims:  # ART reduces only activations wider than nb_dims
            x = PCA(n_components=dims, random_state=rng).fit_transform(x)
        km = KMeans(n_clusters=2, random_state=rng).fit(x)
        sizes = np.bincount(km.labels_, minlength=2)
        small = int(np.argmin(sizes))
        flagged[idx[km.labels_ == small]] = True
        d = np.linalg.norm(x[:, None, :] - km.cluster_centers_[None], axis=2)
        score[idx] = (d[:, 1 - small] - d[:, small]) / (d.sum(1) + 1e-12)
        per_class[c] = round(float(sizes[small] / len(idx)), 4)
    return flagged, score, per_class


@register("actclust", label="Activation Clustering", order=10, settings=ActClustSettings, features=True)
def actclust(inputs: DetectorInput, s: ActClustSettings) -> Detection:
    """Activation Clustering as in the paper (ART's defaults): per class, PCA to 10 dimensions and 2-means on the
    last-layer activations; the smaller cluster of every class is flagged."""
    flagged, score, per_class = smaller_clusters(inputs.features, inputs.labels, inputs.seed, s.actclust_dims)
    return Detection("actclust", flagged, score, {"dims": s.actclust_dims, "reduction": "PCA", "clusters": 2,
                                                  "analysis": "smaller cluster of every class",
                                                  "smaller_share": per_class})
