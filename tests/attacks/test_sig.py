"""SIG (Barni et al. 2019) on the built-in digits: clean label, a sinusoid; settings; pictures."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from deltainf import Config
from deltainf.attacks.sig import add_signal, signal
from deltainf.experiment import plant

CPU = torch.device("cpu")


def test_sig_adds_the_sinusoid_to_target_images_that_keep_their_label(digits):
    p = plant(Config(attack="sig", victim=2, target=5, poison_count=30), digits, CPU)
    poisons = p.is_poison
    assert poisons.sum() == 30 and (digits.y_train[poisons] == 5).all()
    assert torch.equal(p.data.y_train, digits.y_train)  # clean label: no label changes
    assert torch.equal(p.data.x_train[~poisons], digits.x_train[~poisons])
    assert torch.equal(p.data.x_train[poisons], add_signal(digits.x_train[poisons], signal((3, 16, 16), 20, 6)))
    assert (digits.y_test[p.trigger_test_idx] == 2).all()
    assert torch.equal(p.x_trigger_test, add_signal(digits.x_test[p.trigger_test_idx], signal((3, 16, 16), 30, 6)))


def test_the_sinusoid_runs_across_the_columns():
    s = signal((3, 8, 12), 20, 3)
    assert torch.equal(s[:, 0], s[:, 7]) and torch.equal(s[0], s[2])  # constant down each column, every channel
    assert s.abs().max() <= 20 and s[0, 0, 0] == 0 and abs(float(s[0, 0, 1]) - 20) < 1e-4  # 3 periods in 12 px


def test_sig_pictures(digits):
    from deltainf.figures import experiment as views

    cfg = Config(attack="sig", sig_delta=40)
    images, captions = views.attack_preview("sig", cfg, digits.x_train[0])
    assert captions[1] == "the sinusoid (±60 at test time, ±40 on the poisons)"
    assert not np.array_equal(images[0], images[2])
    images, captions = views.trigger_picture(SimpleNamespace(poisoned=plant(cfg, digits, CPU), data=digits, config=cfg))
    assert captions[0] == "the sinusoid, on grey" and captions[2].endswith("still labelled " + digits.classes[
        int(plant(cfg, digits, CPU).target)])

