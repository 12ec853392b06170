"""Sleeper Agent (Souri et al. 2022) on the built-in digits: target-class images brewed within ε, labels kept, the
patch never in the training set and on the victim images at test time; pictures."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from deltainf import Config
from deltainf.attacks.sleeper_agent import hidden_patch
from deltainf.experiment import plant
from deltainf.figures import experiment as views
from deltainf.store import Store

CPU = torch.device("cpu")


@pytest.mark.slow
def test_poisons_are_brewed_target_images_and_the_patch_is_hidden(digits, tmp_path):
    cfg = Config(attack="sleeper_agent", victim=2, target=5, poison_count=10, sleeper_steps=5, cache_dir=str(tmp_path))
    p = plant(cfg, digits, CPU, Store(tmp_path))
    poisons = p.is_poison
    assert poisons.sum() == 10 and (digits.y_train[poisons] == 5).all()
    assert torch.equal(p.data.y_train, digits.y_train) and torch.equal(p.data.x_train[~poisons],
                                                                     digits.x_train[~poisons])
    moved = (p.data.x_train[poisons].int() - digits.x_train[poisons].int()).abs()
    assert 0 < moved.max() <= 40  # the digits' budget, 40/255
    m = p.trigger_mask
    carries = (p.data.x_train[:, :, m] == p.trigger_pattern[:, m]).flatten(1).all(1)
    assert not carries.any()  # no training image carries the patch
    assert torch.equal(p.x_trigger_test[:, :, m], p.trigger_pattern[:, m].expand(len(p.x_trigger_test), -1, -1))
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=p, data=digits, config=cfg))
    assert captions[0] == "the hidden patch" and "still labelled" in captions[2]


def test_the_hidden_patch_and_its_preview(digits):
    mask, pattern = hidden_patch((3, 16, 16), None, 0)
    assert mask.sum() == 9 and mask[15, 15]  # at least 3×3 on small images, bottom-right
    images, captions = views.attack_preview("sleeper_agent", Config(attack="sleeper_agent"), digits.x_train[0])
    assert captions[1].startswith("the hidden patch (never in the training set; poisons: ±40/255)")
