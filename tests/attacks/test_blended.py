"""The blended trigger (Chen et al. 2017) on the built-in digits: bookkeeping, seeding, settings, pictures."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deltainf import Config
from deltainf.attacks.blended import PATTERNS, blend, pattern_of
from deltainf.errors import ConfigError
from deltainf.experiment import plant

CPU = torch.device("cpu")


def test_blended_mixes_the_pattern_into_victim_images_relabelled(digits):
    p = plant(Config(attack="blended", victim=2, target=5, poison_count=20, blend_alpha=0.2), digits, CPU)
    assert len(p.poison_idx) == 20 and (digits.y_train[p.poison_idx] == 2).all()
    assert (p.data.y_train[p.poison_idx] == 5).all()
    clean = np.ones(len(digits.y_train), bool)
    clean[p.poison_idx.numpy()] = False
    assert torch.equal(p.data.x_train[clean], digits.x_train[clean])
    expected = (0.8 * digits.x_train[p.poison_idx].float() + 0.2 * p.trigger_pattern.float()).round()
    assert torch.equal(p.data.x_train[p.poison_idx].float(), expected)
    # every pixel may move, and by at most α of the way to the pattern
    change = (p.data.x_train[p.poison_idx].int() - digits.x_train[p.poison_idx].int()).abs()
    assert change.max() <= round(0.2 * 255) and (change > 0).float().mean() > 0.5
    assert torch.equal(p.x_trigger_test, blend(digits.x_test[p.trigger_test_idx], p.trigger_pattern, 0.2))
    assert (digits.y_test[p.trigger_test_idx] == 2).all()


def test_blended_is_seeded_and_its_patterns_differ():
    a, b = pattern_of((3, 16, 16), "noise", 4), pattern_of((3, 16, 16), "noise", 5)
    assert torch.equal(a, pattern_of((3, 16, 16), "noise", 4)) and not torch.equal(a, b)
    grey = pattern_of((3, 16, 16), "grey-noise", 4)
    assert torch.equal(grey[0], grey[1]) and not torch.equal(a[0], a[1])
    checker = pattern_of((3, 8, 8), "checker", 0)
    assert set(checker.unique().tolist()) == {0, 255} and checker[0, 0, 0] != checker[0, 0, 1]
    assert len({tuple(pattern_of((3, 4, 4), k, 0).flatten().tolist()) for k in PATTERNS}) == len(PATTERNS)


@pytest.mark.parametrize("alpha", [0.0, 1.5, float("nan")])
def test_a_blend_weight_outside_0_1_is_refused(alpha):
    with pytest.raises(ConfigError, match="blend-alpha"):
        Config(attack="blended", blend_alpha=alpha)


def test_blended_pictures(digits):
    from deltainf.figures import experiment as views

    cfg = Config(attack="blended", blend_alpha=0.3)
    images, captions = views.attack_preview("blended", cfg, digits.x_train[0])
    assert len(images) == 3 and captions[2] == "blended in at α = 0.3"
    default = Config(attack="blended")  # the data source's own weight, else BackdoorBench's
    assert views.attack_preview("blended", default, digits.x_train[0])[1][2] == "blended in at α = 0.25"
    assert views.attack_preview("blended", default, digits.x_train[0], "imagefolder")[1][2] == "blended in at α = 0.2"
    assert not np.array_equal(images[0], images[2])
    poisoned = plant(cfg, digits, CPU)
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=poisoned, data=digits, config=cfg))
    assert captions[0] == "the blended pattern" and len(images) == 3

