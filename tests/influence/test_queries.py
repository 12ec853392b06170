import pytest
import torch

from deltainf.influence.queries import AUGMENTATIONS, augment, make_queries


@pytest.fixture(scope="module")
def image():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(3, 16, 16, generator=g) * 255).to(torch.uint8)


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_every_augmentation_runs_and_changes_the_image(name, size):
    torch.manual_seed(1)
    x = torch.rand(3, size, size)
    y = augment(name, x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x)


def test_full_mode_draws_random_labels_other_than_y(image):
    q = make_queries(image, label=7, num_classes=10, T=50, mode="full", seed=3)
    assert q.images.shape == (51, 3, 16, 16) and q.T == 50
    assert q.labels[0] == 7 and (q.labels[1:] != 7).all()
    assert torch.equal(q.images[0], image.float() / 255)
    assert set(q.names[1:]) <= set(AUGMENTATIONS) and len(set(q.names[1:])) >= 5
    assert q.images.min() >= 0 and q.images.max() <= 1


def test_modes_share_draws(image):
    full = make_queries(image, 7, 10, 20, "full", seed=3)
    label_only = make_queries(image, 7, 10, 20, "label-only", seed=3)
    image_only = make_queries(image, 7, 10, 20, "image-only", seed=3)
    assert torch.equal(full.labels, label_only.labels)
    assert (image_only.labels == 7).all()
    assert torch.equal(full.images, image_only.images)
    assert torch.equal(label_only.images, full.images[:1].expand(21, -1, -1, -1))


def test_same_seed_same_queries_other_seed_other_queries(image):
    a = make_queries(image, 2, 10, 30, "full", seed=5)
    b = make_queries(image, 2, 10, 30, "full", seed=5)
    c = make_queries(image, 2, 10, 30, "full", seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)
