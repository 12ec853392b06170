"""``python -m deltainf``: the same pipeline as the app, for batch runs.

Every user mistake ends with exit code 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

from .errors import ConfigError, DeltaInfError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise ConfigError(f"{message} (see: python -m deltainf {self.prog.split()[-1]} --help)")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")


def build_parser() -> argparse.ArgumentParser:
    from .config import CORNERS, DATASETS, DEVICES, MODELS, MODES, TRIGGER_PATTERNS

    parser = _Parser(prog="deltainf", description="Δ-Influence: find and unlearn data poisons with influence collapse.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="one experiment end to end (defaults: the built-in demo)",
                         description="Train on poisoned data, score one poisoned test image and its T transformed "
                                     "copies, flag influence collapse, optionally unlearn.")
    g = run.add_argument_group("data and attack")
    g.add_argument("--dataset", default="digits", help=f"{' | '.join(DATASETS)} (default: digits, built in)")
    g.add_argument("--data-root", help="data folder (imagefolder: train/<class>/, test/<class>/)")
    g.add_argument("--n-train", type=int, help="seeded class-balanced subset of the training set")
    g.add_argument("--n-test", type=int, help="seeded class-balanced subset of the test set")
    g.add_argument("--image-size", type=int, default=32, help="imagefolder images are resized to this (default 32)")
    g.add_argument("--attack", default="badnet", help="poisoning attack (default badnet)")
    g.add_argument("--victim", type=int, help="victim class (default: drawn from the seed)")
    g.add_argument("--target", type=int, help="target class (default: drawn from the seed)")
    g.add_argument("--poison-count", type=int, help="poisoned training images (default ≈3.5%% of the data)")
    g.add_argument("--trigger-size", type=int, help="BadNet patch side in pixels")
    g.add_argument("--trigger-pattern", default="checker", help=" | ".join(TRIGGER_PATTERNS))
    g.add_argument("--trigger-corner", default="bottom-right", help=" | ".join(CORNERS))
    g = run.add_argument_group("model")
    g.add_argument("--model", default="cnn", help=f"{' | '.join(MODELS)} (default cnn)")
    g.add_argument("--epochs", type=int, help="training epochs (default: 12 cnn, 30 resnet18)")
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--seed", type=int, default=0, help="seeds every random choice (default 0)")
    g = run.add_argument_group("Δ-Influence")
    g.add_argument("--test-index", type=int, help="which triggered test image is the query (default: seeded pick)")
    g.add_argument("--transforms", type=int, default=50, metavar="T", help="transformed copies (default 50)")
    g.add_argument("--mode", default="full", help=f"{' | '.join(MODES)} (default full)")
    g.add_argument("--tau", type=float, help="τ: a Δ below τ counts as a drop (default: suggested from Δ)")
    g.add_argument("--k", type=int, help="flag when ≥ T − k copies drop (default: suggested from Δ)")
    g.add_argument("--damping", type=float, help="EK-FAC damping (default: heuristic)")
    g.add_argument("--ekfac-threshold", type=float, default=0.0, help="naive EK-FAC flags scores above this (default 0)")
    g.add_argument("--detectors", type=_names, default=("delta_influence", "ekfac"),
                   help="comma-separated (default delta_influence,ekfac)")
    g.add_argument("--unlearn", type=_names, default=(),
                   help="comma-separated unlearning methods: eu, cf, ssd, scrub, badt; or none (default none)")
    g.add_argument("--until-clean", action="store_true",
                   help="after unlearning, re-check the test image; while still poisoned, detect again and remove more")
    g.add_argument("--max-rounds", type=int, default=3, help="most detect → unlearn rounds with --until-clean (default 3)")
    g.add_argument("--ssd-alpha", type=float, help="SSD selection threshold α (default: picked from a grid)")
    g.add_argument("--ssd-lambda", type=float, default=1.0, help="SSD dampening constant λ (default 1)")
    g = run.add_argument_group("running")
    g.add_argument("--device", default="auto", help=f"{' | '.join(DEVICES)} (default auto)")
    g.add_argument("--cache-dir", help="cache folder (default $DELTAINF_CACHE_DIR or ~/.cache/deltainf)")
    g.add_argument("--json", metavar="OUT.json", help="write every figure as JSON")
    g.add_argument("--flagged-out", metavar="OUT.csv", help="write the flagged training points as CSV")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args):
    from .config import Config

    fields = {f for f in Config.__dataclass_fields__}
    return Config(**{k: v for k, v in vars(args).items() if k in fields})


def _check_output(path: str | None, option: str) -> None:
    if path is None:
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"{option} {path}: folder {parent} does not exist or is not writable")


def run(args) -> dict:
    """Run one experiment from parsed arguments; returns the JSON report."""
    from .pipeline import Pipeline
    from .progress import TqdmProgress
    from .report import run_report, summary_lines, write_flagged_csv

    config = config_from_args(args)
    _check_output(args.json, "--json")
    _check_output(args.flagged_out, "--flagged-out")
    pipe = Pipeline(config, progress=TqdmProgress(disable=args.quiet or not sys.stderr.isatty()))
    report = run_report(pipe)
    print("\n".join(summary_lines(report)))
    if args.json:
        Path(args.json).expanduser().write_text(json.dumps(report, indent=2))
    if args.flagged_out:
        first = next(iter(report["detectors"]))
        write_flagged_csv(pipe, first, Path(args.flagged_out).expanduser())
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        if args.command == "run":
            run(args)
        return 0
    except DeltaInfError as exc:
        print(f"deltainf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("deltainf: interrupted; finished stages stay cached, unfinished ones left nothing behind", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: still one line unless asked for more
        if os.environ.get("DELTAINF_DEBUG"):
            raise
        print(f"deltainf: internal error: {type(exc).__name__}: {exc} (set DELTAINF_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
