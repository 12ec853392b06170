"""An investigation of a user's own case as the JSON report, the CLI summary, the flagged files and the
unlearned weights — figures that need no ground truth (TPR/precision only against known poisons)."""
from __future__ import annotations

import time
from pathlib import Path

from ..influence.delta import score_scale
from ..suspicion.suspects import SuspectSet, described
from ..unlearning import from_scratch
from .report import _clean, loop_verdict, took, unlearn_detector, verdict_lines


def suspect_set(case) -> SuspectSet | None:
    """The investigation's suspect set: the flags of the detector whose flags are unlearned
    (:func:`~deltainf.evaluation.report.unlearn_detector`), empty when the verdict finds no evidence of poisoning
    (unless ``despite_verdict``); None when no detector is configured."""
    if not case.config.detectors:
        return None
    inv, name = case.investigation, unlearn_detector(case.config)
    det = inv.detect(name)
    return SuspectSet(inv.accused(det.flagged), described(name, det.params), det.params.get("tau", 0.0))


def investigate(case, weights_out: Path | None = None, suspects: SuspectSet | None = None) -> dict:
    """Run every configured stage of ``case`` and collect the figures (schema in README); with ``weights_out``
    each unlearning method's weights are written there as ``<method>.safetensors``. Unlearning removes
    ``suspects`` (default :func:`suspect_set`) but the images the analyst dismissed."""
    c, inv, data = case.config, case.investigation, case.data
    probs = case.probabilities()
    y = case.query.label
    verdict = inv.verdict()
    detectors = {}
    start = time.perf_counter()
    for name in c.detectors:
        detectors[name] = case.detection_report(name)
    t = case.timings.seconds
    detect_s = time.perf_counter() - start - t.get("scores_s", 0.0) - t.get("factors_s", 0.0)
    unlearn = {}
    det, suspects = (unlearn_detector(c), suspect_set(case)) if suspects is None else (suspects.flagged_by, suspects)
    if c.unlearn and suspects is not None:
        flagged = suspects.removed
        for method in c.unlearn if flagged.any() else ():
            stage = inv.unlearning
            module, m = stage.until_clean(method, flagged) if c.until_clean else stage.unlearn(method, flagged)
            unlearn[method] = {"detector": det, **_after(case, module, m, method)}
            if weights_out is not None:
                unlearn[method]["weights"] = str(save_weights(case, module, weights_out / f"{method}.safetensors"))
    return _clean({
        "config": c.to_dict(),
        "verdict": verdict.as_dict(),
        "data": {"root": str(case.root), "n_train": len(data.y_train), "n_test": len(data.y_test),
                 "classes": data.classes, "skipped_files": len(data.skipped),
                 "n_known_poisons": None if case.known_poisons is None else int(case.known_poisons.sum())},
        "model": {"spec": c.model, "weights": c.weights or ("uploaded" if case.weights_blob() else "trained here"),
                  "clean_acc": case.clean_acc},
        "query": {"path": c.query, "predicted": int(probs.argmax()), "predicted_name": data.classes[int(probs.argmax())],
                  "probability": float(probs.max()), "label": y, "label_name": data.classes[y],
                  "label_probability": float(probs[y])},
        "detectors": detectors,
        "suspects": None if suspects is None else suspects.summary(),
        "unlearn": unlearn,
        "timings": {"train_s": t.get("train_s", 0.0), "factors_s": t.get("factors_s", 0.0),
                    "scores_s": t.get("scores_s", 0.0), "detect_s": max(detect_s, 0.0),
                    "unlearn_s": t.get("unlearn_s", 0.0), "verdict_s": t.get("verdict_s", 0.0)},
    })


def _after(case, module, m: dict, method: str) -> dict:
    """What an unlearning method left: the test image's prediction, clean accuracy, what it removed."""
    p = case.probabilities(module)
    out = {"query_predicted": int(p.argmax()), "query_predicted_name": case.data.classes[int(p.argmax())],
           "query_probability": float(p.max()), "query_label_probability": float(p[case.query.label]),
           "removed": m.get("total_removed", m["n_removed"]), "rounds": m.get("rounds", 1),
           "seconds": m["seconds"], "cached": bool(m.get("cached"))}
    for key in ("clean_acc", "clean", "per_round", "kin_added", "escalated_from", "chose"):
        if key in m:
            out[key] = m[key]
    r = case.recipe
    out["starts_from"] = (f"scratch: retrained with the engine's recipe ({r.epochs} epochs, {r.optimizer}, "
                          f"learning rate {r.lr:g}), not from your weights") \
        if from_scratch(method) or "escalated_from" in m else "your weights"
    return out


def save_weights(case, module, path: Path) -> Path:
    """``module``'s weights as safetensors, loadable into the same ``--model`` spec (``--weights``)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(case.export_weights(module), str(path))
    return path


def case_flagged_csv(case) -> str:
    """The suspect set (:func:`suspect_set`) as its CSV (known_poison when ``--known-poisons`` gives them); no row
    when the verdict finds no evidence of poisoning (unless ``despite_verdict``)."""
    inv, suspects = case.investigation, suspect_set(case)
    mode = inv.detect(unlearn_detector(case.config)).params.get("mode", case.config.mode)
    return suspects.csv(inv.delta(mode), score_scale(inv.scores(mode)), case.data.y_train.numpy(), case.data.classes,
                        case.data.train_paths, known=case.known_poisons)


def summary_lines(report: dict) -> list[str]:
    """A short human summary of an investigation report."""
    d, m, q, t = report["data"], report["model"], report["query"], report["timings"]
    c = report["config"]
    test = f"{d['n_test']} test images" if d["n_test"] else "no test/ folder"
    acc = f", clean accuracy {m['clean_acc']:.3f}" if m["clean_acc"] is not None else ""
    lines = [f"Investigating {d['root']}: {d['n_train']} training images in {len(d['classes'])} classes, {test}",
             f"model   {m['spec']} ({m['weights']}){acc}   [{t['train_s']:.1f} s]",
             f"query   {q['path']}: predicted {q['predicted_name']} (p = {q['probability']:.2f}); investigated as "
             f"{q['label_name']}; T = {c['transforms']} ({c['mode']})   [factors {t['factors_s']:.1f} s, "
             f"scores {t['scores_s']:.1f} s]"]
    known = d["n_known_poisons"] is not None
    lines += verdict_lines(report)
    lines.append(f"{'detector':<18}{'flagged':>8}" + (f"{'TPR':>7}{'precision':>11}" if known else ""))
    for name, r in report["detectors"].items():
        rule = f"   τ = {r['tau']:.4g}, k = {r['k']}{' (suggested)' if r.get('suggested') else ''}" if "tau" in r else ""
        metrics = f"{r['tpr']:>7.2f}{r['precision']:>11.2f}" if known else ""
        lines.append(f"{name:<18}{r['n_flagged']:>8}{metrics}{rule}")
    for method, r in report["unlearn"].items():
        acc = f", clean accuracy {r['clean_acc']:.3f}" if r.get("clean_acc") is not None else ""
        lines.append(f"unlearn {method} ({r['detector']} flags, {r['removed']} removed{loop_verdict(r)}): test image predicted "
                     f"{r['query_predicted_name']} (p = {r['query_probability']:.2f}){acc}   [{took(r)}]"
                     + ("   from scratch, the engine's recipe" if from_scratch(method) else ""))
    return lines

