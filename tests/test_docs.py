"""docs/reference.md is what docs/make_reference.py writes from the registries: its tables cannot drift."""
from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_reference_is_generated_from_the_registries():
    spec = importlib.util.spec_from_file_location("make_reference", ROOT / "docs" / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.reference()
    assert "| `delta_refined` |" in text and "`--kin-quantile`" in text and "| `eu` |" in text
    committed = (ROOT / "docs" / "reference.md").read_text()
    assert committed == text, "docs/reference.md is out of date: run python docs/make_reference.py"
