"""``python -m deltainf`` (or ``deltainf``): the same engine as the app, for batch runs.

Its flags are generated from the option sections and the registries' settings (:mod:`deltainf.config`).

Every user mistake ends with exit code 2 and one line naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import dataclasses
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


def add_options(parser: argparse.ArgumentParser, sections, skip: tuple[str, ...] = ()) -> None:
    """One flag per option field of ``sections`` ((title, dataclass) pairs), with its help, choices and default."""
    from .config import own_fields
    from .options import flag, value_type

    for title, section, fields in own_fields(sections):
        group = None
        for f in fields:
            meta = f.metadata
            if f.name in skip or not meta.get("cli", True):
                continue
            group = group or parser.add_argument_group(title)
            kind, _ = value_type(section, f.name)
            text = meta["help"]
            if meta.get("choices") is not None and kind is not tuple:
                text += f": {' | '.join(map(str, meta['choices']))}"
            elif meta.get("choices") is not None:
                text += f": {', '.join(map(str, meta['choices']))}"
            if kind is bool:
                group.add_argument(flag(f.name), action="store_true", help=text.replace("%", "%%"))
                continue
            if f.default is not None and f.default != ():
                shown = ",".join(f.default) if kind is tuple else f.default
                text += f" (default {shown})"
            metavar = meta.get("metavar") or ("NAMES" if kind is tuple else "NAME" if meta.get("choices") is not None
                                              else {int: "N", float: "X"}.get(kind, "PATH"))
            group.add_argument(flag(f.name), type=_names if kind is tuple else kind, default=f.default,
                               metavar=metavar, help=text.replace("%", "%%"))


def build_parser() -> argparse.ArgumentParser:
    from .config import CaseConfig, Config

    parser = _Parser(prog="deltainf", description="Δ-Influence: find and unlearn data poisons with influence collapse.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="one experiment end to end (defaults: the built-in demo)",
                         usage="deltainf run [options]",
                         description="Train on poisoned data, score one poisoned test image and its T transformed "
                                     "copies, flag influence collapse, optionally unlearn.")
    add_options(run, Config.sections)
    g = run.add_argument_group("output")
    g.add_argument("--json", metavar="OUT.json", help="write every figure as JSON")
    g.add_argument("--flagged-out", metavar="OUT.csv", help="write the first detector's flagged training points as CSV")
    g.add_argument("--explain", action="store_true", help=EXPLAIN)
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    table = sub.add_parser("table", help="datasets × attacks × detectors over seeds (the paper's Table 1)",
                           usage="deltainf table [options]",
                           description="Mean ± sd of TPR, precision, F1 and poison success after EU over seeds (best "
                                       "F1 in bold); Markdown on stdout, and Markdown/CSV/JSON files with --out.")
    g = table.add_argument_group("the grid")
    g.add_argument("--datasets", type=_names, default=("digits",), help="comma-separated (default digits)")
    g.add_argument("--attacks", type=_names, default=("badnet",),
                   help="comma-separated, or all (every registered attack; default badnet)")
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    g.add_argument("--no-unlearn", action="store_true", help="skip EU after each detector")
    g.add_argument("--out", metavar="PREFIX", help="write PREFIX.md, PREFIX.csv and PREFIX.json")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_options(table, Config.sections, skip=TABLE_SETS)
    investigate = sub.add_parser(
        "investigate", help="your own folder, model and one misbehaving test image: suspects, report, clean model",
        usage="deltainf investigate --data-root DIR --model SPEC [--weights FILE] --query IMAGE [options]",
        description="Find the training images behind one misbehaving test image of your own model, as file paths; "
                    "optionally unlearn them. The data is used as it is (no attack is added).")
    add_options(investigate, CaseConfig.sections)
    g = investigate.add_argument_group("output")
    g.add_argument("--json", metavar="OUT.json", help="write every figure as JSON")
    g.add_argument("--flagged-out", metavar="OUT.csv",
                   help="write the suspect set (the flags unlearned: the refined Δ-Influence's when it runs first, else "
                        "Δ-Influence's, else the first detector's) as CSV (path, label, drop_count, T, mean_delta)")
    g.add_argument("--report", metavar="OUT.html", help="write one self-contained HTML report (opens offline)")
    g.add_argument("--explain", action="store_true", help=EXPLAIN)
    g.add_argument("--weights-out", metavar="DIR", help="write each unlearning method's weights as DIR/<method>"
                                                        ".safetensors, loadable with the same --model")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    for stage, what in STAGES.items():
        p = sub.add_parser(stage, help=f"{what} of a run or an investigation into the cache (torchrun: several GPUs)",
                           usage=f"[torchrun --nproc_per_node=N -m] deltainf {stage} {{run,investigate}} [options]",
                           description=f"{what[0].upper() + what[1:]} that `run` or `investigate` with the same options "
                                       "needs, written into the cache where they find it. Started by torchrun, the "
                                       "ranks share the work on GPUs (kronfluence's distributed path) and rank 0 "
                                       "writes.")
        of = p.add_subparsers(dest="of", parser_class=_Parser, required=True, metavar="{run,investigate}")
        for name, kind in (("run", Config), ("investigate", CaseConfig)):
            q = of.add_parser(name, help=f"with the options of `deltainf {name}`")
            add_options(q, kind.sections)
            q.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


EXPLAIN = ("tell Δ refined step by step: candidates, set aside, what a model trained without them says, given "
           "back, the test image's check")

#: The influence stages a torchrun can compute: command → what it writes.
STAGES = {"fit-factors": "the EK-FAC factors", "score": "the factors and the influence scores of the T + 1 queries"}


#: Options a table sets per cell itself (or has no use for).
TABLE_SETS = ("dataset", "attack", "seed", "unlearn", "until_clean", "max_rounds", "clean_below", "counterfactual",
              "test_index", "test_points")


def config_from_args(args, kind=None):
    """The Config (or ``kind``, e.g. CaseConfig) of the options parsed from ``args``; others keep their default."""
    from .config import Config

    kind = kind or Config
    fields = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in vars(args).items() if k in fields})


def table(args) -> None:
    """Run the grid of ``python -m deltainf table``."""
    from .attacks import ATTACKS
    from .evaluation.table import aggregate, markdown, run_cells, write
    from .progress import TqdmProgress

    base = config_from_args(args)
    attacks = tuple(ATTACKS) if args.attacks == ("all",) else args.attacks
    for d in args.datasets:  # validate every name before the first cell starts
        for a in attacks:
            base.replace(dataset=d, attack=a)
    if args.out:
        try:
            Path(args.out).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot create its folder ({exc.strerror})") from None
    progress = TqdmProgress(disable=args.quiet or not sys.stderr.isatty())
    rows = run_cells(base, args.datasets, attacks, base.detectors, args.seeds, unlearn=not args.no_unlearn,
                     progress=progress)
    summary = aggregate(rows)
    print(markdown(summary))
    if args.out:
        for path in write(summary, rows, Path(args.out).expanduser()):
            print(f"wrote {path}")


def _check_output(path: str | None, option: str) -> None:
    if path is None:
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ConfigError(f"{option} {path}: folder {parent} does not exist or is not writable")


def run(args) -> dict:
    """Run one experiment from parsed arguments; returns the JSON report."""
    from .evaluation.report import experiment_flagged_csv, run_report, steps_lines, summary_lines
    from .experiment import Experiment
    from .progress import TqdmProgress

    config = config_from_args(args)
    _check_output(args.json, "--json")
    _check_output(args.flagged_out, "--flagged-out")
    if args.flagged_out and not config.detectors:
        raise ConfigError("--flagged-out writes the first detector's flags, but --detectors is none")
    exp = Experiment(config, progress=TqdmProgress(disable=args.quiet or not sys.stderr.isatty()))
    report = run_report(exp)
    print("\n".join(summary_lines(report) + _explained(steps_lines(report), args.explain)))
    if args.json:
        Path(args.json).expanduser().write_text(json.dumps(report, indent=2))
    if args.flagged_out:
        if report["detectors"]:
            Path(args.flagged_out).expanduser().write_text(experiment_flagged_csv(exp, next(iter(report["detectors"]))))
            _note_unaccused(report, args.flagged_out)
        else:
            print(f"deltainf: note: {args.flagged_out} not written: no detector ran (the attack did not implant)",
                  file=sys.stderr)
    return report


def _explained(lines: list[str], explain: bool) -> list[str]:
    if explain and not lines:
        print("deltainf: note: --explain tells Δ refined's steps, and it did not run: add delta_refined to --detectors",
              file=sys.stderr)
    return lines if explain else []


def _note_unaccused(report: dict, path: str) -> None:
    if not report["verdict"]["poisoned"] and not report["config"]["despite_verdict"]:
        print(f"deltainf: note: {path} lists no file: the verdict finds no evidence of poisoning "
              "(--despite-verdict writes the exploration's flags)", file=sys.stderr)


def investigate(args) -> dict:
    """Investigate a user's own folder, model and test image; returns the JSON report."""
    from .case import Case
    from .config import CaseConfig
    from .evaluation import case_report
    from .evaluation.report import steps_lines
    from .progress import TqdmProgress

    config = config_from_args(args, CaseConfig)
    for path, option in ((args.json, "--json"), (args.flagged_out, "--flagged-out"), (args.report, "--report")):
        _check_output(path, option)
    if args.flagged_out and not config.detectors:
        raise ConfigError("--flagged-out writes the suspect set, but --detectors is none")
    weights_out = Path(args.weights_out).expanduser() if args.weights_out else None
    if weights_out is not None:
        try:
            weights_out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--weights-out {weights_out}: cannot create it ({exc.strerror})") from None
    case = Case(config, progress=TqdmProgress(disable=args.quiet or not sys.stderr.isatty()))
    report = case_report.investigate(case, weights_out)
    print("\n".join(case_report.summary_lines(report) + _explained(steps_lines(report), args.explain)))
    if args.json:
        Path(args.json).expanduser().write_text(json.dumps(report, indent=2))
    if args.flagged_out:
        Path(args.flagged_out).expanduser().write_text(case_report.case_flagged_csv(case))
        _note_unaccused(report, args.flagged_out)
    if args.report:
        from .evaluation.html_report import render

        Path(args.report).expanduser().write_text(render(case, report))
    return report


def influence_stage(args) -> None:
    """``fit-factors`` / ``score``: the influence stages of a run or an investigation, into the cache; under torchrun
    each rank runs this, rank 0 first through training (the others then find the model cached)."""
    from .case import Case
    from .config import CaseConfig
    from .detectors import CONFIGURED, needs
    from .experiment import Experiment
    from .influence import distributed
    from .progress import TqdmProgress

    config = config_from_args(args, CaseConfig if args.of == "investigate" else None)
    distributed.start(config.device)
    try:
        with distributed.main_first():
            progress = TqdmProgress(disable=args.quiet or not distributed.is_main() or not sys.stderr.isatty())
            source = (Case if args.of == "investigate" else Experiment)(config, progress=progress)
            if args.of == "run" and not source.implanted:
                raise ConfigError(f"the attack did not implant ({source.implant_problem}): `run` scores nothing here")
            inv = source.investigation
        modes = {config.mode if m == CONFIGURED else m for d in config.detectors for m in needs(d)["modes"]}
        if args.command == "fit-factors":
            done = f"EK-FAC factors: {inv.influence.factors()}"
        else:
            shapes = {m: inv.scores(m).shape for m in sorted(modes or {config.mode})}
            done = "influence scores cached (queries × training points): " + ", ".join(
                f"{m} {q}×{n}" for m, (q, n) in shapes.items())
        if distributed.is_main():
            print(done)
            print(f"cache: {source.store.root} ({distributed.world_size()} process"
                  f"{'es' if distributed.world_size() > 1 else ''}); `deltainf {args.of}` with the same options "
                  "picks them up")
    finally:
        distributed.stop()


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
        if args.command not in STAGES and int(os.environ.get("WORLD_SIZE", 1)) > 1:
            raise ConfigError(f"`{args.command}` runs in one process; under torchrun use `deltainf score "
                              f"{'investigate' if args.command == 'investigate' else 'run'} ...` (same options), then "
                              f"`python -m deltainf {args.command} ...` picks the scores up from the cache")
        from .device import configure_cpu_threads

        configure_cpu_threads()  # the app's rule too: same seed, same model and flagged set in both
        if args.command == "run":
            run(args)
        elif args.command == "table":
            table(args)
        elif args.command == "investigate":
            investigate(args)
        elif args.command in STAGES:
            influence_stage(args)
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
