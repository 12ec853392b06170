"""Golden runs: the CLI's figures and every detector's flagged set, recorded with the code before the engine
was split into stages (``tests/golden/*.json``), must come out the same.

Bit-exact figures hold only for the same numerics (torch version, the CPU's vector instructions, the thread
count: training sums in their order), so the comparison is skipped, saying why, on other machines.
``benchmarks/equivalence.py`` runs the same comparison on held-out configurations between two checkouts.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deltainf.cli import build_parser, config_from_args, main

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.json"))


def numerics() -> dict:
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads()}


def differences(old, new, path: str = "") -> list[str]:
    """Where ``new`` differs from ``old``; options that only ``new`` has (added since) are not differences."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in old:
            out += [f"{path}/{k}: missing"] if k not in new else differences(old[k], new[k], f"{path}/{k}")
        return out + [f"{path}/{k}: new" for k in new if k not in old and path != "/config"]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} → {new!r}"]


@pytest.fixture(scope="module")
def extra_cache(tmp_path_factory):
    # The frequency experiment is shared with tests/attacks and tests/detectors (trained once a session).
    path = tmp_path_factory.getbasetemp() / "deltainf-extra-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_same_figures_and_flagged_sets_as_before_the_redesign(name, cache_dir, extra_cache, tmp_path, capsys):
    from deltainf.experiment import Experiment

    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    if golden["numerics"] != numerics():
        pytest.skip(f"recorded with {golden['numerics']}; this machine has {numerics()}")
    cache = cache_dir if name.startswith("badnet") else extra_cache  # the built-in demo's cache, or the shared one
    args = ["run", *golden["args"], "--cache-dir", str(cache), "--quiet"]
    assert main([*args, "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    for key in ("timings", "cached"):
        report.pop(key)
    for key in ("cache_dir", "device"):
        report["config"].pop(key)
    for u in report["unlearn"].values():
        u.pop("seconds")
    assert differences(golden["report"], report) == []
    exp = Experiment(config_from_args(build_parser().parse_args(args)))
    for detector, indices in golden["flagged"].items():
        assert exp.detect(detector).indices.tolist() == indices, detector
