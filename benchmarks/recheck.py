"""How well does the ground-truth-free re-check tell a model whose backdoor is gone from one whose backdoor lives?
(issue #14.) For each built-in configuration (BadNet and the frequency trigger, over seeds), each unlearning
method removes three flag sets — Δ-Influence's, a seeded half of them, and five of them — and the check's
verdict on the unlearned model is compared with the ground truth: poison success ≤ 0.1 is clean.

    python benchmarks/recheck.py [--attacks badnet frequency] [--seeds 0-9] [--methods eu,cf,ssd,scrub,badt]

Prints one row per unlearned model (the check's signals and verdict, poison success) and the confusion:
false clean (the check says clean, poison success > 0.1) and false alarm (the reverse).
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from deltainf import Config, Experiment
from suggestion import parse_seeds  # benchmarks/ is this script's folder


def _rate(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", nargs="+", default=["badnet", "frequency"])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--methods", default="eu,cf,ssd,scrub,badt")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--sets", type=int, default=3, help="flag sets per model: all; all, half; all, half, five")
    a = ap.parse_args()
    cache = a.cache_dir or tempfile.mkdtemp(prefix="deltainf-recheck-")
    counts = {"clean/clean": 0, "clean/alive": 0, "alive/clean": 0, "alive/alive": 0}
    print(f"{'attack':>9} {'seed':>4} {'method':>6} {'flags':>6} {'removed':>7} {'query':>5} {'P(y)':>6} "
          f"{'trig':>5} {'ref':>5} {'n':>3} {'fresh':>5} {'like':>4} {'verdict':>7} {'ps':>5} {'acc':>6}", flush=True)
    for attack in a.attacks:
        for seed in parse_seeds(a.seeds):
            exp = Experiment(Config(attack=attack, seed=seed, cache_dir=cache))
            if not exp.implanted:
                print(f"{attack:>9} {seed:>4}  not implanted", flush=True)
                continue
            inv = exp.investigation
            flags = exp.detect("delta_influence").flagged
            idx = np.flatnonzero(flags)
            rng = np.random.default_rng([seed, 5])
            sets = {"all": flags}
            for name, n in (("half", len(idx) // 2), ("five", min(5, len(idx))))[:a.sets - 1]:
                m = np.zeros_like(flags)
                m[rng.choice(idx, n, replace=False)] = True
                sets[name] = m
            for method in a.methods.split(","):
                for name, removed in sets.items():
                    model, m = inv.unlearning.unlearn(method, removed)
                    check, _ = inv.unlearning.recheck(model, removed, method)
                    truth = "alive" if m["poison_success"] > 0.1 else "clean"
                    verdict = "clean" if check["clean"] else "alive"
                    counts[f"{verdict}/{truth}"] += 1
                    print(f"{attack:>9} {seed:>4} {method:>6} {name:>6} {int(removed.sum()):>7} "
                          f"{'y' if m['query_pred'] == inv.query.label else 'no':>5} "
                          f"{check['query_target_prob']:>6.3f} {_rate(check['trigger_rate']):>5} {_rate(check['reference_rate']):>5} "
                          f"{check['n_lookalikes']:>3} {check['fresh_flags']:>5} {check['fresh_lookalikes']:>4} "
                          f"{verdict:>7} {m['poison_success']:>5.2f} "
                          f"{m['clean_acc']:>6.3f}", flush=True)
    alive = counts["clean/alive"] + counts["alive/alive"]
    clean = counts["clean/clean"] + counts["alive/clean"]
    print(f"\nfalse clean: {counts['clean/alive']} of {alive} models whose backdoor lives "
          f"({counts['clean/alive'] / max(1, alive):.0%}); false alarm: {counts['alive/clean']} of {clean} clean "
          f"models ({counts['alive/clean'] / max(1, clean):.0%})")


if __name__ == "__main__":
    main()
