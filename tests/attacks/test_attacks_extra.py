"""The frequency (smooth) trigger and Witches' Brew on the built-in digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from deltainf import Config
from deltainf.attacks import frequency, witches_brew
from deltainf.experiment import attack_context, plant
from deltainf.store import Store

CPU = torch.device("cpu")
AMPLITUDE, RADIUS = Config().trigger_amplitude, Config().trigger_freq_radius


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # One folder for both extra test modules (same pytest session): surrogates and models are shared.
    path = tmp_path_factory.getbasetemp() / "deltainf-extra-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def freq(cache, digits):
    return plant(Config(attack="frequency", cache_dir=str(cache)), digits, CPU, Store(cache))


def test_frequency_trigger_is_smooth_and_faint(freq):
    pattern = frequency.decode_pattern(freq.trigger_pattern).numpy().astype(float)
    assert pattern.shape == (3, 16, 16)
    assert 0 < np.abs(pattern).max() <= AMPLITUDE
    energy = dctn(pattern, axes=(1, 2), norm="ortho") ** 2
    u, v = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    low = energy[:, (u + v) <= RADIUS].sum()
    assert low / energy.sum() > 0.9  # rounding to grey levels leaks only a little elsewhere
    # A smooth pattern: neighbouring pixels differ by far less than the amplitude.
    assert np.abs(np.diff(pattern, axis=2)).mean() < 0.25 * AMPLITUDE
    assert freq.trigger_mask.all()
    vis = frequency.visualise_pattern(freq.trigger_pattern)
    assert vis.dtype == torch.uint8 and int(vis.max()) - int(vis.min()) > 200


def test_frequency_poisons_victim_images_only(freq, digits):
    p = freq
    assert len(p.poison_idx) == p.is_poison.sum() > 0
    assert (digits.y_train[p.poison_idx] == p.victim).all()
    assert (p.data.y_train[p.poison_idx] == p.target).all()
    clean = ~torch.from_numpy(p.is_poison)
    assert torch.equal(p.data.x_train[clean], digits.x_train[clean])
    assert torch.equal(p.data.y_train[clean], digits.y_train[clean])
    diff = p.data.x_train[p.poison_idx].int() - digits.x_train[p.poison_idx].int()
    assert diff.abs().max() <= AMPLITUDE and diff.abs().sum() > 0
    # The triggered test set: every victim-class test image plus the same pattern.
    assert torch.equal(p.trigger_test_idx, torch.nonzero(digits.y_test == p.victim).flatten())
    expected = frequency.add_pattern(digits.x_test[p.trigger_test_idx], frequency.decode_pattern(p.trigger_pattern))
    assert torch.equal(p.x_trigger_test, expected)


def test_frequency_is_seeded(cache, digits, freq):
    again = plant(Config(attack="frequency", cache_dir=str(cache)), digits, CPU, Store(cache))
    assert torch.equal(again.trigger_pattern, freq.trigger_pattern)
    assert torch.equal(again.data.x_train, freq.data.x_train)
    other = frequency.random_pattern((3, 16, 16), 1, AMPLITUDE, RADIUS)
    assert not np.allclose(other, frequency.random_pattern((3, 16, 16), 0, AMPLITUDE, RADIUS))


@pytest.mark.slow
def test_frequency_trigger_implants(cache):
    from deltainf.experiment import Experiment

    m = Experiment(Config(attack="frequency", cache_dir=str(cache)), store=Store(cache)).model_metrics
    assert m["poison_success"] >= 0.8
    assert m["clean_acc"] >= 0.9


@pytest.fixture(scope="module")
def brew(cache, digits):
    cfg = Config(attack="witches_brew", poison_count=20, brew_steps=40, brew_restarts=1, cache_dir=str(cache))
    return plant(cfg, digits, CPU, Store(cache))  # a short brew: these tests check the bookkeeping


def test_witches_brew_is_clean_label_within_eps(brew, digits):
    p = brew
    assert len(p.poison_idx) == 20
    assert (digits.y_train[p.poison_idx] == p.target).all()  # poisons are adversarial-class images
    assert torch.equal(p.data.y_train, digits.y_train)          # no label changes
    diff = p.data.x_train.int() - digits.x_train.int()
    assert Config().brew_eps is None  # the dataset's own budget: the built-in digits' is 40/255
    assert 16 < diff.abs().max() <= round(witches_brew.dataset_eps("digits") * 255) == 40
    assert diff[p.poison_idx].abs().sum() > 0
    clean = ~torch.from_numpy(p.is_poison)
    assert diff[clean].abs().sum() == 0


def test_witches_brew_target_is_one_test_image_of_another_class(brew, digits):
    p = brew
    assert len(p.x_trigger_test) == 1 and len(p.trigger_test_idx) == 1
    t = int(p.trigger_test_idx[0])
    assert torch.equal(p.x_trigger_test[0], digits.x_test[t])  # unmodified at test time
    assert int(digits.y_test[t]) == p.victim != p.target
    assert not p.trigger_mask.any()


@pytest.mark.slow
def test_brew_aligns_gradients(cache, digits):
    """More steps give a lower matching loss than none (the optimisation does something)."""
    cfg = Config(attack="witches_brew", cache_dir=str(cache))
    model = attack_context(cfg, CPU, Store(cache)).surrogates.model(digits)
    idx = torch.nonzero(digits.y_train == 1).flatten()[:8]
    target = digits.x_test[int(torch.nonzero(digits.y_test == 7).flatten()[0])]
    _, loss0 = witches_brew.brew(model, digits.x_train[idx], digits.y_train[idx], target, 1, steps=0, restarts=1)
    x, loss = witches_brew.brew(model, digits.x_train[idx], digits.y_train[idx], target, 1, steps=30, restarts=1)
    assert loss < loss0
    assert (x.int() - digits.x_train[idx].int()).abs().max() <= 16


@pytest.mark.parametrize("attack", ["badnet", "frequency", "witches_brew"])
def test_trigger_pictures(attack, freq, brew, digits, cache):
    """The Experiment page's pictures: a preview before training, this experiment's own trigger after."""
    from types import SimpleNamespace

    from deltainf.figures import experiment as views
    from deltainf.figures.images import upscale

    cfg = Config(attack=attack, cache_dir=str(cache))
    images, captions = views.attack_preview(attack, cfg, digits.x_train[0])
    assert len(images) == len(captions) == 3 and captions[0] == "clean"
    assert all(im.shape == (96, 96, 3) and im.dtype == np.uint8 for im in images)
    assert not np.array_equal(images[0], images[2])  # the trigger changes the image
    if attack == "witches_brew":  # the budget the chosen data source brews with
        assert captions[1].startswith("a ±40/255")
        assert views.attack_preview(attack, cfg, digits.x_train[0], "imagefolder")[1][1].startswith("a ±16/255")
    poisoned = plant(cfg, digits, CPU) if attack == "badnet" else {"frequency": freq, "witches_brew": brew}[attack]
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=poisoned, data=digits, config=cfg))
    assert len(images) == 3
    i = int(poisoned.poison_idx[0])
    assert np.array_equal(images[2], upscale(poisoned.data.x_train[i], 6))  # the real poison, enlarged
    first = {"badnet": "the trigger patch", "frequency": "the pattern", "witches_brew": "test image"}[attack]
    assert captions[0].startswith(first)
