"""The core without ground truth: an Investigation built from a model, its training data and one query —
no attack, no poison labels — flags, unlearns and re-checks exactly as the experiment that knows the truth."""
from __future__ import annotations

import numpy as np
import pytest

from deltainf.data import ImageData
from deltainf.investigation import Investigation, Query, TrainedModel


@pytest.fixture(scope="module")
def bare(demo):
    """The demo's model, training set (test split dropped) and query, handed over as plain parts."""
    p = demo.poisoned.data
    data = ImageData("mine", p.classes, p.x_train, p.y_train, p.x_train[:0], p.y_train[:0])
    query = Query(demo.query_image, demo.query_label, demo.query.draw_seed)
    return Investigation(TrainedModel(demo.model, demo.train_key, demo.recipe), data, query, demo.config, demo.store)


def test_same_flags_without_ground_truth(bare, demo):
    assert bare.evaluator is None
    for name in ("delta_influence", "delta_label_only", "ekfac", "specsig"):
        assert np.array_equal(bare.detect(name).flagged, demo.detect(name).flagged), name
    assert bare.tau_k() == demo.investigation.tau_k()


def test_freqdef_without_a_held_out_split_cross_fits(bare):
    assert bare.detect("freqdef").params["reference"] == "training set, 2-fold cross-fitted"


def test_unlearning_reports_only_what_needs_no_ground_truth(bare, demo):
    flagged = bare.detect("delta_influence").flagged
    _, m = bare.unlearning.unlearn("eu", flagged)
    # No test split: no clean accuracy; no ground truth: no poison success.
    assert set(m) == {"query_pred", "n_removed", "seconds", "cached"}
    assert m["query_pred"] != demo.query_label
    _, r = bare.unlearning.until_clean("eu", flagged, max_rounds=2)
    assert r["clean"] and all("poison_success" not in x and "hits" not in x for x in r["per_round"])
    _, known = demo.investigation.unlearning.unlearn("eu", flagged)
    assert known["poison_success"] <= 0.1 and known["query_pred"] == m["query_pred"]  # the experiment adds the truth
