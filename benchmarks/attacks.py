"""Does each attack implant on the built-in data? (issue #4's first bar)

Per attack (default: every registered one) and seed: clean accuracy and poison success of the model trained on the
poisoned set, and the seconds the attack + training took. For the triggers (BadNet, frequency, blended, WaNet, SIG)
poison success is the share of triggered victim-class test images sent to the target (bar: ≥ 0.8); for Witches' Brew
it is whether the one target test image goes to the adversarial class (bar: in at least half of
the seeds).

    python benchmarks/attacks.py [--attacks badnet wanet ...] [--seeds 0 1 2] [--cache-dir DIR]
        [--configs SEED:VICTIM:TARGET ...] [--set OPTION=VALUE ...] [--floor]

``--floor`` also retrains each model without every poison and prints its poison success: what the trigger does
alone, the floor no unlearning gets below (a learnt trigger can fool a model that never saw a poison).
``--configs`` replaces ``--seeds`` with explicit held-out configurations (victim/target pairs other than the
seed's draw); ``--set`` passes attack settings (e.g. ``brew_ensemble=4``).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from deltainf import Config, Experiment
from deltainf.attacks import ATTACKS
from deltainf.evaluation.metrics import poison_success
from deltainf.options import value_type


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--configs", nargs="+", default=None, help="SEED:VICTIM:TARGET")
    ap.add_argument("--set", nargs="+", default=[], help="OPTION=VALUE attack settings")
    ap.add_argument("--floor", action="store_true", help="also poison success without every poison (the trigger alone)")
    a = ap.parse_args()
    settings = {k: value_type(Config, k)[0](v) for k, v in (kv.split("=", 1) for kv in a.set)}
    cache = a.cache_dir or tempfile.mkdtemp(prefix="deltainf-attacks-")
    print(f"{'attack':>13} {'seed':>4} {'v→t':>5} {'poisons':>7} {'clean acc':>9} {'poison success':>14} {'secs':>6}"
          + (f" {'trigger alone':>13}" if a.floor else ""))
    for attack in a.attacks:
        ps = []
        configs = ([tuple(int(v) for v in c.split(":")) for c in a.configs] if a.configs
                   else [(seed, None, None) for seed in a.seeds])
        for seed, victim, target in configs:
            t0 = time.perf_counter()
            pipe = Experiment(Config(attack=attack, seed=seed, victim=victim, target=target, cache_dir=cache,
                                     **settings))
            m = pipe.model_metrics
            p = pipe.poisoned
            ps.append(m["poison_success"])
            secs = time.perf_counter() - t0
            alone = ""
            if a.floor:
                clean = pipe.investigation.unlearning.retrained_without(pipe.truth)
                alone = f" {poison_success(clean, p.x_trigger_test, p.target, pipe.device):>13.2f}"
            print(f"{attack:>13} {seed:>4} {p.victim:>2}→{p.target:<2} {len(p.poison_idx):>7} {m['clean_acc']:>9.3f} "
                  f"{m['poison_success']:>14.2f} {secs:>6.1f}{alone}", flush=True)
        ps = np.array(ps)
        print(f"{attack:>13} mean poison success {ps.mean():.2f}, seeds with ≥ 0.8: {(ps >= 0.8).sum()}/{len(ps)}, "
              f"with ≥ 0.5: {(ps >= 0.5).sum()}/{len(ps)}\n", flush=True)


if __name__ == "__main__":
    main()
