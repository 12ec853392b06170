"""Peak memory and time of one run through ``imagefolder`` (small CNN, 1 epoch, T = 5, CPU: train, EK-FAC factors,
scores, Δ-Influence's flags), with the training
images held in memory (``--stream off``) and read from disk a batch at a time (``--stream on``), for each folder
given. Each run is its own process with a fresh cache; its peak RSS comes from ``wait4`` (the kernel's own
figure, decoding workers included), its stage times from the experiment's timings. Prints a table and the ratios the issue
asks for (peak RSS of the largest folder over the smallest, per mode; streamed over in-memory).

    python benchmarks/stream.py FOLDER [FOLDER ...] [--modes off on] [--epochs 1] [--transforms 5]

Write test folders from the CIFAR-10 archive with ``tests/cifar_folder.write_cifar_imagefolder`` (per_class_train
500 → 5,000 images, 5000 → 50,000).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


CHILD = """
import json, sys
from deltainf import Config, Experiment
folder, mode, epochs, transforms, cache, out = sys.argv[1:]
exp = Experiment(Config(dataset="imagefolder", data_root=folder, epochs=int(epochs), transforms=int(transforms),
                        stream=mode, cache_dir=cache))
flagged = exp.investigation.detect("delta_influence").flagged  # whether or not the attack implanted in one epoch
json.dump({"n_train": len(exp.data.y_train), "implanted": bool(exp.implanted), "n_flagged": int(flagged.sum()),
           **exp.timings.seconds}, open(out, "w"))
"""


def one_run(folder: str, mode: str, epochs: int, transforms: int) -> dict:
    """One process: train, fit factors, score T + 1 queries, flag (Δ-Influence); its peak RSS and times."""
    with tempfile.TemporaryDirectory(prefix="deltainf-stream-") as cache:
        out = Path(cache) / "run.json"
        argv = [sys.executable, "-c", CHILD, folder, mode, str(epochs), str(transforms), cache, str(out)]
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"{folder} --stream {mode} failed:\n{proc.stderr.read()}")
        r = json.loads(out.read_text())
    return {"folder": folder, "mode": mode, "peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": wall, **r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--modes", nargs="+", default=["off", "on"], choices=["off", "on"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--transforms", type=int, default=5)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    rows = []
    print(f"{'images':>7} {'mode':>4} {'peak RSS MB':>11} {'wall s':>7} {'train':>6} {'factors':>7} {'scores':>6}",
          flush=True)
    for folder in a.folders:
        for mode in a.modes:
            r = one_run(folder, mode, a.epochs, a.transforms)
            rows.append(r)
            print(f"{r['n_train']:>7,} {mode:>4} {r['peak_rss_mb']:>11.0f} {r['wall_s']:>7.1f} {r['train_s']:>6.1f} "
                  f"{r['factors_s']:>7.1f} {r['scores_s']:>6.1f}", flush=True)
    for mode in a.modes:
        of = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["n_train"])
        if len(of) > 1:
            lo, hi = of[0], of[-1]
            print(f"--stream {mode}: {hi['n_train']:,} vs {lo['n_train']:,} images: peak RSS ×"
                  f"{hi['peak_rss_mb'] / lo['peak_rss_mb']:.2f} (+{hi['peak_rss_mb'] / lo['peak_rss_mb'] - 1:.0%}), "
                  f"time ×{hi['wall_s'] / lo['wall_s']:.1f}")
    for folder in a.folders:
        by = {r["mode"]: r for r in rows if r["folder"] == folder}
        if len(by) == 2:
            print(f"{by['on']['n_train']:,} images: streamed / in memory: peak RSS ×"
                  f"{by['on']['peak_rss_mb'] / by['off']['peak_rss_mb']:.2f}, time ×"
                  f"{by['on']['wall_s'] / by['off']['wall_s']:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
