import pytest
import torch

from deltainf import Config
from deltainf.attacks import victim_and_target
from deltainf.attacks.badnet import trigger
from deltainf.errors import ConfigError
from deltainf.experiment import attack_context, plant

CPU = torch.device("cpu")


def test_badnet_poisons_victim_images_with_trigger_and_target_label(digits):
    cfg = Config(victim=2, target=5, poison_count=20)
    p = plant(cfg, digits, CPU)
    assert len(p.poison_idx) == 20 and p.is_poison.sum() == 20
    assert (digits.y_train[p.poison_idx] == 2).all()  # drawn from the victim class
    assert (p.data.y_train[p.poison_idx] == 5).all()  # relabelled to the target
    clean = torch.ones(len(digits.y_train), dtype=torch.bool)
    clean[p.poison_idx] = False
    assert torch.equal(p.data.x_train[clean], digits.x_train[clean])  # nothing else touched
    m = p.trigger_mask
    assert torch.equal(p.data.x_train[p.poison_idx][:, :, m], p.trigger_pattern[:, m].expand(20, -1, -1))
    assert len(p.x_trigger_test) == int((digits.y_test == 2).sum())
    assert torch.equal(p.x_trigger_test[:, :, m], p.trigger_pattern[:, m].expand(len(p.x_trigger_test), -1, -1))


def test_badnet_is_seeded(digits):
    a = plant(Config(seed=4), digits, CPU)
    b = plant(Config(seed=4), digits, CPU)
    c = plant(Config(seed=5), digits, CPU)
    assert torch.equal(a.poison_idx, b.poison_idx) and (a.victim, a.target) == (b.victim, b.target)
    assert not torch.equal(a.poison_idx, c.poison_idx) or (a.victim, a.target) != (c.victim, c.target)


@pytest.mark.parametrize("corner", ["bottom-right", "bottom-left", "top-right", "top-left"])
@pytest.mark.parametrize("pattern", ["checker", "white", "random"])
def test_trigger_shapes(corner, pattern):
    mask, full = trigger((3, 16, 16), 3, pattern, corner, seed=0)
    assert mask.sum() == 9 and full[:, ~mask].sum() == 0
    row = 15 if corner.startswith("bottom") else 0
    col = 15 if corner.endswith("right") else 0
    assert mask[row, col]
    if pattern != "random":
        assert (full[:, row, col] == 255).all()  # the outer corner pixel is lit


def test_bad_attack_settings(digits):
    with pytest.raises(ConfigError, match="exceeds"):
        plant(Config(victim=0, target=1, poison_count=10_000), digits, CPU)
    with pytest.raises(ConfigError, match="out of range"):
        victim_and_target(attack_context(Config(victim=12, target=1), CPU, None), 10)
    with pytest.raises(ConfigError, match="too large"):
        plant(Config(trigger_size=9), digits, CPU)


def test_drawn_classes_respect_a_given_one():
    for seed in range(20):
        v, t = victim_and_target(attack_context(Config(seed=seed, target=3), CPU, None), 10)
        assert t == 3 and v != 3 and 0 <= v < 10
