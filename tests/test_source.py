"""Experiments and cases are both :class:`~deltainf.source.Source`: the app and the reports ask what a source
knows, never which class it is."""
from __future__ import annotations

import ast
from pathlib import Path

from deltainf.case import Case
from deltainf.experiment import Experiment
from deltainf.source import Source

ROOT = Path(__file__).resolve().parents[1]


def protocol_members() -> set[str]:
    return {n for n in vars(Source) if not n.startswith("_")} | set(Source.__annotations__)


def test_both_sources_offer_every_member_of_the_protocol():
    members = protocol_members()
    assert {"truth", "planted", "investigation", "export_weights", "model_metrics"} <= members
    for cls in (Experiment, Case):
        missing = [m for m in members - {"config"} if not hasattr(cls, m)]
        assert not missing, f"{cls.__name__} lacks {missing}"


def test_a_case_says_nobody_planted_an_attack(demo):
    assert Case.planted is None
    assert demo.planted is demo.poisoned and demo.planted.target == demo.query_label
    weights = demo.export_weights(demo.model)
    assert weights.keys() == demo.model.state_dict().keys()


def test_pages_never_ask_which_class_a_source_is():
    """No page branches on a source's kind, and no page or ui module on its class (``kind`` names a source in words
    where nothing else is known yet; the session's own ``kind`` is its state)."""
    found = []
    for path in [*sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if path.parent.name == "pages" and isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) \
                    and node.left.attr == "kind" \
                    and isinstance(node.left.value, ast.Name) and node.left.value.id in ("exp", "src", "e", "source"):
                found.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance" \
                    and any(getattr(a, "id", "") in ("Case", "Experiment") for a in ast.walk(node.args[1])):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, found

