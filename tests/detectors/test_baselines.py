"""Baseline detectors (ActClust, SpecSig, FreqDef) on planted data and on real poisoned digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deltainf import Config
from deltainf.detectors import DETECTORS, actclust, actclust_strict, freqdef, specsig
from deltainf.evaluation.metrics import detection_metrics
from deltainf.models.features import embeddings
from deltainf.store import Store

NAMES = ("actclust", "actclust_strict", "specsig", "freqdef")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # Shared with tests/attacks/test_attacks_extra.py in the same session (the frequency model is trained once).
    path = tmp_path_factory.getbasetemp() / "deltainf-extra-cache"
    path.mkdir(exist_ok=True)
    return path


def _exp(cache, attack):
    from deltainf.experiment import Experiment

    return Experiment(Config(attack=attack, cache_dir=str(cache)), store=Store(cache))


@pytest.fixture(scope="module")
def exps(cache):
    return {a: _exp(cache, a) for a in ("badnet", "frequency")}


def test_registered():
    assert set(NAMES) <= set(DETECTORS)


def _planted(seed=0):
    """Three Gaussian classes of 100 in 20-D; class 0 carries 20 far-off points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(3, 20))
    emb = np.concatenate([rng.normal(c, 1, size=(100, 20)) for c in centres])
    labels = np.repeat([0, 1, 2], 100)
    emb[:20] = rng.normal(centres[1] + 3, 1, size=(20, 20))  # look like class 1, labelled 0
    truth = np.zeros(300, bool)
    truth[:20] = True
    return emb, labels, truth


def test_activation_clustering_finds_planted_cluster():
    emb, labels, truth = _planted()
    flagged, score, per_class = actclust_strict.activation_clustering(emb, labels, seed=0)
    assert np.array_equal(flagged, truth)
    assert per_class[0]["flagged"] and not per_class[1]["flagged"] and not per_class[2]["flagged"]
    assert score[truth].min() > score[~truth].max()


def test_paper_activation_clustering_flags_a_smaller_cluster_in_every_class():
    emb, labels, truth = _planted()
    flagged, _, share = actclust.smaller_clusters(emb, labels, seed=0)
    assert flagged[truth].all() and share[0] == 0.2  # class 0 splits into the planted points and the rest
    assert all(0 < share[c] <= 0.5 and flagged[labels == c].any() for c in (1, 2))  # clean classes split too


def test_spectral_signatures_ranks_planted_points_first():
    emb, labels, truth = _planted()
    flagged, score, removed = specsig.spectral_signatures(emb, labels)
    assert removed == {0: 8, 1: 8, 2: 8}  # ceil(1.5 · 5 % · 100)
    assert flagged.sum() == 24 and flagged[:20].sum() == 8
    assert set(np.argsort(-score[:100])[:20]) == set(range(20))  # within class 0 the planted points lead


def test_synthetic_triggers_and_spectra():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 3, 16, 16)).astype(np.uint8)
    y = freqdef.synthetic_triggers(x, np.random.default_rng(1))
    assert y.shape == x.shape and y.dtype == np.uint8
    assert all((y[i] != x[i]).any() for i in range(len(x)))
    assert freqdef.dct_log_spectrum(x).shape == (20, 3 * 16 * 16)


def test_synthetic_triggers_follow_zengs_families():
    """On flat grey images each family leaves its own mark: a corner block, a shadow (darker, lower half
    only), or a brightening of the whole image (Gaussian noise with mean 25, + 0.3 · another image)."""
    x = np.full((60, 3, 32, 32), 100, np.uint8)
    diff = freqdef.synthetic_triggers(x, np.random.default_rng(3)).astype(int) - x
    changed = (diff != 0).any(axis=1)
    block = shadow = whole = 0
    for d, c in zip(diff, changed):
        rows, cols = np.nonzero(c)
        if c.mean() > 0.95 and d.mean() > 15:
            whole += 1
        elif (d <= 0).all() and rows.min() >= 16 - 1 and np.isclose(d[d < 0], -50).all():
            shadow += 1
        elif c.sum() <= 49 and (min(rows.min(), 31 - rows.max()) <= 6) and (min(cols.min(), 31 - cols.max()) <= 6):
            block += 1
    assert block >= 10 and shadow >= 5 and whole >= 15 and block + shadow + whole == 60


@pytest.mark.parametrize("attack", ["badnet", "frequency"])
@pytest.mark.parametrize("name", NAMES)
def test_baseline_runs_and_is_deterministic(exps, cache, attack, name):
    exp = exps[attack]
    n = len(exp.poisoned.data.y_train)
    det = exp.detect(name)
    assert det.name == name
    assert det.flagged.shape == (n,) and det.flagged.dtype == bool
    assert det.score.shape == (n,) and np.isfinite(det.score).all()
    assert det.flagged.sum() < n and isinstance(det.params, dict) and det.params
    if attack == "badnet":  # on the frequency trigger a baseline may rightly find nothing (ActClust does)
        assert det.flagged.sum() > 0
    # The same seed in a fresh experiment (model from the cache) gives the same flags and scores.
    again = _exp(cache, attack).detect(name)
    assert np.array_equal(again.flagged, det.flagged) and np.allclose(again.score, det.score)


def test_activation_baselines_flag_target_class_on_badnet(exps):
    exp = exps["badnet"]
    y = exp.poisoned.data.y_train.numpy()
    target = exp.poisoned.target
    strict = exp.detect("actclust_strict")
    assert target in strict.params["flagged_classes"]
    assert detection_metrics(strict.flagged, exp.is_poison)["tpr"] >= 0.5
    paper = exp.detect("actclust")  # the smaller cluster of every class: most poisons, a large share of clean points
    assert detection_metrics(paper.flagged, exp.is_poison)["tpr"] >= 0.5
    assert all(0 < (paper.flagged & (y == c)).sum() <= (y == c).sum() / 2 for c in np.unique(y))
    ss = exp.detect("specsig")
    hits_in_target = (ss.flagged & exp.is_poison & (y == target)).sum()
    assert hits_in_target > 0.5 * (ss.flagged & (y == target)).sum()  # most of its target-class flags are poisons


def test_freqdef_beats_chance_on_badnet(exps):
    exp = exps["badnet"]
    det = exp.detect("freqdef")
    m = detection_metrics(det.flagged, exp.is_poison)
    assert m["precision"] > 5 * exp.is_poison.mean()
    assert det.params["synthetic_auroc"] > 0.9
    assert det.score[exp.is_poison].mean() > det.score[~exp.is_poison].mean()


def test_embeddings_of_resnet_read_fc_input():
    from deltainf.models import build_model

    model = build_model("resnet18", 10, torch.zeros(3), torch.ones(3))
    emb = embeddings(model, torch.zeros(2, 3, 16, 16, dtype=torch.uint8), torch.device("cpu"))
    assert emb.shape == (2, 512)
    assert not model[1].fc._forward_hooks  # the hook is removed again
