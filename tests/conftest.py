"""Shared fixtures: one built-in (digits) experiment computed once per test session."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from deltainf import Config
from deltainf.cache import Store

sys.path.insert(0, str(Path(__file__).parent))  # tests/cifar_folder.py for fixtures


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deltainf-cache")


@pytest.fixture(scope="session")
def demo(cache_dir):
    """The default built-in experiment (seed 0), its scores already computed."""
    from deltainf.pipeline import Pipeline

    pipe = Pipeline(Config(cache_dir=str(cache_dir)), store=Store(cache_dir))
    pipe.scores()
    return pipe
