"""``python -m deltainf``: the same pipeline as the app, for batch runs.

Every user mistake ends with exit code 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .errors import ConfigError, DeltaInfError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        command = " ".join(self.prog.split()[1:])  # "" for the top level, "run" or "table" below it
        raise ConfigError(f"{message} (see: python -m deltainf {command + ' ' if command else ''}--help)")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("give comma-separated names, or none")
    return () if names == ("none",) else names


def build_parser() -> argparse.ArgumentParser:
    from .config import ATTACK_NAMES, CORNERS, DATASETS, DETECTOR_NAMES, DEVICES, MODELS, MODES, TRIGGER_PATTERNS

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
    g.add_argument("--attack", default="badnet", help=f"{' | '.join(ATTACK_NAMES)} (default badnet)")
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
    g.add_argument("--transform-seed", type=int, help="seeds the T copies' draws (default: --seed)")
    g.add_argument("--tau", type=float, help="τ: a Δ below τ counts as a drop (default: suggested from Δ)")
    g.add_argument("--k", type=int, help="flag when ≥ T − k copies drop (default: suggested from Δ)")
    g.add_argument("--test-points", type=int, default=1,
                   help="known poisoned test points; detectors intersect their flags (default 1)")
    g.add_argument("--counterfactual", action="store_true",
                   help="retrain without the detected poisons and, apart, without the missed ones (paper Table 3)")
    g.add_argument("--damping", type=float, help="EK-FAC damping (default: heuristic)")
    g.add_argument("--ekfac-threshold", type=float, default=0.0, help="naive EK-FAC flags scores above this (default 0)")
    g.add_argument("--detectors", type=_names, default=("delta_influence", "ekfac"),
                   help=f"comma-separated, or none: {', '.join(DETECTOR_NAMES)} (default delta_influence,ekfac; "
                        "--flagged-out writes the first)")
    g.add_argument("--unlearn", type=_names, default=(),
                   help="comma-separated unlearning methods: eu, cf, ssd, scrub, badt; or none (default none)")
    g.add_argument("--until-clean", action="store_true",
                   help="after unlearning, re-check the test image; while still poisoned, detect again and remove more")
    g.add_argument("--max-rounds", type=int, default=3, help="most detect → unlearn rounds with --until-clean (default 3)")
    g.add_argument("--clean-below", type=float, default=0.01,
                   help="with --until-clean: the test image is clean once it is not predicted as the target and the "
                        "target's probability on it is at most this (default 0.01; 1 = the prediction alone)")
    g.add_argument("--ssd-alpha", type=float, help="SSD selection threshold α (default: picked from a grid)")
    g.add_argument("--ssd-lambda", type=float, default=1.0, help="SSD dampening constant λ (default 1)")
    g = run.add_argument_group("running")
    g.add_argument("--device", default="auto", help=f"{' | '.join(DEVICES)} (default auto)")
    g.add_argument("--precision", default="auto",
                   help="auto | fp32 | bf16: bf16 autocast for training and kronfluence (default auto: bf16 on a GPU)")
    g.add_argument("--cache-dir", help="cache folder (default $DELTAINF_CACHE_DIR or ~/.cache/deltainf)")
    g.add_argument("--json", metavar="OUT.json", help="write every figure as JSON")
    g.add_argument("--flagged-out", metavar="OUT.csv", help="write the flagged training points as CSV")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    table = sub.add_parser("table", help="datasets × attacks × detectors over seeds (the paper's Table 1)",
                           description="Mean ± sd of TPR, precision, F1 and poison success after EU over seeds (best F1 in bold); "
                                       "Markdown on stdout, and Markdown/CSV/JSON files with --out.")
    table.add_argument("--datasets", type=_names, default=("digits",), help="comma-separated (default digits)")
    table.add_argument("--attacks", type=_names, default=("badnet",),
                       help=f"comma-separated: {', '.join(ATTACK_NAMES)} (default badnet)")
    table.add_argument("--detectors", type=_names, default=("delta_influence", "ekfac"),
                       help=f"comma-separated: {', '.join(DETECTOR_NAMES)} (default delta_influence,ekfac)")
    table.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    table.add_argument("--no-unlearn", action="store_true", help="skip EU after each detector")
    for flag, kind, text in (("--data-root", str, "data folder (imagefolder, cifar10/100)"),
                             ("--n-train", int, "seeded class-balanced training subset"),
                             ("--n-test", int, "seeded class-balanced test subset"),
                             ("--epochs", int, "training epochs (default: the model's)"),
                             ("--poison-count", int, "poisoned training images (default ≈3.5%% of the data)"),
                             ("--transforms", int, "transformed copies T (default 50)"),
                             ("--model", str, f"{' | '.join(MODELS)} (default cnn)"),
                             ("--cache-dir", str, "cache folder (default $DELTAINF_CACHE_DIR or ~/.cache/deltainf)"),
                             ("--device", str, f"{' | '.join(DEVICES)} (default auto)")):
        table.add_argument(flag, type=kind, help=text)
    table.add_argument("--out", metavar="PREFIX", help="write PREFIX.md, PREFIX.csv and PREFIX.json")
    table.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def table(args) -> None:
    """Run the grid of ``python -m deltainf table``."""
    from .config import Config
    from .progress import TqdmProgress
    from .table import aggregate, markdown, run_cells, write

    given = {k: v for k, v in vars(args).items() if v is not None and k in Config.__dataclass_fields__
             and k not in ("detectors",)}
    base = Config(**given, detectors=args.detectors)
    for d in args.datasets:  # validate every name before the first cell starts
        for a in args.attacks:
            base.replace(dataset=d, attack=a)
    if args.out:
        try:
            Path(args.out).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot create its folder ({exc.strerror})") from None
    progress = TqdmProgress(disable=args.quiet or not sys.stderr.isatty())
    rows = run_cells(base, args.datasets, args.attacks, args.detectors, args.seeds, unlearn=not args.no_unlearn,
                     progress=progress)
    summary = aggregate(rows)
    print(markdown(summary))
    if args.out:
        for path in write(summary, rows, Path(args.out).expanduser()):
            print(f"wrote {path}")


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
    if args.flagged_out and not config.detectors:
        raise ConfigError("--flagged-out writes the first detector's flags, but --detectors is none")
    pipe = Pipeline(config, progress=TqdmProgress(disable=args.quiet or not sys.stderr.isatty()))
    report = run_report(pipe)
    print("\n".join(summary_lines(report)))
    if args.json:
        Path(args.json).expanduser().write_text(json.dumps(report, indent=2))
    if args.flagged_out:
        if report["detectors"]:
            write_flagged_csv(pipe, next(iter(report["detectors"])), Path(args.flagged_out).expanduser())
        else:
            print(f"deltainf: note: {args.flagged_out} not written: no detector ran (the attack did not implant)",
                  file=sys.stderr)
    return report


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"deltainf: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.showwarning = _warn_in_one_line  # e.g. a damaged cache entry: a line, not a source path
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        from .device import configure_cpu_threads

        configure_cpu_threads()  # the app's rule too: same seed, same model and flagged set in both
        if args.command == "run":
            run(args)
        elif args.command == "table":
            table(args)
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
