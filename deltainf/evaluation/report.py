"""An experiment's results as the JSON report and the CLI summary; the flagged-set CSV; the tables of every
detector and of unlearning after each detector."""
from __future__ import annotations

import math
import time

import numpy as np

from ..detectors import DETECTORS
from ..influence.delta import score_scale
from ..suspicion.suspects import SuspectSet, described
from ..verdict import HOLDS


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


def unlearn_detector(config) -> str:
    """Whose flags are unlearned: Δ-Influence when it ran, else the first detector (an investigation's default
    puts the refined Δ-Influence first: then its flags)."""
    names = config.detectors
    if names[0] == "delta_refined":
        return names[0]
    return "delta_influence" if "delta_influence" in names else names[0]


def run_report(exp) -> dict:
    """Run every configured stage of the experiment ``exp`` and collect the figures (schema in README)."""
    exp.validate()
    p, inv, c = exp.poisoned, exp.investigation, exp.config
    model_metrics = exp.model_metrics
    verdict = inv.verdict() if exp.implanted else None
    behind = _behind(exp) if verdict is not None and not verdict.poisoned else None
    detectors = {}
    start = time.perf_counter()
    for name in (c.detectors if exp.implanted else ()):
        detectors[name] = exp.detection_report(name)
    t = exp.timings.seconds
    detect_s = time.perf_counter() - start - t.get("scores_s", 0.0) - t.get("factors_s", 0.0)
    unlearn = {}
    if c.unlearn and exp.implanted:
        det_name = unlearn_detector(c)
        flagged = inv.accused(exp.detect(det_name).flagged)
        for method in c.unlearn if flagged.any() else ():
            if c.until_clean:
                _, metrics = inv.unlearning.until_clean(method, flagged)
            else:
                _, metrics = inv.unlearning.unlearn(method, flagged)
            unlearn[method] = {"detector": det_name, **metrics}
    counterfactual = {}
    if c.counterfactual and exp.implanted:
        det_name = unlearn_detector(c)
        flagged = exp.detect(det_name).flagged
        poisons = exp.is_poison
        for name, removed in (("without_detected", flagged & poisons), ("without_missed", ~flagged & poisons),
                              ("without_all", poisons)):
            _, metrics = inv.unlearning.unlearn("eu", removed)
            counterfactual[name] = {"detector": det_name, "n_removed": metrics["n_removed"],
                                    "clean_acc": metrics["clean_acc"], "poison_success": metrics["poison_success"]}
    return _clean({
        "config": exp.resolved_config(),
        "verdict": None if verdict is None else verdict.as_dict(),
        **({"behind_the_image": behind} if behind else {}),
        "data": {"n_train": int(len(p.data.y_train)), "n_test": int(len(p.data.y_test)), "n_poison": int(len(p.poison_idx)),
                 "victim": p.victim, "target": p.target, "test_index": exp.test_index,
                 "query_label": exp.query_label, "classes": p.data.classes},
        "model": {"clean_acc": model_metrics["clean_acc"], "poison_success": model_metrics["poison_success"],
                  "implanted": exp.implanted, "implant_problem": exp.implant_problem},
        "detectors": detectors,
        "unlearn": unlearn,
        **({"counterfactual": counterfactual} if counterfactual else {}),
        "timings": {"train_s": t.get("train_s", 0.0), "factors_s": t.get("factors_s", 0.0),
                    "scores_s": t.get("scores_s", 0.0), "detect_s": max(detect_s, 0.0),
                    "unlearn_s": t.get("unlearn_s", 0.0), "verdict_s": t.get("verdict_s", 0.0)},
        "cached": dict(exp.timings.cached),
    })


def _behind(exp) -> dict:
    """Ground truth, evaluation only: is there a poisoning behind the test image for the verdict to find — does a
    model retrained without every poison take its label away? (Its retraining is not unlearning's time.)"""
    seconds = exp.timings.seconds
    before = seconds.get("unlearn_s", 0.0)
    p_without = exp.investigation.unlearning.query_without(exp.is_poison)
    seconds["unlearn_s"] = before
    return {"p_without_poisons": round(p_without, 4), "poisons_behind": bool(p_without < HOLDS)}


def took(r: dict) -> str:
    """An unlearning's time, or that its model came from the cache."""
    return "from the cache" if r.get("cached") else f"{r['seconds']:.1f} s"


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
    lines += verdict_lines(report)
    if b := report.get("behind_the_image"):
        lines.append("        known here: " + (
            f"without every poison the test image leaves its label (P = {b['p_without_poisons']:.2f}): the "
            "poisons' doing, and the verdict missed it" if b["poisons_behind"] else
            f"a model retrained without every poison still gives the test image its label (P = "
            f"{b['p_without_poisons']:.2f}): the trigger alone fools it, no poisoning behind it to find"))
    lines.append(f"{'detector':<18}{'TPR':>6}{'precision':>11}{'flagged':>9}")
    for name, r in report["detectors"].items():
        extra = f"   τ = {r['tau']:.4g}, k = {r['k']}{' (suggested)' if r.get('suggested') else ''}" if "tau" in r else ""
        lines.append(f"{name:<18}{_fmt(r['tpr'], '.2f'):>6}{_fmt(r['precision'], '.2f'):>11}{r['n_flagged']:>9}{extra}")
    for name, r in report.get("counterfactual", {}).items():
        alone = " (the trigger alone: no unlearning gets below it)" if name == "without_all" else ""
        lines.append(f"retrain {name.replace('_', ' ')} poisons ({r['n_removed']} removed): poison success "
                     f"{_fmt(r['poison_success'])}{alone}, clean accuracy {_fmt(r['clean_acc'])}")
    for method, r in report["unlearn"].items():
        removed = r.get("total_removed", r["n_removed"])
        lines.append(f"unlearn {method} ({r['detector']} flags, {removed} removed{loop_verdict(r)}): clean accuracy "
                     f"{_fmt(r['clean_acc'])}, poison success {_fmt(r['poison_success'])}   [{took(r)}]")
    return lines


def steps_lines(report: dict) -> list[str]:
    """Each detector that tells its steps (``--explain``; Δ refined), step by step, counts aligned."""
    lines = []
    for name, r in report.get("detectors", {}).items():
        steps = r.get("steps")
        if steps:
            width = max(len(s["step"]) for s in steps)
            lines.append(f"{name}, step by step:")
            lines += [f"  {s['step']:<{width}}  {'' if s['count'] is None else s['count']:>6}  {s['what']}"
                      for s in steps]
    return lines


def verdict_lines(report: dict) -> list[str]:
    """The verdict's line, then — when it finds no evidence — what that means for the detectors' flags below."""
    v = report.get("verdict")
    if v is None:
        return []
    headline = ("POISONED" if v["poisoned"] else "no evidence of poisoning") + \
        f" (evidence {v['score']:.1f}, threshold {v['threshold']:g})"
    seconds = report["timings"].get("verdict_s", 0.0)
    lines = [f"verdict {headline}: {v['reason']}   "
             f"[verdict {seconds:.1f} s: models retrained without the suspects and without a control]"]
    if not v["poisoned"]:
        despite = report["config"].get("despite_verdict")
        lines.append("        the flags below are an exploration: " + (
            "--despite-verdict unlearns them all the same" if despite else
            "nothing is accused or unlearned (--despite-verdict to unlearn them all the same)"))
    return lines


def loop_verdict(r: dict) -> str:
    """What ``--until-clean`` concluded, for a summary line: rounds, the check's verdict, an escalation."""
    if "clean" not in r:
        return ""
    verdict = "backdoor gone (by the check)" if r["clean"] else "BACKDOOR STILL FOUND by the check"
    escalated = f"; {r['escalated_from']} left it, escalated to eu" if "escalated_from" in r else ""
    kin = f", {r['kin_added']} kin added" if r.get("kin_added") else ""
    back = f", {r['given_back']} given back" if r.get("given_back") else ""
    return f", {r['rounds']} round(s){kin}{back}, {verdict}{escalated}"


def experiment_flagged_csv(exp, detector: str) -> str:
    """``detector``'s flags in an experiment as the suspect set's CSV (drop counts at its τ, 0 for detectors
    without one; known_poison from the experiment's truth); none when the verdict finds no evidence of poisoning
    (unless ``despite_verdict``)."""
    inv, det = exp.investigation, exp.detect(detector)
    mode, data = det.params.get("mode", exp.config.mode), exp.poisoned.data
    suspects = SuspectSet(inv.accused(det.flagged), described(detector, det.params), det.params.get("tau", 0.0))
    return suspects.csv(inv.delta(mode), score_scale(inv.scores(mode)), data.y_train.numpy(), data.classes,
                        data.train_paths, known=exp.is_poison)


def unlearning_grid(exp, detectors, methods, tau: float | None = None, k: int | None = None) -> list[dict]:
    """Each unlearning method on each detector's flags (the Δ rules at τ/k when given): clean accuracy and
    poison success after it (the paper's Figures 3–5 in one table). One row per (detector, method)."""
    rows, n = [], len(detectors) * len(methods)
    for d in detectors:
        det = exp.detect(d, tau, k)
        for m in methods:
            with exp.reporter.within(f"run {len(rows) + 1}/{n}: {m.upper()} on {d}'s flags"):
                _, after = exp.investigation.unlearning.unlearn(m, det.flagged)
            rows.append({"detector": d, "method": m, "n_flagged": int(det.flagged.sum()),
                         "clean_acc": float(after["clean_acc"]), "poison_success": float(after["poison_success"]),
                         "seconds": float(after["seconds"])})
    return rows


def detector_rows(exp, names, tau: float | None = None, k: int | None = None) -> list[dict]:
    """One row per detector: TPR, precision, F1, number flagged and its parameters (the Δ rules at τ/k)."""
    rows = []
    for name in names:
        r = exp.detection_report(name, tau, k)
        params = {k_: v for k_, v in r.items() if k_ not in ("tpr", "precision", "f1", "n_flagged")}
        rows.append({"detector": name, "TPR": float(r["tpr"]), "precision": float(r["precision"]),
                     "F1": float(r["f1"]), "flagged": int(r["n_flagged"]),
                     "parameters": ", ".join(f"{k_}={_fmt_param(v)}" for k_, v in params.items() if _short_param(v))})
    return rows


def case_rows(case, names) -> list[dict]:
    """One row per detector on a case with no ground truth: how many it flags, how many of those Δ-Influence
    flags too, and TPR/precision against the analyst's known poisons when there are some."""
    delta = case.detect("delta_influence").flagged
    rows = []
    for name in names:
        r = case.detection_report(name)
        flagged = case.detect(name).flagged
        row = {"detector": name, "flagged": int(r["n_flagged"]), "also flagged by Δ-Influence": int((flagged & delta).sum())}
        if "tpr" in r:
            row.update(TPR=f"{r['tpr']:.3f}", precision=f"{r['precision']:.3f}")
        rows.append({**row, "what it does": DETECTORS[name].help})
    return rows


def _short_param(v) -> bool:
    """Scalars and short lists make the table; per-class breakdowns and other nested detail do not."""
    if isinstance(v, (list, tuple)):
        return len(v) <= 6 and all(isinstance(x, (int, float, str, bool)) for x in v)
    return v is None or isinstance(v, (int, float, str, bool))


def _fmt_param(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
