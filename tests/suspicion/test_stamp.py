"""The stamp the candidates share with the test image: found where a trigger is stamped on real images (the paper's
BadNet patch on digits and on CIFAR-10, the frequency trigger on the digits' black background), its carriers exactly
the poisons; not found among natural look-alikes of the test image that carry no trigger. The shared fine texture
likewise: a blended trigger on CIFAR-10 (no pixel alike), none among natural look-alikes. And a perturbation the
test image does not carry (clean-label poisons): found on the digits, not among natural look-alikes. And a
fine-texture level the poisons share with the test image (WaNet's warp on the digits), none among natural look-alikes
however smooth or textured the test image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar_folder import NPZ, cifar_images
from deltainf import Config
from deltainf.data import load_dataset
from deltainf.suspicion.stamp import perturbed, shared_energy, shared_stamp, shared_texture, texture_energy
from deltainf.verdict import LEVEL
from deltainf.experiment import plant

CPU = torch.device("cpu")


def _candidates(x, labels, query, poisons, label, n_clean):
    """The poisons and the ``n_clean`` clean images of ``label`` nearest the test image in pixels (the hardest
    look-alikes a detector could have flagged beside them)."""
    dist = (x.float() - query.float()).flatten(1).norm(dim=1).numpy()
    clean = np.flatnonzero((labels == label) & ~poisons)
    out = poisons.copy()
    out[clean[np.argsort(dist[clean])[:n_clean]]] = True
    return out


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", None, seed=0)


@pytest.mark.parametrize("attack,extra", [("badnet", {}), ("badnet", {"trigger_pattern": "random",
                                                                       "trigger_corner": "top-left"}),
                                          pytest.param("frequency", {}, marks=pytest.mark.slow)])
def test_the_stamp_on_the_digits_is_carried_by_the_poisons_alone(digits, attack, extra):
    p = plant(Config(attack=attack, victim=2, target=5, poison_count=40, seed=3, **extra), digits, CPU)
    labels, poisons = p.data.y_train.numpy(), p.is_poison
    query = p.x_trigger_test[0]
    cand = _candidates(p.data.x_train, labels, query, poisons, 5, 40)
    stamp = shared_stamp(p.data.x_train, query, cand, ~cand, 8, 10.0, seed=0)
    assert stamp is not None and stamp.separation >= 0.9
    assert np.array_equal(stamp.carriers(labels, 5), poisons)
    if attack == "badnet":  # the pixels found lie in the patch (its black squares match the background anyway)
        assert stamp.pixels.any() and not (stamp.pixels & ~p.trigger_mask.numpy()).any()
    clean = digits.x_test[int(p.trigger_test_idx[0])]  # the same images and test image before the attack
    none = shared_stamp(digits.x_train, clean, cand, ~cand, 8, 10.0, seed=0)
    assert none is None or none.separation < 0.9


@pytest.fixture(scope="module")
def cifar():
    if not NPZ.exists():
        pytest.skip(f"{NPZ} not present")
    return cifar_images(200)


def test_a_patch_on_cifar_is_found_and_natural_look_alikes_carry_none(cifar):
    from deltainf.attacks.badnet import apply_trigger, trigger

    x, labels = cifar
    mask, pattern = trigger((3, 32, 32), 4, "checker", "bottom-right", seed=0)
    victims = np.flatnonzero(labels == 0)
    poisons = np.zeros(len(labels), bool)
    poisons[victims[:50]] = True
    xp, lp = x.clone(), labels.copy()
    xp[torch.from_numpy(poisons)] = apply_trigger(x[torch.from_numpy(poisons)], mask, pattern)
    lp[poisons] = 2
    query = apply_trigger(x[victims[-1]], mask, pattern)  # a victim image kept out of the poisons, stamped
    cand = _candidates(xp, lp, query, poisons, 2, 80)
    stamp = shared_stamp(xp, query, cand, ~cand, 8, 10.0, seed=0)
    assert stamp is not None and stamp.separation >= 0.9 and np.array_equal(stamp.carriers(lp, 2), poisons)
    assert np.array_equal(stamp.pixels, mask.numpy())

    for c in range(10):  # no trigger: the images of a class nearest one of its images share no stamp with it
        members = np.flatnonzero(labels == c)
        near = _candidates(x, labels, x[members[0]], np.zeros(len(labels), bool), c, 80)
        near[members[0]] = False
        found = shared_stamp(x, x[members[0]], near, ~near, 8, 10.0, seed=0)
        assert found is None or found.separation < 0.9, c


def test_one_shared_pixel_is_no_stamp(digits):
    """A single pixel is carried whole or not at all whatever it is: 20 candidates sharing one odd pixel value with
    the test image (and nothing else does) prove nothing; a second such pixel makes it a stamp."""
    x, labels = digits.x_train.clone(), digits.y_train.numpy()
    query = digits.x_test[0].clone()
    cand = np.zeros(len(labels), bool)
    cand[np.flatnonzero(labels == 4)[:40]] = True
    shared = np.flatnonzero(cand)[:20]
    query[:, 0, 0] = 200
    x[torch.from_numpy(shared), :, 0, 0] = 200
    assert shared_stamp(x, query, cand, ~cand, 8, 10.0, seed=0) is None
    query[:, 0, 1] = 200
    x[torch.from_numpy(shared), :, 0, 1] = 200
    two = shared_stamp(x, query, cand, ~cand, 8, 10.0, seed=0)
    assert two is not None and two.pixels.sum() == 2 and np.array_equal(np.flatnonzero(two.carriers(labels, 4)), shared)


def test_a_blended_trigger_on_cifar_leaves_no_stamp_but_its_texture(cifar):
    from deltainf.attacks.blended import blend, pattern_of

    x, labels = cifar
    pattern = pattern_of((3, 32, 32), "noise", seed=0)
    victims = np.flatnonzero(labels == 0)
    poisons = np.zeros(len(labels), bool)
    poisons[victims[:50]] = True
    xp, lp = x.clone(), labels.copy()
    xp[torch.from_numpy(poisons)] = blend(x[torch.from_numpy(poisons)], pattern, 0.15)
    lp[poisons] = 2
    query = blend(x[victims[-1]], pattern, 0.15)
    cand = _candidates(xp, lp, query, poisons, 2, 80)
    stamp = shared_stamp(xp, query, cand, ~cand, 8, 10.0, seed=0)
    assert stamp is None or stamp.separation < 0.9
    texture = shared_texture(xp, query, cand, seed=0)
    assert texture.separation >= 0.9 and np.array_equal(texture.carriers(lp, 2), poisons)

    for c in range(10):  # no trigger: natural look-alikes' texture correlates with the image's by degrees
        members = np.flatnonzero(labels == c)
        near = _candidates(x, labels, x[members[0]], np.zeros(len(labels), bool), c, 80)
        near[members[0]] = False
        assert shared_texture(x, x[members[0]], near, seed=0).separation < 0.9, c


def _perturb(x: torch.Tensor, eps: int, seed: int) -> torch.Tensor:
    """``x`` (uint8) with an ε-bounded perturbation (uniform in ±``eps`` grey levels, as a brewed one is bounded)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(-eps, eps + 1, x.shape, generator=g)
    return (x.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)


def test_a_perturbation_the_test_image_lacks_marks_clean_label_poisons(digits):
    """30 images of y perturbed within ±24 grey levels (Witches' Brew on the digits: ±40) among 40 clean look-alikes
    of a clean test image: the perturbed group is found and its carriers hold every poison; not with the perturbation
    gone, nor with a handful of perturbed images, nor when the test image carries the same perturbation (then it is
    no clean-label attack)."""
    x, labels = digits.x_train.clone(), digits.y_train.numpy()
    query = digits.x_test[int(np.flatnonzero(digits.y_test.numpy() == 3)[0])]  # a clean image of another class
    poisons = np.zeros(len(labels), bool)
    poisons[np.flatnonzero(labels == 5)[:30]] = True
    xp = x.clone()
    xp[torch.from_numpy(poisons)] = _perturb(x[torch.from_numpy(poisons)], 24, seed=0)
    cand = _candidates(xp, labels, query, poisons, 5, 40)
    found = perturbed(xp, query, cand, seed=0, z=1.5)
    carriers = found.carriers(labels, 5)  # every image of y above the cut: the poisons, and few clean ones
    assert found is not None and (carriers >= poisons).all() and poisons.sum() >= 0.8 * carriers.sum(), carriers.sum()
    assert perturbed(x, query, cand, seed=0, z=1.5) is None           # the same images, unperturbed
    few = np.zeros(len(labels), bool)
    few[np.flatnonzero(poisons)[:5]] = True
    xf = x.clone()
    xf[torch.from_numpy(few)] = xp[torch.from_numpy(few)]
    assert perturbed(xf, query, _candidates(xf, labels, query, few, 5, 40), seed=0, z=1.5) is None
    assert perturbed(xp, _perturb(query, 24, seed=1), cand, seed=0, z=1.5) is None


def test_natural_look_alikes_are_no_perturbed_group(cifar):
    x, labels = cifar
    for c in range(10):  # the images of a class nearest one of its images: textured or smooth, by degrees
        members = np.flatnonzero(labels == c)
        for m in members[:3]:
            near = _candidates(x, labels, x[m], np.zeros(len(labels), bool), c, 80)
            near[m] = False
            assert perturbed(x, x[m], near, seed=0, z=1.5) is None, (c, m)


def test_a_warp_moves_the_texture_level_of_the_poisons_and_the_test_image_alike(digits):
    p = plant(Config(attack="wanet", victim=2, target=5, poison_count=40, seed=3), digits, CPU)
    labels, poisons = p.data.y_train.numpy(), p.is_poison
    triggered = shared_energy(p.data.x_train, p.x_trigger_test[0], poisons, labels, 5)
    assert triggered >= LEVEL
    unwarped = digits.x_test[int(p.trigger_test_idx[0])]  # the test image before the attack: it does not share it
    assert abs(shared_energy(p.data.x_train, unwarped, poisons, labels, 5)) < LEVEL
    few = np.zeros(len(labels), bool)
    few[np.flatnonzero(poisons)[:5]] = True  # a handful of images is no group
    assert shared_energy(p.data.x_train, p.x_trigger_test[0], few, labels, 5) == 0.0


@pytest.mark.parametrize("source", ["digits", "cifar"])
def test_natural_look_alikes_share_no_texture_level(source, digits, request):
    x, labels = (digits.x_train, digits.y_train.numpy()) if source == "digits" else request.getfixturevalue("cifar")
    energy = texture_energy(x)
    for c in range(10):  # the smoothest, the most textured and a middling image of each class, with its look-alikes
        members = np.flatnonzero(labels == c)
        for m in members[np.argsort(energy[members])][[0, len(members) // 2, -1]]:
            near = _candidates(x, labels, x[m], np.zeros(len(labels), bool), c, 60)
            near[m] = False
            assert abs(shared_energy(x, x[m], near, labels, c)) < LEVEL, (c, m)
