"""``actclust`` and ``specsig`` flag the same points as IBM ART's implementations (``ActivationDefence`` with its
defaults, ``SpectralSignatureDefense``) given the same activations and settings. ART is a development dependency
(requirements-dev.txt); without it these tests skip."""
from __future__ import annotations

import numpy as np
import pytest

from deltainf.detectors.actclust import smaller_clusters
from deltainf.detectors.specsig import spectral_signatures

poison = pytest.importorskip("art.defences.detector.poison", reason="IBM ART (adversarial-robustness-toolbox)")


class Activations:
    """What ART asks of a classifier to read its last hidden layer: here, activations already computed."""

    def __init__(self, features: np.ndarray, nb_classes: int):
        self.features, self.nb_classes, self.layer_names = features, nb_classes, ["last hidden"]

    def get_activations(self, x, layer=None, batch_size=128, framework=False):
        return self.features[np.asarray(x).ravel()]


def _art_flags(defence) -> np.ndarray:
    return np.asarray(defence.detect_poison()[1]) == 0  # ART's is_clean list: 0 = poison


@pytest.fixture(scope="module")
def activations(demo):
    labels = demo.investigation.data.y_train.numpy()
    return demo.investigation.activations.train(), labels, np.eye(int(labels.max()) + 1)[labels]


@pytest.mark.parametrize("seed", [0, 3])
def test_actclust_flags_what_arts_activation_defence_flags(activations, seed):
    features, labels, onehot = activations
    defence = poison.ActivationDefence(Activations(features, onehot.shape[1]), np.arange(len(labels))[:, None],
                                       onehot)
    np.random.seed(seed)  # ART's PCA and k-means draw from NumPy's global generator
    art = _art_flags(defence)
    ours, _, share = smaller_clusters(features, labels, seed)
    assert art.sum() > 0.1 * len(labels)  # the smaller cluster of every class: a large share of the data
    assert np.array_equal(ours, art)


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_specsig_raw_flags_what_arts_spectral_signature_defense_flags(activations, eps):
    features, labels, onehot = activations
    defence = poison.SpectralSignatureDefense(Activations(features, onehot.shape[1]), np.arange(len(labels))[:, None],
                                              onehot, expected_pp_poison=eps, eps_multiplier=1.5, batch_size=128)
    art = _art_flags(defence)
    ours, _, removed = spectral_signatures(features, labels, eps, 1.5, projection="raw")
    assert np.array_equal(ours, art) and sum(removed.values()) == art.sum() > 0
    centred, _, _ = spectral_signatures(features, labels, eps, 1.5)
    assert centred.sum() == ours.sum() and not np.array_equal(centred, ours)  # the same cut, another projection
