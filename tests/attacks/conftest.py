"""The attacks' tests share the built-in digits (seed 0's split)."""
from __future__ import annotations

import pytest

from deltainf.data import load_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", None, seed=0)
