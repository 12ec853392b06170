"""The coarse look a group shares and the other images of its label lack: on CIFAR-10 images, dirty-label poisons
(cat images carrying a smooth random pattern of ±48 grey levels, labelled dog) are told from the clean dogs a first
guess mixed with them; without poisons the look does not split cleanly and the refined rule does not lean on it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar_folder import NPZ, cifar_images
from deltainf.attacks.frequency import add_pattern, random_pattern
from deltainf.suspicion.look import look_split

pytestmark = pytest.mark.skipif(not NPZ.exists(), reason=f"{NPZ} not present")
CAT, DOG = 3, 5


@pytest.fixture(scope="module")
def cats_and_dogs():
    x, labels = cifar_images(200)
    cats, dogs = np.flatnonzero(labels == CAT)[:60], np.flatnonzero(labels == DOG)
    pattern = random_pattern((3, 32, 32), seed=0, amplitude=48, radius=3)
    images = torch.cat([add_pattern(x[cats], pattern), x[dogs]])  # 60 poisons, then 200 clean dogs
    poisons = np.r_[np.ones(60, bool), np.zeros(200, bool)]
    return images, poisons


def test_the_poisons_are_told_from_clean_images_of_their_label_by_their_coarse_look(cats_and_dogs):
    images, poisons = cats_and_dogs
    rng = np.random.default_rng(0)
    among = poisons.copy()
    among[60 + rng.choice(200, 70, replace=False)] = True        # the candidates: 60 poisons, 70 clean dogs
    first = np.zeros_like(poisons)
    first[rng.choice(60, 42, replace=False)] = True                 # a first guess 60 % pure
    first[rng.choice(np.flatnonzero(among & ~poisons), 28, replace=False)] = True
    kept, cut, separation = look_split(images, first, among, ~among, seed=0)
    found = int((kept & poisons).sum())
    assert found >= 0.9 * 60 and found >= 0.9 * kept.sum(), (found, int(kept.sum()))  # from 60 % pure
    assert not (kept & ~among).any() and 0 < separation <= 1
    again = look_split(images, first, among, ~among, seed=0)
    assert np.array_equal(again[0], kept) and again[1] == cut  # seeded: the same group


def test_too_few_images_to_fit_a_discriminant_on_is_said(cats_and_dogs):
    images, poisons = cats_and_dogs
    first = np.zeros_like(poisons)
    first[:3] = True
    assert look_split(images, first, poisons, ~poisons, seed=0) is None


def _refined(images, labels, among, first):
    """Δ refined on ``images`` where the ``among`` collapse and alone look like the test image, the relabelling
    scatters and the likeness split keeps ``first`` (the model is sure of those alone)."""
    from deltainf import Config
    from deltainf.detectors import DETECTORS, DetectorInput

    n = len(labels)
    scores = np.r_[np.zeros((1, n)), np.full((10, n), 0.3)]
    scores[1:, among] -= 5.0

    def scattered(removed):
        predicted = labels.copy()
        predicted[removed] = np.resize([0, 1, 2, 4], int(removed.sum()))
        return predicted

    entry = DETECTORS["delta_refined"]
    inputs = DetectorInput(labels=labels, seed=0, mode="full", scores={"full": scores}, tau=-1.0, k=0,
                           features=np.where(among[:, None], [1.0, 1.0], [-1.0, 1.0]), query_features=np.ones(2),
                           confidence=first.astype(float),
                           query_label=DOG, images=images, predict_without=scattered)
    return entry(inputs, entry.settings_from(Config()))


def test_the_refined_rule_sharpens_its_likeness_split_only_where_the_look_splits_cleanly(cats_and_dogs):
    images, poisons = cats_and_dogs
    x, labels = cifar_images(20)
    images, labels = torch.cat([images, x[labels != DOG]]), np.r_[np.full(260, DOG), labels[labels != DOG]]
    poisons = np.r_[poisons, np.zeros(len(labels) - 260, bool)]
    rng = np.random.default_rng(1)
    among = poisons.copy()
    among[60 + rng.choice(200, 70, replace=False)] = True
    first = np.zeros_like(poisons)
    first[rng.choice(60, 42, replace=False)] = True
    first[rng.choice(np.flatnonzero(among & ~poisons), 28, replace=False)] = True
    det = _refined(images, labels, among, first)
    assert det.params["by"].startswith("likeness split, sharpened by the coarse look"), det.params["by"]
    assert det.params["look_separation"] >= 0.8 and det.params["n_liked"] == 70
    found = int((det.flagged & poisons).sum())
    assert found >= 0.9 * 60 and found >= 0.9 * det.flagged.sum(), (found, int(det.flagged.sum()))
    # no poison among the candidates (the cats unpoisoned, labelled cat): the look does not decide
    honest = _refined(images, np.where(poisons, CAT, labels), among & ~poisons, first & ~poisons)
    assert honest.params["by"].startswith("likeness split (") and honest.params["look_separation"] < 0.8
