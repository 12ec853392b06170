"""Label-consistent (Turner et al. 2019) on the built-in digits: target-class images hardened within ε on the
attacker's surrogate, then patched in the corners, labels kept; the patch alone at test time; pictures."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from deltainf import Config
from deltainf.attacks.label_consistent import corner_patches
from deltainf.experiment import plant
from deltainf.figures import experiment as views
from deltainf.store import Store

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lc(digits, tmp_path_factory):
    """15 poisons hardened on the attacker's surrogate (trained here: these tests are slow)."""
    cache = tmp_path_factory.mktemp("lc-cache")
    cfg = Config(attack="label_consistent", victim=2, target=5, poison_count=15, lc_steps=5, cache_dir=str(cache))
    return cfg, plant(cfg, digits, CPU, Store(cache)), cache


@pytest.mark.slow
def test_poisons_are_target_images_hardened_within_eps_and_patched(digits, lc):
    cfg, p, cache = lc
    poisons = p.is_poison
    assert poisons.sum() == 15 and (digits.y_train[poisons] == 5).all()
    assert torch.equal(p.data.y_train, digits.y_train)  # clean label
    assert torch.equal(p.data.x_train[~poisons], digits.x_train[~poisons])
    mask, pattern = corner_patches((3, 16, 16), 3)
    x, x0 = p.data.x_train[poisons], digits.x_train[poisons]
    assert torch.equal(x[:, :, mask], pattern[:, mask].expand(15, -1, -1))
    moved = (x.int() - x0.int()).abs()[:, :, ~mask]
    assert moved.max() <= 40 and moved.float().mean() > 1  # within the digits' 40/255, and perturbed
    assert torch.equal(p.x_trigger_test, torch.where(mask, pattern, digits.x_test[p.trigger_test_idx]))
    again = plant(cfg, digits, CPU, Store(cache))  # cached: bit-identical
    assert torch.equal(again.data.x_train, p.data.x_train)


def test_corner_patches_are_checkerboards_in_all_four_corners():
    mask, pattern = corner_patches((3, 16, 16), 3)
    assert mask.sum() == 36 and mask[0, 0] and mask[15, 15] and mask[0, 15] and mask[15, 0] and not mask[8, 8]
    assert set(pattern[:, mask].unique().tolist()) == {0, 255} and pattern[:, ~mask].sum() == 0
    assert corner_patches((3, 4, 4), 3)[0].all()  # at most half the side: small images are all corners


def test_label_consistent_preview(digits):
    images, captions = views.attack_preview("label_consistent", Config(attack="label_consistent"), digits.x_train[0])
    assert captions[1] == "3×3 checkerboards in the corners" and len(images) == 3


@pytest.mark.slow
def test_label_consistent_picture(digits, lc):
    cfg, poisoned, _ = lc
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=poisoned, data=digits, config=cfg))
    assert captions[0] == "the corner patches" and "still labelled" in captions[2]
