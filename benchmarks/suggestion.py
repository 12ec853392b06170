"""The τ/k suggestion (no ground truth) against the best point of a τ × k grid (ground truth), and every
detector's F1, configuration by configuration (issue #4's bars). Prints per configuration: Δ-Influence
F1 at the suggested τ/k, the best grid F1 and their ratio, then each detector's F1 (the winner marked),
then the means. Seeds are a comma list or a range (``40-49``).

    python benchmarks/suggestion.py [--attacks badnet:10-14 frequency:0-4] [--cache-dir DIR]
    python benchmarks/suggestion.py --dataset imagefolder --data-root CIFAR_FOLDER --attacks badnet:0-2 frequency:0-2

History of the rule, so the figures can be read honestly: the first rule (deepest valley of the
count histogram over τ and k ≤ 3 together) was set on digits/BadNet seeds 0–4; it reached 0.93 of
the best F1 on 35 digits configurations but only 0.77 on the CIFAR subset, where at low τ a sparse
tail (few points, a "cleaner" ratio by chance) beat the tall pile of poisons. The current rule picks
τ by the significance of the pile at T and keeps the valley rule for k at that τ; it was chosen
among about a dozen variants looking at 44 configurations (digits BadNet 0–4, 10–14, 20–24, 30–34,
frequency 0–4, 10–14, 20–24; CIFAR seeds 0–4): mean 0.91 on the digits, 0.90 on CIFAR.

Held out afterwards (run once with the rule frozen, never used to change it; 2-core CPU, 2026-11-28):

* CIFAR subset, BadNet and frequency seeds 5–7 (``--attacks badnet:5-7 frequency:5-7``): mean 0.95,
  lowest 0.85, ≥ 0.8 on 6 of 6; Δ-Influence has the best F1 of all detectors on all 6.
* digits BadNet 40–49: mean 0.99, ≥ 0.8 on 10 of 10.
* digits frequency 40–49: mean 0.78, ≥ 0.8 on 4 of 10 (lowest 0.54). Where it falls short, clean
  points collapse too (on seeds 42–44 and 46, 9–36 clean points drop below −8·s on every copy), so
  even the best grid point's F1 is only 0.44–0.63.
* Witches' Brew (never part of the choice; seed 1 did not implant), seeds 0, 2, 3, 4: 0.76, 0.77,
  0.46, 1.00.

A variant was then tuned on all of the above (τ = 0 only when its pile is twice as significant as
any stricter τ's: τ = 0 also piles up points whose influence falls by a hair) and judged, with the
current rule, on fresh seeds (2026-11-28): current rule CIFAR 8–10 0.79 (3 of 5), digits BadNet
60–69 0.98 (9 of 9), frequency 60–69 0.82 (6 of 10), Witches' Brew 5–14 0.85 (4 of 5 implanted);
the variant 0.70 / 0.98 / 0.83 / 0.85 — worse overall (0.86 vs 0.87), so it was dropped. Over all 59
held-out configurations the current rule reaches 0.87 on average, ≥ 0.8 on 43.
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from deltainf import Config, Experiment
from deltainf.evaluation.metrics import detection_metrics
from deltainf.influence.delta import delta_flags, score_scale

GRID_TAU = (0.0, -0.05, -0.1, -0.25, -0.5, -1.0, -2.0, -4.0)  # × scale
GRID_K = tuple(range(0, 11))
DETECTORS = ("delta_influence", "delta_label_only", "delta_image_only", "ekfac", "actclust", "specsig", "freqdef")


def f1(flagged: np.ndarray, truth: np.ndarray) -> float:
    return detection_metrics(flagged, truth)["f1"]


def parse_seeds(text: str) -> list[int]:
    """``0,1,2`` or ``40-49`` (both ends included), or a mix: ``0-2,10``."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attacks", nargs="+", default=["badnet:10,11,12,13,14", "frequency:0,1,2,3,4"])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args()
    cache = a.cache_dir or tempfile.mkdtemp(prefix="deltainf-suggestion-")
    ratios, wins = [], {}
    names = " ".join(f"{d[:10]:>10}" for d in DETECTORS)
    print(f"{'attack':>10} {'seed':>4} {'sugg F1':>8} {'best F1':>8} {'ratio':>6}  {'best τ/k':>12}  | {names}")
    for spec in a.attacks:
        attack, seeds = spec.split(":")
        for seed in parse_seeds(seeds):
            pipe = Experiment(Config(dataset=a.dataset, data_root=a.data_root, attack=attack, seed=seed,
                                   cache_dir=cache, detectors=DETECTORS))
            if not pipe.implanted:
                print(f"{attack:>10} {seed:>4}  not implanted (poison success {pipe.model_metrics['poison_success']:.2f})")
                continue
            inv = pipe.investigation
            delta, truth = inv.delta(), pipe.is_poison
            scale = score_scale(inv.scores())
            tau, k, _ = inv.tau_k()
            sugg = f1(delta_flags(delta, tau, k), truth)
            grid = {(t, kk): f1(delta_flags(delta, t * scale, kk), truth)
                    for t in GRID_TAU for kk in GRID_K}
            (bt, bk), best = max(grid.items(), key=lambda kv: kv[1])
            ratio = sugg / best if best > 0 else float("nan")
            ratios.append(ratio)
            scores = {d: f1(pipe.detect(d).flagged, truth) for d in DETECTORS}
            winner = max(scores, key=scores.get)
            wins.setdefault(attack, []).append(winner)
            cells = " ".join(f"{scores[d]:>9.2f}{'*' if d == winner else ' '}" for d in DETECTORS)
            print(f"{attack:>10} {seed:>4} {sugg:>8.2f} {best:>8.2f} {ratio:>6.2f}  {f'{bt:+.2f}·s/{bk}':>12}  | {cells}",
                  flush=True)
    print(f"\nsuggested / best grid F1: mean {np.nanmean(ratios):.2f}, min {np.nanmin(ratios):.2f} over {len(ratios)} "
          f"configurations (grid τ ∈ {GRID_TAU}×scale, k ∈ 0..{GRID_K[-1]})")
    for attack, w in wins.items():
        print(f"best F1 on {attack}: " + ", ".join(f"{d} {w.count(d)}/{len(w)}" for d in dict.fromkeys(w)))


if __name__ == "__main__":
    main()
