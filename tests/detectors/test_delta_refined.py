"""The refined Δ-Influence keeps, of the collapsed points, those that look like the test image."""
from __future__ import annotations

import numpy as np

from deltainf.config import Config
from deltainf.detectors import DETECTORS, DetectorInput


def test_keeps_the_collapsed_points_that_look_like_the_test_image():
    rng = np.random.default_rng(0)
    T, n = 10, 60
    labels = np.repeat([0, 1], 30)
    scores = rng.normal(0, 0.1, (T + 1, n))
    scores[1:, 25:40] -= 5.0  # points 25..39 collapse: 25..29 of class 0, 30..39 of class 1
    query = np.array([1.0, 0.0])
    features = np.tile([0.5, 1.0], (n, 1)) + rng.normal(0, 0.01, (n, 2))  # a typical image: similarity ≈ 0.45
    features[25:30] = [-1.0, 0.0]   # collapsed points of class 0: unlike the test image
    features[30:35] = [0.0, 1.0]    # collapsed clean points of class 1: less like it than typical (≈ 0)
    features[35:40] = [1.0, 0.05]   # and five that look like the test image (≈ 1): the poisons
    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=features, query_features=query, query_label=1)
    det = entry(inputs, entry.settings_from(Config()))
    assert np.flatnonzero(det.flagged).tolist() == list(range(35, 40))
    assert det.params["n_collapsed"] == 15 and det.params["n_dropped_as_unlike_the_query"] == 10
    loose = entry(inputs, entry.settings_from(Config(refined_quantile=0.0)))  # every point of class 1 is "like" it
    assert np.flatnonzero(loose.flagged).tolist() == list(range(30, 40))
