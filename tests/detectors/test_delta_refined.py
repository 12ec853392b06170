"""The refined Δ-Influence keeps, of the collapsed points, those whose label a model trained without them does not
learn; when that check cannot decide (it learns them all: clean-label poisons; or it relabels them to scattered
classes: a weak model), the group of them that differs from a typical image of the test image's label the way the
test image does (the likeness split). When a model retrained without the group kept still gives the test image its
label, the τ/k rule's flags of that label are added."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from deltainf.config import Config
from deltainf.detectors import DETECTORS, DetectorInput, explained


def steps_of(det, classes):
    """What --explain, the report and the Influence page tell of a Δ refined detection, step by step."""
    return explained("delta_refined", det, classes)


def said(det, classes) -> str:
    return "\n".join(f"{s['step']} {s['count']} {s['what']}" for s in steps_of(det, classes))


def step(det, classes, name) -> dict:
    return next(s for s in steps_of(det, classes) if s["step"] == name)


def _collapse(n=60, T=10, seed=0):
    """Scores where points 25..37 collapse far below τ = −1 and 38, 39 just below 0."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 0.05, (T + 1, n))
    scores[1:] += 0.3
    scores[1:, 25:38] -= 5.0
    scores[1:, 38:40] -= 0.8
    return scores


def test_keeps_the_candidates_a_model_without_them_relabels():
    """Class 1 (points 30..59) is y; 25..29 are of class 0 and 35..39 are poisons (another class's images
    labelled 1). A model trained without the suspects sends the poisons to 0 and, while more than 3 clean images of
    class 1 are set aside, the ones beyond 3 too (it learns 1 worse): the check gives those back round by round."""
    labels = np.repeat([0, 1], 30)
    poisons = np.zeros(60, bool)
    poisons[35:40] = True
    calls = []

    def predict_without(removed):
        calls.append(int(removed.sum()))
        predicted = labels.copy()
        predicted[poisons] = 0
        clean_of_1 = np.flatnonzero(removed & ~poisons & (labels == 1))
        predicted[clean_of_1[3:]] = 0
        return predicted

    features = np.column_stack([np.zeros(60), 1 + 0.01 * np.resize([-1, 1], 60)])  # typical images
    features[30:35] = [-1.0, 1.0]  # clean candidates of class 1, unlike the test image
    features[35:40] = [1.0, 1.0]   # the poisons look like the test image, and nothing else does: no kin
    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": _collapse()}, tau=-1.0, k=0,
                           features=features, query_features=np.array([1.0, 1.0]), query_label=1,
                           predict_without=predict_without)
    det = entry(inputs, entry.settings_from(Config()))
    assert np.array_equal(det.flagged, poisons)
    assert calls == [15, 7, 5] and det.params["suspects_per_round"] == [7, 5, 5]  # 15 candidates, then fewer
    assert det.params["n_kin"] == 0
    assert det.params["by"] == "relabelled without them" and det.params["sent_to"] == {0: 5}
    once = entry(inputs, entry.settings_from(Config(refined_rounds=1)))
    assert once.flagged.sum() == 7  # one model: two clean images of class 1 still suspected
    # P(y) of the test image under a model retrained without them: 0.3 frees it (a weak model may keep y on top)
    cured = entry(replace(inputs, query_without=lambda removed: 0.3), entry.settings_from(Config()))
    assert np.array_equal(cured.flagged, poisons) and cured.params["p_without_kept"] == 0.3
    alive = entry(replace(inputs, query_without=lambda removed: 0.5 if removed.sum() <= 7 else 0.1),
                  entry.settings_from(Config()))
    assert np.flatnonzero(alive.flagged).tolist() == list(range(30, 40))  # still 1 without them: + τ/k's flags of 1
    assert alive.params["widened_from"] == 5 and alive.params["by"].startswith("with the τ/k rule's flags of y (rel")
    assert alive.params["p_without_widened"] == 0.1 and "trace" not in alive.params
    stuck = entry(replace(inputs, query_without=lambda removed: 0.9), entry.settings_from(Config()))
    assert np.array_equal(stuck.flagged, poisons)  # the τ/k rule's flags do not free it either: they add nothing
    assert "widened_from" not in stuck.params and stuck.params["p_without_widened"] == 0.9


def test_when_later_rounds_give_back_poisons_the_first_rounds_group_is_tried():
    """Points 33..39 are poisons labelled 1. The first model, trained without all 15 candidates, relabels 30..39;
    the second, with 10 set aside, relabels only 35..39 (the poisons given back keep the backdoor alive for 33, 34),
    and the last round keeps those five. A model without them still gives the test image 1; without the first
    round's ten it does not: that group is kept, with its trace."""
    labels = np.repeat([0, 1], 30)
    poisons = np.zeros(60, bool)
    poisons[33:40] = True

    def predict_without(removed):
        predicted = labels.copy()
        predicted[30 if removed.sum() > 10 else 35:40] = 0
        return predicted

    def query_without(removed):
        return 0.05 if removed[poisons].all() else 0.95

    features = np.column_stack([np.zeros(60), 1 + 0.01 * np.resize([-1, 1], 60)])
    features[30:40] = [1.0, 1.0]
    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": _collapse()}, tau=-1.0, k=0,
                           features=features, query_features=np.array([1.0, 1.0]), query_label=1,
                           predict_without=predict_without, query_without=query_without)
    det = entry(inputs, entry.settings_from(Config()))
    assert det.params["suspects_per_round"] == [10, 5, 5]
    assert np.flatnonzero(det.flagged).tolist() == list(range(30, 40))
    assert det.params["by"].startswith("relabelled without them (the first round's")
    assert det.params["trace"] == "relabelled" and det.params["p_without_kept"] == 0.05
    assert det.params["kept_round"] == 1
    stubborn = entry(replace(inputs, query_without=lambda removed: 0.95), entry.settings_from(Config()))
    assert "trace" not in stubborn.params and "widened_from" not in stubborn.params  # nor do τ/k's flags: not added
    told = said(det, ["zero", "one"])  # what --explain, the report and the Influence page tell of it
    assert "labels 10 of them otherwise (10 to zero); still suspected per round: 10 → 5 → 5" in told
    assert "(the first round's group: the later rounds gave back poisons the test image needs)" in told


def test_falls_back_to_likeness_when_the_candidates_keep_their_labels():
    rng = np.random.default_rng(0)
    n = 60
    labels = np.repeat([0, 1], 30)
    scores = _collapse(n)  # Δ ≈ −4.7 for 25..37, far below τ = −1; ≈ −0.5 for 38, 39: below 0 but above τ
    rng.normal(0, 0.05, (11, n))  # (the draw the scores took: the features below stay as they were)
    query = np.array([1.0, 1.0])          # the test image: a typical image of class 1 plus something (x)
    features = np.tile([0.0, 1.0], (n, 1)) + rng.normal(0, 0.05, (n, 2))  # a typical image
    features[25:30] = [-1.0, 0.0]         # collapsed points of class 0, unlike the test image
    features[30:35] = [-0.5, 1.0]         # collapsed clean points of class 1: they differ the other way
    features[35:40] = [1.0, 1.05]         # and five that differ from a typical image as the test image does
    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=features, query_features=query, query_label=1,
                           predict_without=lambda removed: labels)  # clean-label: every label is learnt
    det = entry(inputs, entry.settings_from(Config()))
    assert np.flatnonzero(det.flagged).tolist() == list(range(35, 40))  # 38, 39 too: τ is raised to 0
    plain = DETECTORS["delta_influence"](inputs)
    assert np.flatnonzero(plain.flagged).tolist() == list(range(25, 38))
    assert det.params["candidate_tau"] == 0.0 and det.params["tau"] == -1.0
    assert det.params["n_candidates"] == 15 and det.params["n_dropped_as_unlike_the_query"] == 10
    assert det.params["by"] == "likeness split (the candidates keep their labels without them)"
    assert det.params["suspects_per_round"] == [0] and 0.0 < det.params["likeness_cut"] <= 1.0


def test_splits_by_likeness_when_the_relabelled_candidates_do_not_agree():
    """A model too weak for the check relabels candidates to scattered classes: the likeness split decides, and says
    why — unless a model retrained without its upper group still gives the test image y, when the τ/k rule's flags of
    y are added; when the candidates' likeness has nothing to split, the τ/k rule's flags stand."""
    labels = np.repeat([0, 1, 2, 3], 15)
    labels[25:40] = 1  # the collapsed points 25..37 (and 38, 39 just below 0) are all labelled 1, the test image's
    features = np.tile([0.0, 1.0], (60, 1))
    features[25:33] = [-0.5, 1.0]  # collapsed clean images of 1: they differ from a typical one the other way
    features[33:40] = [1.0, 1.05]  # seven that differ as the test image does
    features[38] = [-0.5, 1.0]     # but 38 (a candidate only with τ raised to 0, not a τ/k flag) not

    def scattered(removed):
        predicted = labels.copy()
        idx = np.flatnonzero(removed)
        predicted[idx] = np.resize([0, 2, 3], len(idx))  # each class gets a third: agreement 1/3
        return predicted

    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": _collapse()}, tau=-1.0, k=0,
                           features=features, query_features=np.array([1.0, 1.0]), query_label=1,
                           predict_without=scattered)
    det = entry(inputs, entry.settings_from(Config()))
    assert np.flatnonzero(det.flagged).tolist() == [33, 34, 35, 36, 37, 39]
    assert det.params["by"] == "likeness split (the relabelled ones are sent to scattered classes)"
    assert det.params["agreement"] < 0.4 and det.params["n_dropped_as_unlike_the_query"] == 9
    asked = []
    fixed = entry(replace(inputs, query_without=lambda removed: asked.append(removed) or 0.2), entry.settings_from(
        Config()))  # a model retrained without the upper group gives the test image 1 at 0.2: the split stands
    assert np.array_equal(fixed.flagged, det.flagged) and fixed.params["p_without_kept"] == 0.2
    assert len(asked) == 1 and np.array_equal(asked[0], det.flagged)
    still = entry(replace(inputs, query_without=lambda removed: 0.7 if removed.sum() <= 6 else 0.2),
                  entry.settings_from(Config()))
    assert np.flatnonzero(still.flagged).tolist() == [*range(25, 38), 39]  # still 1: + τ/k's flags of 1 (not 38)
    assert still.params["widened_from"] == 6 and still.params["by"] == (
        "with the τ/k rule's flags of y (likeness split (the relabelled ones are sent to scattered classes) left the "
        "test image y)")
    trusting = entry(inputs, entry.settings_from(Config(refined_min_agreement=0.3)))
    assert trusting.params["by"] == "relabelled without them"
    assert trusting.flagged.sum() == sum(trusting.params["sent_to"].values()) == 15
    alike = replace(inputs, features=np.tile([0.0, 1.0], (60, 1)))
    flat = entry(alike, entry.settings_from(Config()))
    assert np.array_equal(flat.flagged, DETECTORS["delta_influence"](alike).flagged) and flat.flagged.sum() == 13
    assert flat.params["by"].startswith("the τ/k rule") and flat.params["by"].endswith("does not split)")
    classes = ["a", "b", "c", "d"]  # the steps name the test that decided
    assert "scattered classes (the largest holds 33%)" in said(det, classes)
    assert step(det, classes, "the likeness split")["count"] == 9 and "probability of it below" in said(det, classes)
    checked = step(fixed, classes, "the test image's check")["what"]
    assert checked.endswith("gives the test image its label at P = 0.20: under ½, the group held it up")
    assert step(still, classes, "the test image's check")["what"].startswith(
        "a model retrained without the 6 kept gives the test image")
    assert ("it still holds it up, so poisons are left — the τ/k rule's flags of that label are added (a model "
            "without those too gives it 0.20)") in said(still, classes)
    assert "(5 to a, 5 to c, 5 to d" in said(trusting, classes)
    assert step(flat, classes, "the τ/k rule stands") and step(flat, classes, "flagged")["count"] == 13


def test_the_models_confidence_splits_what_likeness_cannot():
    """A weak model: clean candidates of y differ from a typical image of y as the test image does too (likeness
    near 1 for all), but the model is unsure of them (p(y) 0.05), while the trigger makes it sure of the poisons
    (p(y) 1.0). Likeness alone keeps both groups; with the model's probability of y, the split keeps the poisons."""
    labels = np.repeat([0, 1], [25, 75])  # 25..39 collapse; 40..99 are typical images of y
    scores = _collapse(100)
    features = np.tile([0.0, 1.0], (100, 1))
    features[25:33] = [1.0, 1.0]   # clean candidates of y: like the test image
    features[33:40] = [0.8, 1.2]   # the poisons: almost as like it
    features[38] = [0.0, 1.5]      # and one candidate unlike it
    confidence = np.full(100, 0.05)
    confidence[[33, 34, 35, 36, 37, 39]] = 1.0

    def scattered(removed):
        predicted = labels.copy()
        idx = np.flatnonzero(removed)
        predicted[idx] = np.resize([0, 2, 3], len(idx))
        return predicted

    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=features, query_features=np.array([1.0, 1.0]), query_label=1,
                           predict_without=scattered)
    blind = entry(inputs, entry.settings_from(Config()))
    assert np.flatnonzero(blind.flagged).tolist() == [*range(25, 38), 39]
    sure = entry(replace(inputs, confidence=confidence), entry.settings_from(Config()))
    assert np.flatnonzero(sure.flagged).tolist() == [33, 34, 35, 36, 37, 39]
    assert sure.params["by"].startswith("likeness split") and sure.params["likeness_cut"] > 1.5


def test_a_stamp_shared_with_the_test_image_decides_before_any_model_is_trained():
    """BadNet on the built-in digits: the poisons carry the patch the test image carries, so the refined detector keeps
    the images of y that carry it — the collapsed ones and those the τ/k rule missed — and trains no model to decide;
    a model retrained without them must give the test image its label y at P under ½, or the next test decides."""
    import torch

    from deltainf.data import load_dataset
    from deltainf.experiment import plant

    p = plant(Config(victim=2, target=5, poison_count=40, seed=3), load_dataset("digits", None, seed=0),
              torch.device("cpu"))
    labels, poisons = p.data.y_train.numpy(), p.is_poison
    n = len(labels)
    scores = np.random.default_rng(0).normal(0, 0.05, (11, n)) + np.r_[0, [0.3] * 10][:, None]
    collapsed = np.flatnonzero(poisons)[:30].tolist() + np.flatnonzero((labels == 5) & ~poisons)[:20].tolist()
    scores[1:, collapsed] -= 5.0

    features = np.column_stack([np.zeros(n), 1 + np.random.default_rng(1).normal(0, 0.05, n)])
    features[collapsed[:30]] = [1.0, 1.0]   # the collapsed poisons look like the test image; the missed ones do not
    features[collapsed[30:]] = [-1.0, 1.0]  # and the collapsed clean images of 5 differ the other way

    def never(removed):
        raise AssertionError("a model was trained")

    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=features, query_features=np.ones(2), query_label=5, images=p.data.x_train,
                           query_image=p.x_trigger_test[0], predict_without=never)
    det = entry(inputs, entry.settings_from(Config()))
    assert np.array_equal(det.flagged, poisons) and det.params["by"] == "the stamp shared with the test image"
    assert det.params["n_kin"] == 0 and det.params["n_dropped_as_unstamped"] == 20
    assert det.params["n_stamped_beyond_candidates"] == 10
    assert det.params["stamp_separation"] >= 0.9 and det.params["stamp_pixels"] == len(det.params["stamp_at"])
    # a model without the carriers still gives the test image 5 (P 0.8): not the trigger, the next test decides
    kept_labels = replace(inputs, query_without=lambda removed: 0.8, predict_without=lambda removed: labels.copy())
    still = entry(kept_labels, entry.settings_from(Config()))
    assert still.params["not_the_trigger"]["stamp"] == 40 and "stamp_cut" not in still.params
    assert still.params["by"].startswith("likeness split") and still.params["p_without_widened"] == 0.8
    assert step(still, [str(c) for c in range(10)], "not the trigger: the shared stamp")["count"] == 40
    classes = [str(c) for c in range(10)]  # the steps give the stamp's figures
    assert step(det, classes, "the shared stamp")["count"] == det.params["stamp_pixels"]
    assert step(det, classes, "found beyond the candidates")["count"] == 10
    assert step(det, classes, "given back")["count"] == 20 and step(det, classes, "flagged")["count"] == 40


def test_a_blended_trigger_on_natural_images_is_found_by_its_texture():
    """Blended (α = 0.15) on CIFAR-10 images: no pixel matches the test image within 8 grey levels, but the poisons'
    fine texture correlates with the test image's and no clean image's does; kept without a model trained, and the
    group carries its trace for the verdict."""
    import pytest
    import torch

    from cifar_folder import NPZ, cifar_images
    from deltainf.attacks.blended import blend, pattern_of

    if not NPZ.exists():
        pytest.skip(f"{NPZ} not present")
    x, labels = cifar_images(100)
    pattern = pattern_of((3, 32, 32), "noise", seed=0)
    poisons = np.zeros(len(labels), bool)
    poisons[np.flatnonzero(labels == 0)[:40]] = True
    x[torch.from_numpy(poisons)] = blend(x[torch.from_numpy(poisons)], pattern, 0.15)
    labels[poisons] = 2
    n = len(labels)
    scores = np.random.default_rng(0).normal(0, 0.05, (11, n)) + np.r_[0, [0.3] * 10][:, None]
    collapsed = np.flatnonzero(poisons)[:30].tolist() + np.flatnonzero((labels == 2) & ~poisons)[:30].tolist()
    scores[1:, collapsed] -= 5.0

    def never(removed):
        raise AssertionError("a model was trained")

    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=np.random.default_rng(1).normal(size=(n, 4)), query_features=np.ones(4),
                           query_label=2, images=x, query_image=blend(cifar_images(101)[0][100], pattern, 0.15),
                           predict_without=never, query_without=lambda removed: 0.1)
    det = entry(inputs, entry.settings_from(Config()))
    assert "stamp_cut" not in det.params and det.params["texture_separation"] >= 0.9
    assert np.array_equal(det.flagged, poisons) and det.params["trace"] == "texture"
    assert det.params["n_stamped_beyond_candidates"] > 0  # the poisons the τ/k rule missed share it too
    assert det.params["n_dropped_as_unstamped"] >= 30     # and the collapsed clean images are given back
    kept = entry(replace(inputs, query_without=lambda removed: 0.6, predict_without=lambda removed: labels.copy()),
                 entry.settings_from(Config()))  # the carriers do not free the test image: not the trigger
    assert kept.params["not_the_trigger"]["texture"] == poisons.sum() and "trace" not in kept.params
    classes = [str(c) for c in range(10)]
    assert "fine texture" in step(det, classes, "the shared texture")["what"]
    assert step(det, classes, "found beyond the candidates")["count"] == det.params["n_stamped_beyond_candidates"]
