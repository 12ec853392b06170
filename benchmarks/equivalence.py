"""Do two checkouts of the project give the same results? Runs ``python -m deltainf run`` in each (fresh
caches) over a list of configurations and compares the JSON reports (every figure README documents,
timings aside) and every detector's flagged set, index by index.

    python benchmarks/equivalence.py --a /path/to/old/checkout --b . [--configs held-out|golden] [--out DIR]

Used to check that a restructuring changed no result: ``--a`` the code before it, ``--b`` after.
Prints one line per configuration and detector, and exits 1 on any difference.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ALL = "delta_influence,delta_label_only,delta_image_only,ekfac,actclust,specsig,freqdef"
CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.npz"

#: Configurations no test or tuning used (other seeds and victim/target pairs than the defaults).
HELD_OUT = {
    "badnet-s12-v2t6": ["--seed", "12", "--victim", "2", "--target", "6", "--detectors", ALL,
                       "--unlearn", "eu,cf,ssd,scrub,badt", "--until-clean"],
    "badnet-s7-2pts": ["--seed", "7", "--test-points", "2", "--counterfactual", "--unlearn", "eu"],
    "frequency-s5-v4t2": ["--attack", "frequency", "--seed", "5", "--victim", "4", "--target", "2",
                          "--detectors", ALL, "--unlearn", "eu,cf", "--until-clean"],
    "badnet-s11-label-only": ["--seed", "11", "--mode", "label-only", "--transforms", "20", "--tau", "0", "--k", "2"],
    "witches-brew-s6": ["--attack", "witches_brew", "--seed", "6", "--detectors", "delta_influence,ekfac,specsig"],
    "cifar-badnet-s4": ["--dataset", "imagefolder", "--data-root", "{cifar}", "--seed", "4", "--victim", "5",
                        "--target", "0", "--detectors", ALL, "--unlearn", "eu"],
}


def run(checkout: Path, args: list[str], cache: Path, flagged: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deltainf", "run", *args, "--cache-dir", str(cache), "--quiet"]
    if flagged is not None:
        cmd += ["--flagged-out", str(flagged)]
    return subprocess.run(cmd, cwd=checkout, capture_output=True, text=True, env={"PYTHONPATH": str(checkout),
                                                                                   **_env()})


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def record(checkout: Path, name: str, args: list[str], work: Path) -> dict:
    """The report and every detector's flagged indices for one configuration in ``checkout``."""
    cache = work / "cache"
    report = work / f"{name}.json"
    r = run(checkout, [*args, "--json", str(report)], cache)
    if r.returncode:
        return {"error": r.stderr.strip()[-500:]}
    out = json.loads(report.read_text())
    detectors = list(out["detectors"])
    flags = {}
    base = [a for i, a in enumerate(args) if not _is_option_value(args, i, ("--detectors", "--unlearn"))
            and a not in ("--detectors", "--unlearn", "--until-clean", "--counterfactual")]
    for det in detectors:  # served from the cache: one CSV per detector
        csv_path = work / f"{name}-{det}.csv"
        r = run(checkout, [*base, "--detectors", det], cache, csv_path)
        flags[det] = [int(row["index"]) for row in csv.DictReader(csv_path.open())] if csv_path.exists() else None
    for key in ("timings", "cached"):
        out.pop(key, None)
    for key in ("cache_dir", "device"):
        out["config"].pop(key, None)
    for u in out.get("unlearn", {}).values():
        u.pop("seconds", None)
        u.pop("cached", None)
    return {"report": out, "flagged": flags}


def _is_option_value(args, i, options) -> bool:
    return i > 0 and args[i - 1] in options


def differences(a, b, path="") -> list[str]:
    """Every place where two JSON values differ (floats compared exactly: the same code on the same machine).
    Options only ``b`` resolves (new ones, at their defaults) are not differences."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a and path == "/report/config":
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'b' if k not in a else 'a'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {str(a)[:80]} ≠ {str(b)[:80]}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="one checkout (e.g. the code before a change)")
    ap.add_argument("--b", type=Path, default=Path("."), help="the other (default: this one)")
    ap.add_argument("--only", nargs="*", help="names of configurations to run (default: all)")
    ap.add_argument("--out", type=Path, help="keep the reports here (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse results already under --out (e.g. side a's)")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="deltainf-equivalence-"))
    configs = {n: [x.replace("{cifar}", str(out / "cifar-subset")) for x in args] for n, args in HELD_OUT.items()
               if not a.only or n in a.only}
    if any("{cifar}" in x for args in HELD_OUT.values() for x in args) and not (out / "cifar-subset").exists():
        if CIFAR.exists():
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from cifar_folder import write_cifar_imagefolder

            write_cifar_imagefolder(out / "cifar-subset", per_class_train=200, per_class_test=50, npz=CIFAR)
        else:
            configs = {n: v for n, v in configs.items() if not n.startswith("cifar")}
    failed = 0
    for name, args in configs.items():
        results = []
        for side, checkout in (("a", a.a), ("b", a.b)):
            work = out / side / name
            if a.reuse and (work / "result.json").exists():
                results.append(json.loads((work / "result.json").read_text()))
                continue
            work.mkdir(parents=True, exist_ok=True)
            results.append(record(checkout.resolve(), name, args, work))
            (work / "result.json").write_text(json.dumps(results[-1], indent=1))
        diff = differences(*results)
        flagged = results[0].get("flagged", {})
        sizes = ", ".join(f"{d} {len(v) if v is not None else '-'}" for d, v in flagged.items())
        print(f"{name:<24} {'same' if not diff else 'DIFFERENT'}   flagged: {sizes or results[0].get('error', '')}")
        for d in diff[:12]:
            print(f"    {d}")
        failed += bool(diff)
    print(f"{len(configs) - failed} of {len(configs)} configurations identical; reports in {out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
