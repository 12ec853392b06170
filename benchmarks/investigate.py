"""``deltainf investigate`` on held-out cases made the way an analyst meets them (issue #13's bar): CIFAR-10
images written as a folder, a 4×4 patch planted on victim-class images relabelled to a target, a conv-BN model
of the user's own code (benchmarks/user_convbn.py) trained with a plain loop and saved as safetensors, and one
triggered test image. Default settings; then EU and CF with --until-clean, their weights loaded back into the
user's model.

    python benchmarks/investigate.py [--seeds 0 1 2] [--per-class 200] [--poisons 50] [--epochs 20] [--npz PATH]

Prints, per seed: the query's prediction; the refined Δ-Influence's (the default's) and plain Δ-Influence's
flags, recall of the planted files and precision; and for EU and CF (on the default's flags) the trigger's
success on the victim's triggered test images and the clean accuracy before/after.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests"), str(HERE.parent / "tests" / "case")]

from cifar_folder import NPZ  # noqa: E402
from poisoned_folder import patch, train_plain, write_case  # noqa: E402

import user_convbn  # noqa: E402
from deltainf.cli import main as cli  # noqa: E402


def cifar_subset(npz: Path, per_class_train: int, per_class_test: int, seed: int):
    from PIL import Image

    d = np.load(npz, allow_pickle=False)
    rng = np.random.default_rng([seed, 101])
    out = []
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        blob, off, labels = d[f"{split}_jpeg"], d[f"{split}_offsets"], d[f"{split}_labels"]
        idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per] for c in range(10)]))
        x = np.stack([np.asarray(Image.open(io.BytesIO(blob[off[i]:off[i + 1]].tobytes())).convert("RGB"))
                      for i in idx]).transpose(0, 3, 1, 2)
        out += [x, labels[idx].astype(np.int64)]
    return (*out, [str(c) for c in d["classes"]])


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x).float() / 255).argmax(1).numpy() == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--poisons", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--augment", action="store_true", help="train the user's model with random flips")
    ap.add_argument("--npz", type=Path, default=NPZ)
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    if not a.npz.exists():
        sys.exit(f"{a.npz} is absent: pass --npz PATH to the CIFAR-10 JPEG archive")
    work = a.work or Path(tempfile.mkdtemp(prefix="deltainf-investigate-"))
    print(f"{'seed':>4} {'v→t':>5} {'query':>6} {'flagged':>7} {'recall':>6} {'prec':>5} {'Δ flag':>6} {'Δ rec':>5} "
          f"{'Δ prec':>6} {'acc':>6} {'EU ps':>6} {'EU acc':>6} {'CF ps':>6} {'CF acc':>6} {'secs':>5}", flush=True)
    for seed in a.seeds:
        start = time.perf_counter()
        rng = np.random.default_rng([seed, 7])
        victim, target = (int(c) for c in rng.choice(10, 2, replace=False))
        x_tr, y_tr, x_te, y_te, classes = cifar_subset(a.npz, a.per_class, 50, seed)
        base = work / f"seed{seed}"
        info = write_case(base / "folder", x_tr, y_tr, x_te, y_te, classes, victim, target, a.poisons, seed=seed,
                          trigger=patch(4))
        torch.manual_seed(seed)
        model = train_plain(user_convbn.build(10), base / "folder", 32, epochs=a.epochs, seed=seed, augment=a.augment)
        from safetensors.torch import load_file, save_file

        save_file(model.state_dict(), str(base / "weights.safetensors"))
        # The analyst's test image: a triggered victim image the model sends to the target (the trigger fires).
        with torch.no_grad():
            fired = np.flatnonzero(model(torch.from_numpy(info["triggered"]).float() / 255).argmax(1).numpy() == target)
        if len(fired) == 0:
            print(f"{seed:>4} the trigger fires on no test image: the attack did not implant")
            continue
        from PIL import Image

        Image.fromarray(info["triggered"][fired[0]].transpose(1, 2, 0)).save(info["query"])
        (base / "known.txt").write_text("\n".join(info["poisons"]))
        spec = f"{HERE / 'user_convbn.py'}:build"
        rc = cli(["investigate", "--data-root", str(base / "folder"), "--model", spec, "--weights",
                  str(base / "weights.safetensors"), "--query", str(info["query"]), "--known-poisons",
                  str(base / "known.txt"), "--unlearn", "eu,cf", "--until-clean", "--weights-out", str(base / "out"),
                  "--json", str(base / "r.json"), "--cache-dir", str(work / "cache"), "--quiet"])
        if rc:
            print(f"{seed:>4} investigate failed ({rc})")
            continue
        r = json.loads((base / "r.json").read_text())
        d, plain = r["detectors"]["delta_refined"], r["detectors"]["delta_influence"]  # the default: refined first
        triggered = info["triggered"]
        row = [f"{seed:>4}", f"{victim:>2}→{target:<2}", f"{classes[r['query']['predicted']][:6]:>6}",
               f"{d['n_flagged']:>7}", f"{d['tpr']:>6.2f}", f"{d['precision']:>5.2f}", f"{plain['n_flagged']:>6}",
               f"{plain['tpr']:>5.2f}", f"{plain['precision']:>6.2f}",
               f"{accuracy(model, x_te, y_te):>6.3f}"]
        for method in ("eu", "cf"):
            m = user_convbn.build(10)
            m.load_state_dict(load_file(r["unlearn"][method]["weights"]))
            m.eval()
            with torch.no_grad():
                ps = float((m(torch.from_numpy(triggered).float() / 255).argmax(1) == target).float().mean())
            row += [f"{ps:>6.2f}", f"{accuracy(m, x_te, y_te):>6.3f}"]
        print(" ".join(row) + f" {time.perf_counter() - start:>5.0f}", flush=True)
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
