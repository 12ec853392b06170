"""Shared fixtures: one built-in (digits) experiment computed once per test session.

Markers: ``slow`` (trains a model: the built-in experiment or a CIFAR-10 subset) and ``browser`` (drives
Chromium). ``pytest -m "not slow and not browser"`` runs the fast set alone.
"""
from __future__ import annotations

import pytest

from deltainf import Config
from deltainf.store import Store

#: Fixtures that train a model: a test that uses one is slow.
TRAINING_FIXTURES = {"demo", "cifar_exp", "exps", "freq", "brew"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deltainf-cache")


@pytest.fixture(scope="session")
def demo(cache_dir):
    """The default built-in experiment (seed 0), its scores already computed."""
    from deltainf.experiment import Experiment

    exp = Experiment(Config(cache_dir=str(cache_dir)), store=Store(cache_dir))
    exp.investigation.scores()
    return exp
