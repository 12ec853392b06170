"""Adaptive-Blend (Qi et al. 2023) on the built-in digits: the pattern in random halves of its pieces on the poisons
and on covers that keep their labels, whole at test time; pictures."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from deltainf import Config
from deltainf.attacks.adaptive_blend import piece_masks
from deltainf.attacks.blended import blend
from deltainf.experiment import plant

CPU = torch.device("cpu")


def test_poisons_and_covers_carry_half_the_pieces_and_the_test_images_all_of_them(digits):
    p = plant(Config(attack="adaptive_blend", victim=2, target=5, poison_count=20), digits, CPU)
    poisons = p.is_poison
    assert (digits.y_train[poisons] == 2).all() and (p.data.y_train[poisons] == 5).all()
    full = blend(digits.x_train, p.trigger_pattern, 0.25)  # the built-in digits' own α on the poisons
    changed = (p.data.x_train != digits.x_train).flatten(1).any(1).numpy()
    covers = changed & ~poisons
    assert covers.sum() == 20 and torch.equal(p.data.y_train[covers], digits.y_train[covers])
    for i in np.flatnonzero(changed):  # each carries the blend over some pieces and is untouched elsewhere
        blended = (p.data.x_train[i] == full[i]).all(0)
        untouched = (p.data.x_train[i] == digits.x_train[i]).all(0)
        assert (blended | untouched).all() and 0.2 < float((~untouched).float().mean()) < 0.8
    assert torch.equal(p.x_trigger_test, blend(digits.x_test[p.trigger_test_idx], p.trigger_pattern, 0.3))


def test_piece_masks_cover_half_the_pieces_each_a_different_half():
    masks = piece_masks((16, 16), 4, 50, np.random.default_rng(0))
    assert masks.shape == (50, 1, 16, 16) and (masks.float().mean((1, 2, 3)) == 0.5).all()
    assert len({m.numpy().tobytes() for m in masks}) > 40
    assert piece_masks((16, 16), 1, 3, np.random.default_rng(0)).all()  # one piece: the whole image


def test_adaptive_blend_pictures(digits):
    from deltainf.figures import experiment as views

    cfg = Config(attack="adaptive_blend")
    images, captions = views.attack_preview("adaptive_blend", cfg, digits.x_train[0])
    assert captions[1:] == ["half its 4×4 pieces at α = 0.25 (a poison)", "whole at α = 0.3 (test time)"]
    assert views.attack_preview("adaptive_blend", cfg, digits.x_train[0], "imagefolder")[1][2] == \
        "whole at α = 0.2 (test time)"  # the paper's own on other data
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=plant(cfg, digits, CPU), data=digits, config=cfg))
    assert captions[0] == "the pattern, cut into pieces" and len(images) == 3

