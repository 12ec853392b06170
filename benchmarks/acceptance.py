"""Δ-Influence on the built-in data over several seeds and victim/target pairs (issue #2's bar).

Prints one row per run and the means: clean accuracy and poison success before defence,
TPR/precision of Δ-Influence (defaults τ = 0, k = 0, T = 50) and naive EK-FAC, and poison
success after EU on Δ-Influence's flags.

    python benchmarks/acceptance.py [--seeds 0 1 2 3 4] [--cache-dir DIR]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from deltainf import Config, Experiment


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13, 14])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root")
    ap.add_argument("--n-train", type=int)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--unlearn", default="eu")
    a = ap.parse_args()
    cache = a.cache_dir or tempfile.mkdtemp(prefix="deltainf-acceptance-")
    rows = []
    print(f"{'seed':>4} {'v→t':>5} {'acc':>6} {'ps':>5} {'Δ TPR':>6} {'Δ prec':>7} {'EK prec':>8} {'ratio':>6} "
          f"{'EU ps':>6} {'EU acc':>7} {'secs':>5}")
    for seed in a.seeds:
        t0 = time.perf_counter()
        cfg = Config(dataset=a.dataset, data_root=a.data_root, n_train=a.n_train, seed=seed, cache_dir=cache,
                     unlearn=tuple(u for u in a.unlearn.split(",") if u))
        pipe = Experiment(cfg)
        m = pipe.model_metrics
        d = pipe.detection_report("delta_influence")
        e = pipe.detection_report("ekfac")
        flagged = pipe.detect("delta_influence").flagged
        u = pipe.investigation.unlearning.unlearn("eu", flagged)[1] if cfg.unlearn else {}
        ratio = d["precision"] / e["precision"] if e["precision"] else float("inf")
        row = dict(acc=m["clean_acc"], ps=m["poison_success"], tpr=d["tpr"], prec=d["precision"],
                   ek=e["precision"], ratio=ratio, eu_ps=u.get("poison_success", np.nan),
                   eu_acc=u.get("clean_acc", np.nan))
        rows.append(row)
        p = pipe.poisoned
        print(f"{seed:>4} {p.victim:>2}→{p.target:<2} {row['acc']:6.3f} {row['ps']:5.2f} {row['tpr']:6.2f} "
              f"{row['prec']:7.2f} {row['ek']:8.3f} {ratio:6.1f} {row['eu_ps']:6.2f} {row['eu_acc']:7.3f} "
              f"{time.perf_counter() - t0:5.0f}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"mean            {mean['acc']:6.3f} {mean['ps']:5.2f} {mean['tpr']:6.2f} {mean['prec']:7.2f} "
          f"{mean['ek']:8.3f} {mean['ratio']:6.1f} {mean['eu_ps']:6.2f} {mean['eu_acc']:7.3f}")
    print(f"poison success drop after EU: {mean['ps'] - mean['eu_ps']:.2f}")


if __name__ == "__main__":
    main()
