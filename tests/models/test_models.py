"""Architectures, the training recipe and last-layer features."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from deltainf.models import ARCHITECTURES, build_model
from deltainf.models.features import embeddings, last_linear
from deltainf.models.training import Recipe


def recipe(**changes) -> Recipe:
    r = Recipe("cnn", 10, 2, 2e-3, 16, 0.0, 0.0, 3, torch.device("cpu"), mean=torch.zeros(3), std=torch.ones(3))
    return dataclasses.replace(r, **changes)


def test_architectures_come_with_their_recipe():
    assert list(ARCHITECTURES) == ["cnn", "resnet18"]
    for name in ARCHITECTURES:
        attrs = ARCHITECTURES[name].attrs
        assert attrs["epochs"] >= 1 and attrs["lr"] > 0 and attrs["optimizer"] in ("adam", "sgd")
    assert recipe().optimizer == "adam" and not recipe().augment
    assert recipe(model="resnet18").optimizer == "sgd" and recipe(model="resnet18").augment


def test_new_models_are_seeded_and_normalise_inside():
    a, b, c = recipe().new_model(), recipe().new_model(), recipe(seed=4).new_model()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a[1].features[0].weight, c[1].features[0].weight)
    assert "0.mean" in a.state_dict()  # the statistics travel with the weights


def test_recipe_key_names_everything_that_sets_the_weights():
    base = recipe().key()
    for change in ({"epochs": 3}, {"lr": 1e-3}, {"seed": 5}, {"batch_size": 8}, {"precision": "bf16"}):
        assert recipe(**change).key() != base, change
    with pytest.raises(Exception, match="unknown --model .vgg."):
        recipe(model="vgg").new_model()


@pytest.mark.slow
def test_training_is_seeded():
    x = (torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    y = torch.arange(40) % 10
    a, b = recipe().train(x, y), recipe().train(x, y)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_features_are_the_input_of_the_last_linear_layer():
    model = build_model("cnn", 10, torch.zeros(3), torch.ones(3))
    assert last_linear(model) is model[1].classifier[-1]
    x = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    expected = model[1].classifier[:-1](model[1].features(model[0](x.float() / 255)))
    torch.testing.assert_close(torch.from_numpy(embeddings(model, x, torch.device("cpu"))), expected.detach())
    with pytest.raises(TypeError, match="no Linear"):
        last_linear(nn.Sequential(nn.Conv2d(3, 3, 1)))
