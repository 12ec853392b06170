"""The paper's Table 1 shape: datasets × attacks × detectors over seeds, mean ± sd.

Each cell is an ordinary cached experiment, so a table re-run recomputes nothing and a grown
grid computes only the new cells.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .metrics import detection_metrics

METRICS = ("tpr", "precision", "f1", "eu_poison_success", "eu_clean_acc")


def run_cells(base, datasets, attacks, detectors, seeds, unlearn: bool = True, progress=None) -> list[dict]:
    """One row per (dataset, attack, seed, detector); ``base`` is the Config the cells vary."""
    from ..experiment import Experiment

    rows = []
    cells = [(d, a, s) for d in datasets for a in attacks for s in seeds]
    for n, (dataset, attack, seed) in enumerate(cells):
        cfg = base.replace(dataset=dataset, attack=attack, seed=seed, detectors=tuple(detectors), unlearn=())
        exp = Experiment(cfg)
        exp.validate()
        m = exp.model_metrics
        implanted = exp.implanted
        for det in detectors:
            row = {"dataset": dataset, "attack": attack, "seed": seed, "detector": det, "implanted": implanted,
                   "clean_acc": m["clean_acc"], "poison_success": m["poison_success"]}
            if implanted:
                d = exp.detect(det)
                row.update(detection_metrics(d.flagged, exp.is_poison))
                if unlearn:
                    after = exp.investigation.unlearning.unlearn("eu", d.flagged)[1]
                    row["eu_poison_success"], row["eu_clean_acc"] = after["poison_success"], after["clean_acc"]
            rows.append(row)
        if progress:
            progress("table", n + 1, len(cells))
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sd over seeds per (dataset, attack, detector); cells where the attack did not implant are left out."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["attack"], r["detector"]), []).append(r)
    out = []
    for (dataset, attack, det), rs in groups.items():
        ok = [r for r in rs if r["implanted"]]
        agg = {"dataset": dataset, "attack": attack, "detector": det, "seeds": len(rs), "implanted": len(ok)}
        for k in METRICS:
            vals = [r[k] for r in ok if k in r]
            agg[f"{k}_mean"] = float(np.mean(vals)) if vals else math.nan
            agg[f"{k}_sd"] = float(np.std(vals)) if vals else math.nan
        out.append(agg)
    return out


def _pm(mean: float, sd: float) -> str:
    return "n/a" if math.isnan(mean) else f"{mean:.2f} ± {sd:.2f}"


def markdown(summary: list[dict]) -> str:
    """The summary as a Markdown table; the best mean F1 of each dataset × attack in bold."""
    best: dict[tuple, float] = {}
    for a in summary:
        if not math.isnan(a["f1_mean"]):
            key = (a["dataset"], a["attack"])
            best[key] = max(best.get(key, -1.0), a["f1_mean"])
    lines = ["| dataset | attack | detector | implanted | TPR | precision | F1 | poison success after EU | "
             "accuracy after EU |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a in summary:
        f1 = _pm(a["f1_mean"], a["f1_sd"])
        if f1 != "n/a" and a["f1_mean"] == best[(a["dataset"], a["attack"])]:
            f1 = f"**{f1}**"
        lines.append(f"| {a['dataset']} | {a['attack']} | {a['detector']} | {a['implanted']}/{a['seeds']} | "
                     f"{_pm(a['tpr_mean'], a['tpr_sd'])} | {_pm(a['precision_mean'], a['precision_sd'])} | {f1} | "
                     f"{_pm(a['eu_poison_success_mean'], a['eu_poison_success_sd'])} | "
                     f"{_pm(a['eu_clean_acc_mean'], a['eu_clean_acc_sd'])} |")
    return "\n".join(lines)


def write(summary: list[dict], rows: list[dict], prefix: Path) -> list[Path]:
    """``prefix``.md, .csv (the summary) and .json (summary and every cell)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path, js = prefix.with_suffix(".md"), prefix.with_suffix(".csv"), prefix.with_suffix(".json")
    md.write_text(markdown(summary) + "\n")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    clean = lambda x: None if isinstance(x, float) and math.isnan(x) else x  # noqa: E731
    js.write_text(json.dumps({"summary": [{k: clean(v) for k, v in a.items()} for a in summary],
                              "cells": [{k: clean(v) for k, v in r.items()} for r in rows]}, indent=2))
    return [md, csv_path, js]
