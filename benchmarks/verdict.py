"""The verdict on honest mistakes and on poisoned test images: how often it accuses without cause, how often it misses.

Built-in digits experiments (BadNet, frequency, Witches' Brew, blended) at the given seeds. Each gives one poisoned
query (the experiment's triggered test image) and two honest mistakes of the same model: its most confident error and
a seeded random one, both sent to a class other than the attack's target (no poison is behind them). With
``--cifar``, also user-style folders written from the CIFAR-10 file in ../shared/data (400 images a class): a clean
one (the conv-BN model of benchmarks/user_convbn.py trained on it with a plain loop; its most confident and a random
error) and one with a blended trigger planted by this script (150 dirty-label poisons, α = 0.15; the triggered query).

    python benchmarks/verdict.py [--seeds 0 1 2] [--attacks badnet,frequency,witches_brew,blended] [--cifar]
    python benchmarks/verdict.py --seeds 1 --attacks "" --cifar     # the CIFAR-10 folders only (--cifar blended: one)
    python benchmarks/verdict.py --seeds 17 --attacks "" --cifar-subset badnet,frequency
    python benchmarks/verdict.py --seeds 56 --attacks "" --cifar-subset blended --set poison_count=200

With ``--cifar-subset``, the same experiments on a CIFAR-10 subset read through imagefolder (200 images a class, the
built-in recipe; an attack that does not implant still gives its two honest mistakes).

Prints one row per query (verdict, evidence, its parts — flip, relabelling, transfer — the trace, seconds; on
poisoned ones the refined rule's and Δ-Influence's TPR / precision and exact unlearning of what is accused) and the
false-accusation and miss rates. A triggered test
image that a model retrained without the poisons still gives the target (the trigger alone fools it: the 16×16
digits' frequency trigger can) has no poisoning behind it to find; it is marked and counted apart from the misses.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent / "tests" / "case")]

from deltainf.config import CaseConfig, Config  # noqa: E402
from deltainf.experiment import Experiment  # noqa: E402
from deltainf.evaluation.metrics import poison_success  # noqa: E402
from deltainf.models.training import predict_logits  # noqa: E402
from deltainf.options import value_type  # noqa: E402


def honest_errors(model, x, y, device, seed: int, avoid: int | None = None) -> list[tuple[str, int]]:
    """(kind, index) of the most confident error and a seeded random one (sent to a class other than ``avoid``)."""
    probs = torch.softmax(predict_logits(model, x, device), 1).numpy()
    wrong = np.flatnonzero((probs.argmax(1) != y) & (probs.argmax(1) != (-1 if avoid is None else avoid)))
    if not len(wrong):
        return []
    conf = int(wrong[np.argmax(probs[wrong].max(1))])
    rand = int(np.random.default_rng([seed, 99]).choice(wrong))
    return [("confident error", conf)] + ([("random error", rand)] if rand != conf else [])


def row(name: str, poisoned: bool, inv, start: float, truth: np.ndarray | None = None, trigger=None) -> dict:
    """One query's verdict; with the poisons' mask ``truth``, the refined rule's and Δ-Influence's TPR / precision;
    with ``trigger`` = (triggered victim images, target) for a folder the benchmark planted, poison success after EU
    and without every poison (the trigger alone)."""
    v = inv.verdict()
    p = v.parts
    found, caused = "", poisoned
    if truth is not None:
        # Ground truth, evaluation only: does a model retrained without the poisons still give the test image its
        # label (P ≥ ½, as the verdict asks)? Then the trigger alone fools it, and no poisoning is behind it to find.
        caused = inv.unlearning.query_without(truth) < 0.5
        found += "" if caused else "  (a model without the poisons still gives it its label at P ≥ ½: not their doing)"
        for name_, det in (("refined", "delta_refined"), ("Δ", "delta_influence")):
            flagged = inv.detect(det).flagged
            hits = int((flagged & truth).sum())
            found += f"  {name_} {hits / max(truth.sum(), 1):.2f}/{hits / max(flagged.sum(), 1):.2f}"
        accused = inv.accused(inv.detect("delta_refined").flagged)
        if accused.any():  # exact unlearning of what is accused (the refined rule's model: cached)
            before = inv.unlearning.evaluate(inv.model.module, inv.model.key).get("clean_acc", float("nan"))
            after = inv.unlearning.unlearn("eu", accused)[1]
            found += (f"  EU: accuracy {before:.3f} → {after.get('clean_acc', float('nan')):.3f}, test image "
                      f"{'keeps' if after['query_pred'] == inv.query.label else 'leaves'} its label"
                      + (f", poison success {after['poison_success']:.2f}" if "poison_success" in after else ""))
            if trigger is not None:
                x, target, device = torch.from_numpy(trigger[0]), trigger[1], inv.unlearning.device
                found += "".join(f"{what}{poison_success(module, x, target, device):.2f}" for what, module in (
                    (", poison success ", inv.model.module), (" → ", inv.unlearning.unlearn("eu", accused)[0]),
                    (" (without every poison: ", inv.unlearning.retrained_without(truth)))) + ")"
    print(f"{name:<34} {'poisoned' if poisoned else 'honest':>8} {'POISONED' if v.poisoned else 'no evidence':>11} "
          f"{v.score:>6.2f} {p.get('n_suspects', 0):>5} {p.get('flip', 0):>6.1f} {p.get('relabelling', 0):>6.2f} "
          f"{p.get('transfer', 0):>6.2f} {p.get('trace') or '-':>9} {time.perf_counter() - start:>6.0f}{found}",
          flush=True)
    return {"poisoned": poisoned, "said": v.poisoned, "caused": caused}


def experiment_rows(seeds, attacks, cache: str, data: dict | None = None, name: str = "digits",
                    with_honest: bool = True, settings: dict | None = None) -> list[dict]:
    """Each attack's triggered test image and (``with_honest``) two honest mistakes of its model, on the built-in
    digits or on the data source ``data`` (Config fields), with the Config fields ``settings`` (``--set``)."""
    out = []
    for attack in attacks:
        for seed in seeds:
            start = time.perf_counter()
            cfg = Config(attack=attack, seed=seed, cache_dir=cache, **(data or {}), **(settings or {}))
            exp = Experiment(cfg)
            if not exp.implanted:
                print(f"{name} {attack} seed {seed}: did not implant ({exp.implant_problem})")
            else:
                out.append(row(f"{name} {attack} s{seed} triggered", True, exp.investigation, start,
                               exp.poisoned.is_poison))
            if not with_honest:
                continue
            d = exp.poisoned.data
            for kind, i in honest_errors(exp.model, d.x_test, d.y_test.numpy(), exp.device, seed, exp.poisoned.target):
                start = time.perf_counter()
                honest = Experiment(cfg, store=exp.store, query_image=d.x_test[i])
                out.append(row(f"{name} {attack} s{seed} {kind}", False, honest.investigation, start))
    return out


def cifar_subset(work: Path) -> dict | None:
    """Config fields of a CIFAR-10 subset read through imagefolder (200 training and 50 test images a class, written
    from ../shared/data once); None when the file is absent."""
    from cifar_folder import NPZ, write_cifar_imagefolder

    if not NPZ.exists():
        print(f"{NPZ} is absent: the CIFAR-10 subset is skipped")
        return None
    root = work / "cifar200"
    if not (root / "train").exists():
        write_cifar_imagefolder(root, per_class_train=200, per_class_test=50)
    return {"dataset": "imagefolder", "data_root": str(root), "image_size": 32}


def cifar_rows(seeds, cache: str, work: Path, kinds=("clean", "blended")) -> list[dict]:
    from PIL import Image
    from safetensors.torch import save_file

    import user_convbn
    from cifar_folder import NPZ
    from deltainf.case import Case
    from investigate import cifar_subset
    from poisoned_folder import train_plain, write_case

    if not NPZ.exists():
        print(f"{NPZ} is absent: the CIFAR-10 rows are skipped")
        return []
    out = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 7])
        victim, target = (int(c) for c in rng.choice(10, 2, replace=False))
        x_tr, y_tr, x_te, y_te, classes = cifar_subset(NPZ, 400, 50, seed)
        pattern = np.random.default_rng([seed, 55]).integers(0, 256, (32, 32, 3)).astype(np.float64)

        def blend(x):
            return np.clip(0.85 * x + 0.15 * pattern, 0, 255).round().astype(np.uint8)

        for kind, n_poison in [(k, n) for k, n in (("clean", 0), ("blended", 150)) if k in kinds]:
            start = time.perf_counter()
            base = work / f"{kind}{seed}"
            info = write_case(base / "folder", x_tr, y_tr, x_te, y_te, classes, victim, target, n_poison, seed=seed,
                              trigger=blend)
            torch.manual_seed(seed)
            model = train_plain(user_convbn.build(10), base / "folder", 32, epochs=20, seed=seed)
            save_file(model.state_dict(), str(base / "w.safetensors"))
            if n_poison:
                with torch.no_grad():
                    fired = np.flatnonzero(model(torch.from_numpy(info["triggered"]).float() / 255).argmax(1).numpy()
                                           == target)
                if not len(fired):
                    print(f"cifar blended seed {seed}: did not implant")
                    continue
                queries = [("triggered", info["triggered"][fired[0]], True)]
            else:
                queries = [(k, x_te[i], False) for k, i in honest_errors(model, torch.from_numpy(x_te), y_te,
                                                                        torch.device("cpu"), seed)]
            for name, image, poisoned in queries:
                path = base / f"{name.replace(' ', '_')}.png"
                Image.fromarray(image.transpose(1, 2, 0)).save(path)
                case = Case(CaseConfig(data_root=str(base / "folder"), model=f"{HERE / 'user_convbn.py'}:build",
                                       weights=str(base / "w.safetensors"), query=str(path), cache_dir=cache,
                                       seed=seed))
                paths = case.investigation.data.train_paths
                truth = np.isin(paths, info["poisons"]) if poisoned and paths is not None else None
                out.append(row(f"cifar {kind} s{seed} {name}", poisoned, case.investigation, start, truth,
                               (info["triggered"], target) if poisoned else None))
                start = time.perf_counter()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--attacks", default="badnet,frequency,witches_brew,blended")
    ap.add_argument("--cifar", nargs="?", const="clean,blended", default="",
                    help="also the CIFAR-10 user-style folders, or those named: clean, blended (slow: minutes each)")
    ap.add_argument("--cifar-subset", nargs="?", const="badnet,frequency,blended", default="",
                    help="also these attacks on a CIFAR-10 subset through imagefolder (the built-in recipe; slow)")
    ap.add_argument("--triggered-only", action="store_true",
                    help="only the experiments' triggered test images (no honest mistakes; the refined rule's figures)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--set", nargs="+", default=[], help="OPTION=VALUE experiment settings (e.g. poison_count=200)")
    a = ap.parse_args()
    settings = {k: value_type(Config, k)[0](v) for k, v in (kv.split("=", 1) for kv in a.set)}
    work = Path(tempfile.mkdtemp(prefix="deltainf-verdict-"))
    cache = a.cache_dir or str(work / "cache")
    print(f"{'query':<34} {'truth':>8} {'verdict':>11} {'score':>6} {'susp':>5} {'flip':>6} {'relab':>6} "
          f"{'transf':>6} {'trace':>9} {'secs':>6}  TPR/precision")
    attacks = [x for x in a.attacks.split(",") if x]
    rows = experiment_rows(a.seeds, attacks, cache, with_honest=not a.triggered_only, settings=settings)
    if a.cifar_subset and (subset := cifar_subset(work)):
        rows += experiment_rows(a.seeds, [x for x in a.cifar_subset.split(",") if x], cache, subset, "cifar subset",
                                not a.triggered_only, settings)
    if a.cifar:
        rows += cifar_rows(a.seeds, cache, work, a.cifar.split(","))
    honest = [r for r in rows if not r["poisoned"]]
    poisoned = [r for r in rows if r["poisoned"]]
    if honest:
        print(f"false accusations: {sum(r['said'] for r in honest)} of {len(honest)} honest mistakes "
              f"({sum(r['said'] for r in honest) / len(honest):.0%})")
    caused = [r for r in poisoned if r["caused"]]
    if caused:
        missed = sum(not r["said"] for r in caused)
        print(f"misses: {missed} of {len(caused)} poisoned test images ({missed / len(caused):.0%})"
              + (f"; {len(poisoned) - len(caused)} more the trigger alone fools (a model without the poisons gives "
                 f"them the same label), called poisoned on {sum(r['said'] for r in poisoned if not r['caused'])}"
                 if len(caused) < len(poisoned) else ""))


if __name__ == "__main__":
    main()
