"""Whole-process wall time of ``python -m deltainf run`` (built-in defaults): cold cache vs warm.

    python benchmarks/cold_warm.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cache: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deltainf", "run", "--quiet", "--cache-dir", cache], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cold, warm = [], []
    for _ in range(a.repeats):
        cache = tempfile.mkdtemp(prefix="deltainf-coldwarm-")
        cold.append(run(cache))
        warm.append(run(cache))
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"cold: median {c:.1f} s (runs {', '.join(f'{t:.1f}' for t in cold)}; target ≤ 45 s)")
    print(f"warm: median {w:.1f} s (runs {', '.join(f'{t:.1f}' for t in warm)}; target ≤ 5 s)")
    print(f"cold / warm: {c / w:.1f}×")


if __name__ == "__main__":
    main()
