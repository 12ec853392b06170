"""The refined Δ-Influence keeps, of the collapsed points, those that differ from a typical image of the test
image's label the way the test image does."""
from __future__ import annotations

import numpy as np

from deltainf.config import Config
from deltainf.detectors import DETECTORS, DetectorInput


def test_keeps_the_collapsed_points_that_look_like_the_test_image():
    rng = np.random.default_rng(0)
    T, n = 10, 60
    labels = np.repeat([0, 1], 30)
    scores = rng.normal(0, 0.05, (T + 1, n))
    scores[1:] += 0.3                     # influence barely moves on the copies: Δ > 0 ...
    scores[1:, 25:38] -= 5.0              # ... except for points 25..37: Δ ≈ −4.7, far below τ = −1
    scores[1:, 38:40] -= 0.8              # and 38, 39: Δ ≈ −0.5, below 0 but above τ
    query = np.array([1.0, 1.0])          # the test image: a typical image of class 1 plus something (x)
    features = np.tile([0.0, 1.0], (n, 1)) + rng.normal(0, 0.05, (n, 2))  # a typical image
    features[25:30] = [-1.0, 0.0]         # collapsed points of class 0, unlike the test image
    features[30:35] = [-0.5, 1.0]         # collapsed clean points of class 1: they differ the other way
    features[35:40] = [1.0, 1.05]         # and five that differ from a typical image as the test image does
    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=features, query_features=query, query_label=1)
    det = entry(inputs, entry.settings_from(Config()))
    assert np.flatnonzero(det.flagged).tolist() == list(range(35, 40))  # 38, 39 too: τ is raised to 0
    plain = DETECTORS["delta_influence"](inputs)
    assert np.flatnonzero(plain.flagged).tolist() == list(range(25, 38))
    assert det.params["candidate_tau"] == 0.0 and det.params["tau"] == -1.0
    assert det.params["n_collapsed"] == 15 and det.params["n_dropped_as_unlike_the_query"] == 10
    loose = entry(inputs, entry.settings_from(Config(refined_quantile=0.0)))  # the least like it of class 1: a bar
    assert np.flatnonzero(loose.flagged).tolist() == list(range(25, 40))    # every collapsed point clears
