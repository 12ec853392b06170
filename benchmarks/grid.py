"""The detector grid of RESULTS.md: BadNet, the frequency trigger and Witches' Brew, every detector and ablation,
over seeds, on the built-in digits and on a CIFAR-10 subset (2,000 training / 500 test images, written as an
ImageFolder tree from the shared ``cifar10-jpeg.npz``), each through ``python -m deltainf table``.

    python benchmarks/grid.py [--seeds 0 1 2] [--datasets digits,cifar] [--attacks badnet,frequency,witches_brew]
        [--npz PATH] [--cache-dir DIR] [--out DIR] [--no-unlearn]

Measured on a 2-core CPU: the CIFAR subset's 3 seeds without EU took 8 min cold (`--no-unlearn`);
a re-run reads everything from the cache (one seed, 8 s).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cifar_folder import NPZ, write_cifar_imagefolder  # noqa: E402

from deltainf.cli import main as cli  # noqa: E402

DETECTORS = "delta_refined,delta_influence,delta_label_only,delta_image_only,ekfac,actclust,actclust_strict,specsig,freqdef"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    ap.add_argument("--datasets", default="digits,cifar")
    ap.add_argument("--attacks", default="badnet,frequency,witches_brew")
    ap.add_argument("--npz", type=Path, default=NPZ)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out", type=Path, default=None, help="folder for the Markdown/CSV/JSON of each table")
    ap.add_argument("--no-unlearn", action="store_true", help="skip EU after each detector")
    a = ap.parse_args()
    cache = Path(a.cache_dir or tempfile.mkdtemp(prefix="deltainf-grid-"))
    out = a.out or cache / "tables"
    common = ["--attacks", a.attacks, "--detectors", DETECTORS, "--seeds", *a.seeds,
              "--cache-dir", str(cache)] + (["--no-unlearn"] if a.no_unlearn else [])
    for dataset in a.datasets.split(","):
        if dataset == "digits":
            args = ["--datasets", "digits"]
        elif dataset == "cifar":
            if not a.npz.exists():
                sys.exit(f"{a.npz} is absent: pass --npz PATH to the CIFAR-10 JPEG archive")
            folder = cache / "cifar-subset"
            if not (folder / "test").exists():
                write_cifar_imagefolder(folder, per_class_train=200, per_class_test=50, npz=a.npz)
            args = ["--datasets", "imagefolder", "--data-root", str(folder)]
        else:
            sys.exit(f"unknown dataset {dataset!r}: digits or cifar")
        print(f"\n## {dataset}\n", flush=True)
        rc = cli(["table", *args, *common, "--out", str(out / dataset)])
        if rc:
            sys.exit(rc)


if __name__ == "__main__":
    main()
