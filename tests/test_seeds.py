"""Named random streams: each seeded draw has its own, and the engine draws from no other (sklearn's estimators
take a seed or a RandomState of their own, as ART's Activation Clustering does)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from deltainf.seeds import STREAMS, seeded

ENGINE = Path(__file__).resolve().parents[1] / "deltainf"


def test_no_two_streams_share_a_number():
    numbers = [n for n in STREAMS.values()]
    assert len(set(numbers)) == len(numbers)


def test_a_stream_is_the_seed_mixed_with_its_number_and_a_member_is_a_stream_of_its_own():
    assert seeded(5, "poisons").integers(1 << 30) == np.random.default_rng([5, 13]).integers(1 << 30)
    assert seeded(5, "digits").integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)
    members = {int(seeded(5, "surrogate", m).integers(1 << 30)) for m in range(3)}
    assert len(members) == 3


def test_the_engine_draws_only_from_named_streams():
    found = []
    for path in ENGINE.rglob("*.py"):
        if path.name == "seeds.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "default_rng":
                found.append(f"{path.relative_to(ENGINE.parent)}:{node.lineno} {node.attr}")
    assert not found, found
