"""The suspect set's one CSV: every column, most collapsed first, the analyst's marks and added points."""
from __future__ import annotations

import csv
import io

import numpy as np

from deltainf.suspicion.suspects import COLUMNS, SuspectSet, described


def test_rows_hold_every_column_most_collapsed_first_with_the_marks():
    delta = np.array([[-1.0, -5.0, 0.5, -2.0], [-1.0, -4.0, 0.5, 1.0]])  # T = 2 copies, 4 training points
    flagged = np.array([True, True, False, True])
    s = SuspectSet(flagged, described("delta_influence", {"tau": -0.5, "k": 0}), -0.5,
                   {1: "confirmed", 3: "dismissed", 2: "added"})
    rows = list(csv.DictReader(io.StringIO(s.csv(delta, 2.0, np.array([0, 1, 1, 0]), ["cat", "dog"],
                                                 ["a.png", "b.png", "c.png", "d.png"], np.array([0, 1, 0, 0])))))
    assert list(rows[0]) == COLUMNS + ["known_poison"]
    assert [r["index"] for r in rows] == ["1", "0", "3", "2"]  # two drops (lowest mean Δ first), one, none
    assert [r["drop_count"] for r in rows] == ["2", "2", "1", "0"] and {r["T"] for r in rows} == {"2"}
    assert rows[0]["path"] == "b.png" and rows[0]["label"] == "dog" and rows[0]["known_poison"] == "1"
    assert float(rows[0]["mean_delta"]) == -4.5 and float(rows[0]["mean_delta_scaled"]) == -2.25
    assert [r["review"] for r in rows] == ["confirmed", "", "dismissed", "added"]
    assert {r["flagged_by"] for r in rows} == {"delta_influence (τ = -0.5, k = 0)"}


def test_without_files_or_truth_the_path_is_empty_and_no_truth_column():
    s = SuspectSet(np.array([True, False]), "actclust")
    text = s.csv(np.array([[-1.0, 0.0]]), 0.0, np.array([3, 3]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == COLUMNS and rows[0]["path"] == "" and rows[0]["label"] == "3"
    assert rows[0]["mean_delta_scaled"] == "" and rows[0]["flagged_by"] == "actclust"
