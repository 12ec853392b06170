"""Each unlearning method on Δ-Influence's flags and on naive EK-FAC's (many clean points): clean accuracy
and poison success afterwards, per seed and averaged (issue #5: the false-positive effect).

    python benchmarks/unlearning.py [--seeds 0 1 2] [--methods eu,cf,ssd,scrub,badt] [--cache-dir DIR]
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from deltainf import Config, Experiment
from deltainf.evaluation.report import unlearning_grid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", default="eu,cf,ssd,scrub,badt")
    ap.add_argument("--detectors", default="delta_influence,ekfac")
    ap.add_argument("--cache-dir", default=None)
    a = ap.parse_args()
    cache = a.cache_dir or tempfile.mkdtemp(prefix="deltainf-unlearning-")
    methods, detectors = a.methods.split(","), a.detectors.split(",")
    rows = []
    print(f"{'seed':>4} {'detector':>16} {'flagged':>7} {'method':>6} {'clean acc':>9} {'Δacc':>6} {'poison success':>14}")
    for seed in a.seeds:
        pipe = Experiment(Config(seed=seed, cache_dir=cache))
        before = pipe.model_metrics
        for r in unlearning_grid(pipe, detectors, methods):
            r = {**r, "seed": seed, "acc_drop": before["clean_acc"] - r["clean_acc"]}
            rows.append(r)
            print(f"{seed:>4} {r['detector']:>16} {r['n_flagged']:>7} {r['method']:>6} {r['clean_acc']:>9.3f} "
                  f"{-r['acc_drop']:>+6.3f} {r['poison_success']:>14.2f}", flush=True)
    print("\nmean over seeds: clean-accuracy drop / poison success")
    for d in detectors:
        cells = []
        for m in methods:
            sel = [r for r in rows if r["detector"] == d and r["method"] == m]
            cells.append(f"{m.upper()} {np.mean([r['acc_drop'] for r in sel]):.3f} / "
                         f"{np.mean([r['poison_success'] for r in sel]):.2f}")
        print(f"{d:>16}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
