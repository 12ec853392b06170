"""Golden runs: the CLI's figures and every detector's flagged set (``tests/golden/*.json``) must come out the
same as recorded. First recorded with the code before the engine was split into stages (issue #12, which
changed no figure); recorded again when issue #14 changed the re-check and the unlearning methods on purpose, and
when issue #17 made ActClust ART's, cut SpecSig as ART does and refined Δ-Influence by relabelling while #14's loop
took the kin first and gave clean points back; when the refined detector learnt to abstain and Witches' Brew
took the dataset's own ε; when the likeness split replaced that abstention; when the split took the model's
confidence; and on 2026-12-07 with the verdict, the stamp's texture, the first relabelling round and the named
random streams, on this machine (``python tests/test_golden.py --record``); again with the verdict's transfer (its
reason and parts only: every figure and flagged set held); again when the factor fit's CPU batch went from 256 to
64 (the order of summation: the suggested τ moved, BadNet's flags held); again when the verdict's reason named its
trace (reason and parts only).

Bit-exact figures hold only for the same numerics (torch version, the CPU's vector instructions, the thread
count, and a probe: a few training steps of the built-in CNN, hashed). Elsewhere the same runs are compared within
``TOLERANCE``: the figures that held between one and two threads on the recording machine (another thread count
trains another model: the frequency experiment then picks another triggered test image, and the ablations' counts
move by half, so those are not compared). ``benchmarks/equivalence.py`` compares two checkouts exactly.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from deltainf.cli import build_parser, config_from_args, main

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.json"))


def numerics() -> dict:
    return {"torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "probe": probe()}


def probe() -> str:
    """A hash of the built-in CNN after a few seeded SGD steps: two machines alike in version, instructions and
    threads can still sum differently (seen: the same golden run, 42 flagged on one and 44 on another)."""
    from deltainf.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("cnn", 10, torch.zeros(3), torch.ones(3))
        x, y = torch.rand(64, 3, 28, 28), torch.randint(0, 10, (64,))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    return hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]


def differences(old, new, path: str = "") -> list[str]:
    """Where ``new`` differs from ``old``: every figure recorded must be there and the same; figures and options
    added since (only in ``new``) are not differences."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in old:
            out += [f"{path}/{k}: missing"] if k not in new else differences(old[k], new[k], f"{path}/{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [f"{path}: {old!r} → {new!r}"]


@pytest.fixture(scope="module")
def extra_cache(tmp_path_factory):
    # The frequency experiment is shared with tests/attacks and tests/detectors (trained once a session).
    path = tmp_path_factory.getbasetemp() / "deltainf-extra-cache"
    path.mkdir(exist_ok=True)
    return path


#: Other numerics: (what, the most it may move). Measured between one and two threads on the recording machine:
#: clean accuracy 0.003, poison success 0.027, Δ refined's TPR 0.02 and precision 0, FreqDef's flags Jaccard 1.0,
#: SpecSig's 0.82–0.84, Δ-Influence's 0.83 on the same test image (0.44 on another).
TOLERANCE = {"clean_acc": 0.01, "poison_success": 0.05, "refined": 0.1, "freqdef": 0.9, "specsig": 0.75,
             "delta_influence": 0.75}


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / max(1, len(a | b))


def tolerant_differences(golden: dict, report: dict, flagged: dict) -> list[str]:
    """What moved past ``TOLERANCE`` from a golden run recorded with other numerics."""
    g, t = golden["report"], TOLERANCE
    out = [f"model/{k}: {g['model'][k]:.3f} → {report['model'][k]:.3f}" for k in ("clean_acc", "poison_success")
           if abs(g["model"][k] - report["model"][k]) > t[k]]
    if g["verdict"]["poisoned"] != report["verdict"]["poisoned"]:
        out.append(f"verdict: {g['verdict']['poisoned']} → {report['verdict']['poisoned']}")
    was, now = g["detectors"]["delta_refined"], report["detectors"]["delta_refined"]
    out += [f"delta_refined/{k}: {was[k]:.2f} → {now[k]:.2f}" for k in ("tpr", "precision")
            if abs(was[k] - now[k]) > t["refined"]]
    compared = ["freqdef", "specsig"] + (["delta_influence"] if g["data"]["test_index"] == report["data"]["test_index"]
                                         else [])
    out += [f"{d}: flagged sets' Jaccard {jaccard(golden['flagged'][d], flagged[d]):.2f}" for d in compared
            if jaccard(golden["flagged"][d], flagged[d]) < t[d]]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_same_figures_and_flagged_sets_as_recorded(name, cache_dir, extra_cache, tmp_path, capsys):
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    cache = cache_dir if name.startswith("badnet") else extra_cache  # the built-in demo's cache, or the shared one
    report, flagged = run(golden, cache, tmp_path)
    if golden["numerics"] != numerics():  # another machine or thread count: within the stated tolerance
        assert tolerant_differences(golden, report, flagged) == []
        return
    assert differences(golden["report"], report) == []
    for detector, indices in golden["flagged"].items():
        assert flagged[detector] == indices, detector


def run(golden: dict, cache: Path, tmp: Path) -> tuple[dict, dict]:
    """The CLI's JSON report for a golden case's arguments (less timings and paths), and each detector's flags."""
    from deltainf.experiment import Experiment

    args = ["run", *golden["args"], "--cache-dir", str(cache), "--quiet"]
    assert main([*args, "--json", str(tmp / "r.json")]) == 0
    report = json.loads((tmp / "r.json").read_text())
    for key in ("timings", "cached"):
        report.pop(key)
    for key in ("cache_dir", "device"):
        report["config"].pop(key)
    for u in report["unlearn"].values():
        u.pop("seconds")
        u.pop("cached", None)  # whether the model came from the cache: a timing, not a figure
    exp = Experiment(config_from_args(build_parser().parse_args(args)))
    return report, {d: exp.detect(d).indices.tolist() for d in golden["flagged"]}


def record() -> None:
    """Run every golden case with this checkout and write what it gives as the new golden files."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for name in CASES:
        path = GOLDEN / f"{name}.json"
        old = json.loads(path.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            report, flagged = run(old, Path(tmp), Path(tmp))
        path.write_text(json.dumps({"report": report, "flagged": flagged, "args": old["args"], "numerics": numerics(),
                                    "recorded_with": commit}, indent=1))
        print(f"recorded {path}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_golden.py --record")
    record()
