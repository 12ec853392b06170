"""Turn a pipeline's results into the JSON report, the CLI summary and the flagged-set CSV."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np

from .detect import delta_matrix, drop_counts


def _clean(x):
    """NaN → None so the JSON stays standard."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    return x


def unlearn_detector(pipe) -> str:
    """Whose flags are unlearned: Δ-Influence when it ran, else the first detector."""
    names = pipe.config.detectors
    return "delta_influence" if "delta_influence" in names else names[0]


def run_report(pipe) -> dict:
    """Run every configured stage of ``pipe`` and collect the figures (schema in README)."""
    pipe.validate()
    p = pipe.poisoned
    model_metrics = pipe.model_metrics
    detectors = {}
    start = time.perf_counter()
    for name in (pipe.config.detectors if pipe.implanted else ()):
        detectors[name] = pipe.detection_report(name)
    detect_s = time.perf_counter() - start - pipe.timings.get("scores_s", 0.0) - pipe.timings.get("factors_s", 0.0)
    unlearn = {}
    if pipe.config.unlearn and pipe.implanted:
        det_name = unlearn_detector(pipe)
        flagged = pipe.detect(det_name).flagged
        for method in pipe.config.unlearn:
            if pipe.config.until_clean:
                _, metrics = pipe.unlearn_until_clean(method, flagged)
            else:
                _, metrics = pipe.unlearn(method, flagged)
            unlearn[method] = {"detector": det_name, **metrics}
    counterfactual = {}
    if pipe.config.counterfactual and pipe.implanted:
        det_name = unlearn_detector(pipe)
        flagged = pipe.detect(det_name).flagged
        for name, removed in (("without_detected", flagged & pipe.is_poison), ("without_missed", ~flagged & pipe.is_poison)):
            _, metrics = pipe.unlearn("eu", removed)
            counterfactual[name] = {"detector": det_name, "n_removed": metrics["n_removed"],
                                    "clean_acc": metrics["clean_acc"], "poison_success": metrics["poison_success"]}
    t = pipe.timings
    return _clean({
        "config": pipe.resolved_config(),
        "data": {"n_train": int(len(p.data.y_train)), "n_test": int(len(p.data.y_test)), "n_poison": int(len(p.poison_idx)),
                 "victim": p.victim, "target": p.target, "test_index": pipe.test_index,
                 "query_label": pipe.query_label, "classes": p.data.classes},
        "model": {"clean_acc": model_metrics["clean_acc"], "poison_success": model_metrics["poison_success"],
                  "implanted": pipe.implanted, "implant_problem": pipe.implant_problem},
        "detectors": detectors,
        "unlearn": unlearn,
        **({"counterfactual": counterfactual} if counterfactual else {}),
        "timings": {"train_s": t.get("train_s", 0.0), "factors_s": t.get("factors_s", 0.0),
                    "scores_s": t.get("scores_s", 0.0), "detect_s": max(detect_s, 0.0),
                    "unlearn_s": t.get("unlearn_s", 0.0)},
        "cached": dict(pipe.cached),
    })


def _fmt(x, spec=".3f"):
    return "n/a" if x is None else format(x, spec)


def summary_lines(report: dict) -> list[str]:
    """A short human summary of a run report."""
    d, m, t, c = report["data"], report["model"], report["timings"], report["config"]
    lines = [
        f"Δ-Influence on {c['dataset']}: {d['n_train']} training / {d['n_test']} test images, "
        f"{c['attack']} with {d['n_poison']} poisons, class {d['victim']} → {d['target']}",
        f"model   clean accuracy {_fmt(m['clean_acc'])}  poison success {_fmt(m['poison_success'])}   "
        f"[train {t['train_s']:.1f} s]",
        f"query   triggered test image #{d['test_index']}, predicted {d['query_label']}; "
        f"T = {c['transforms']} ({c['mode']})   [factors {t['factors_s']:.1f} s, scores {t['scores_s']:.1f} s]",
    ]
    if not m.get("implanted", True):
        why = m.get("implant_problem") or f"poison success {_fmt(m['poison_success'])} < 0.5"
        lines.append(f"the attack did not implant ({why}): detection would be meaningless, so none ran; "
                     f"try more data (--n-train), poisons (--poison-count) or epochs (--epochs)")
        return lines
    lines.append(f"{'detector':<18}{'TPR':>6}{'precision':>11}{'flagged':>9}")
    for name, r in report["detectors"].items():
        extra = f"   τ = {r['tau']:.4g}, k = {r['k']}{' (suggested)' if r.get('suggested') else ''}" if "tau" in r else ""
        lines.append(f"{name:<18}{_fmt(r['tpr'], '.2f'):>6}{_fmt(r['precision'], '.2f'):>11}{r['n_flagged']:>9}{extra}")
    for name, r in report.get("counterfactual", {}).items():
        lines.append(f"retrain {name.replace('_', ' ')} poisons ({r['n_removed']} removed): poison success "
                     f"{_fmt(r['poison_success'])}, clean accuracy {_fmt(r['clean_acc'])}")
    for method, r in report["unlearn"].items():
        rounds = f", {r['rounds']} round(s), test image {'clean' if r['clean'] else 'still poisoned'}" if "rounds" in r else ""
        lines.append(f"unlearn {method} ({r['detector']} flags, {r['n_removed']} removed{rounds}): clean accuracy "
                     f"{_fmt(r['clean_acc'])}, poison success {_fmt(r['poison_success'])}   [{r['seconds']:.1f} s]")
    return lines


def write_flagged_csv(pipe, detector: str, path: Path) -> None:
    """Flagged training indices with their drop count #{t: Δ < τ}, mean Δ, label and ground truth."""
    det = pipe.detect(detector)
    mode = det.params.get("mode", pipe.config.mode)
    delta = delta_matrix(pipe.scores(mode))
    counts = drop_counts(delta, det.params.get("tau", 0.0))
    labels = pipe.poisoned.data.y_train.numpy()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "count", "T", "mean_delta", "is_poison"])
        for i in det.indices:
            w.writerow([int(i), int(labels[i]), int(counts[i]), delta.shape[0], f"{delta[:, i].mean():.6g}",
                        int(pipe.is_poison[i])])


def unlearning_grid(pipe, detectors, methods) -> list[dict]:
    """Each unlearning method on each detector's flags: clean accuracy and poison success after it (the
    paper's Figures 3–5 in one table). One row per (detector, method), in the order given."""
    rows = []
    for d in detectors:
        det = pipe.detect(d)
        for m in methods:
            _, after = pipe.unlearn(m, det.flagged)
            rows.append({"detector": d, "method": m, "n_flagged": int(det.flagged.sum()),
                         "clean_acc": float(after["clean_acc"]), "poison_success": float(after["poison_success"]),
                         "seconds": float(after["seconds"])})
    return rows
