"""Time to re-threshold a 50,000 × 50 Δ matrix (what a τ or k slider move costs at CIFAR scale).

    python benchmarks/rethreshold.py
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from deltainf.evaluation.metrics import detection_metrics
from deltainf.influence.delta import delta_flags


def main() -> None:
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(50, 50_000)).astype(np.float32) * 1e4
    is_poison = np.zeros(50_000, bool)
    is_poison[rng.choice(50_000, 500, replace=False)] = True
    runs = []
    for i in range(30):
        start = time.perf_counter()
        flagged = delta_flags(delta, tau=-1e3 * (i % 5), k=i % 4)
        detection_metrics(flagged, is_poison)
        runs.append(time.perf_counter() - start)
    print(f"re-threshold 50,000 × 50 Δ (flags + TPR/precision): median {statistics.median(runs) * 1e3:.1f} ms, "
          f"max {max(runs) * 1e3:.1f} ms over {len(runs)} runs")


if __name__ == "__main__":
    main()
