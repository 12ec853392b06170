"""WaNet (Nguyen & Tran 2021) on the built-in digits: a warp, not a pattern; its noise mode; settings; pictures."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deltainf import Config
from deltainf.attacks.wanet import field, warp
from deltainf.errors import ConfigError
from deltainf.experiment import plant

CPU = torch.device("cpu")


def test_wanet_warps_victim_images_relabelled_and_noise_mode_images_keep_their_labels(digits):
    p = plant(Config(attack="wanet", victim=2, target=5, poison_count=20), digits, CPU)
    poisons = p.is_poison
    assert poisons.sum() == 20 and (digits.y_train[poisons] == 2).all() and (p.data.y_train[poisons] == 5).all()
    grid = field((16, 16), 6, 3.0, 0)  # the built-in digits' own k and s, the experiment's seed
    assert torch.equal(p.data.x_train[poisons], warp(digits.x_train[poisons], grid))
    changed = (p.data.x_train != digits.x_train).flatten(1).any(1).numpy()
    noise_mode = changed & ~poisons
    assert noise_mode.sum() == 20  # one per poison on the digits, of any class, labels kept
    assert len(np.unique(digits.y_train[noise_mode])) > 3
    assert torch.equal(p.data.y_train[noise_mode], digits.y_train[noise_mode])
    assert torch.equal(p.x_trigger_test, warp(digits.x_test[p.trigger_test_idx], grid))
    # a warp moves pixels, it adds nothing: the images keep their range of grey levels
    assert p.data.x_train[poisons].max() <= digits.x_train[poisons].max()


def test_the_warp_is_smooth_seeded_and_within_the_image():
    a, b = field((16, 16), 4, 0.5, 0), field((16, 16), 4, 0.5, 1)
    assert torch.equal(a, field((16, 16), 4, 0.5, 0)) and not torch.equal(a, b)
    identity = field((16, 16), 4, 0.0, 0)
    shift = (a - identity).abs()
    assert a.abs().max() <= 1 and 0 < shift.max() < 0.2  # a fraction of a pixel's worth of the grid at s = 0.5
    assert (a[:, 1:] - a[:, :-1] - (identity[:, 1:] - identity[:, :-1])).abs().max() < shift.max()  # smooth
    with pytest.raises(ConfigError, match="finer"):
        field((16, 16), 17, 0.5, 0)


def test_wanet_settings(digits):
    with pytest.raises(ConfigError, match="cross-ratio"):
        plant(Config(attack="wanet", poison_count=100, wanet_cross_ratio=20), digits, CPU)
    none = plant(Config(attack="wanet", poison_count=20, wanet_cross_ratio=0), digits, CPU)
    assert ((none.data.x_train != digits.x_train).flatten(1).any(1).numpy() == none.is_poison).all()


def test_wanet_pictures(digits):
    from deltainf.figures import experiment as views

    cfg = Config(attack="wanet")
    images, captions = views.attack_preview("wanet", cfg, digits.x_train[0])
    assert captions[1] == "the warp (k = 6, s = 3) on a lattice" and not np.array_equal(images[0], images[2])
    natural = views.attack_preview("wanet", cfg, digits.x_train[0], "imagefolder")[1][1]
    assert natural.startswith("the warp (k = 4, s = 0.5)")  # the paper's own on other data
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=plant(cfg, digits, CPU), data=digits, config=cfg))
    assert captions[0] == "the warp, on a lattice" and len(images) == 3

