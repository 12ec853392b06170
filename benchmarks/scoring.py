"""Scoring cost of T = 50 vs T = 1 on the same EK-FAC factors (all queries in one pass).

    python benchmarks/scoring.py [--repeats 3]

The paper's code scores each query in its own pass over the training set (≈50× for T = 50);
batched, the ratio should stay near 1.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from deltainf import Config, Experiment
from deltainf.influence import ekfac as influence


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one-at-a-time", type=int, default=3, help="also time this many queries scored one per pass")
    a = ap.parse_args()
    pipe = Experiment(Config(cache_dir=tempfile.mkdtemp(prefix="deltainf-bench-")))
    inv = pipe.investigation
    inv.influence.factors()
    q = inv.queries()
    p = pipe.poisoned.data
    args = (p.x_train, p.y_train, pipe.store.kron_root, inv.influence.factors_key, pipe.device)

    def timed(n: int) -> float:
        start = time.perf_counter()
        influence.pairwise_scores(pipe.model, q.images[:n], q.labels[:n], *args)
        return time.perf_counter() - start

    timed(2)  # warm-up
    t51 = [timed(51) for _ in range(a.repeats)]
    t2 = [timed(2) for _ in range(a.repeats)]
    m51, m2 = statistics.median(t51), statistics.median(t2)
    print(f"training points: {len(p.y_train)}, device: {pipe.device}")
    print(f"scores_s(T=50, 51 queries, one pass): median {m51:.2f} s  (runs {', '.join(f'{t:.2f}' for t in t51)})")
    print(f"scores_s(T=1,   2 queries, one pass): median {m2:.2f} s  (runs {', '.join(f'{t:.2f}' for t in t2)})")
    print(f"ratio T=50 / T=1: {m51 / m2:.2f}  (target ≤ 1.3)")
    if a.one_at_a_time:
        singles = [timed(1) for _ in range(a.one_at_a_time)]
        per = statistics.median(singles)
        print(f"one query per pass: {per:.2f} s each → 51 queries ≈ {51 * per:.1f} s, "
              f"{51 * per / m51:.1f}× the batched pass")


if __name__ == "__main__":
    main()
