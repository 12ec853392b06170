"""Several test points, the counterfactual, the not-implanted guard and the table command."""
import json

import numpy as np
import pytest

from deltainf import Config
from deltainf.cli import main
from deltainf.errors import ConfigError
from deltainf.evaluation.table import aggregate, markdown
from deltainf.experiment import Experiment
from deltainf.store import Store


def test_several_test_points_intersect(demo, cache_dir):
    exp = Experiment(Config(cache_dir=str(cache_dir), test_points=2), store=Store(cache_dir))
    assert exp.test_points[0] == demo.test_index and len(set(exp.test_points)) == 2
    second = demo.investigation_for(exp.test_points[1])
    assert second.query.label == demo.query_label and not (second.query.image == demo.query_image).all()
    single = [demo.detect("delta_influence").flagged, second.detect("delta_influence").flagged]
    np.testing.assert_array_equal(exp.detect("delta_influence").flagged, single[0] & single[1])
    boosted = exp.detect("ekfac").flagged
    assert boosted.sum() <= demo.detect("ekfac").flagged.sum()
    assert exp.detect("actclust") is exp.investigation.detect("actclust")  # it never reads the query
    with pytest.raises(ConfigError, match="--test-points"):
        _ = Experiment(Config(cache_dir=str(cache_dir), test_points=500), store=Store(cache_dir)).test_points


def test_counterfactual_in_report(demo, cache_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "--cache-dir", str(cache_dir), "--counterfactual", "--json", str(out), "--quiet"]) == 0
    cf = json.loads(out.read_text())["counterfactual"]
    flagged = demo.detect("delta_influence").flagged
    assert cf["without_detected"]["n_removed"] == int((flagged & demo.is_poison).sum())
    assert cf["without_missed"]["n_removed"] == int((~flagged & demo.is_poison).sum())
    assert cf["without_all"]["n_removed"] == int(demo.is_poison.sum())
    # BadNet's stamp means nothing to a model that never saw a poison
    assert cf["without_all"]["poison_success"] < 0.2 < demo.model_metrics["poison_success"]
    out = capsys.readouterr().out
    assert "retrain without detected poisons" in out and "the trigger alone" in out


@pytest.mark.slow
def test_attack_that_does_not_implant_says_so(cache_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["run", "--cache-dir", str(cache_dir), "--poison-count", "1", "--epochs", "2", "--json", str(out), "--quiet"])
    assert code == 0
    r = json.loads(out.read_text())
    assert r["model"]["implanted"] is False and r["detectors"] == {}
    assert "did not implant" in capsys.readouterr().out


@pytest.mark.slow
def test_table_aggregates_cells(cache_dir, tmp_path, capsys):
    prefix = tmp_path / "out" / "table"
    code = main(["table", "--cache-dir", str(cache_dir), "--seeds", "0", "--detectors", "delta_influence,ekfac",
                 "--out", str(prefix), "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| digits | badnet | delta_influence | 1/1 |" in text
    data = json.loads(prefix.with_suffix(".json").read_text())
    assert {r["detector"] for r in data["cells"]} == {"delta_influence", "ekfac"}
    assert all(0.5 < r["eu_clean_acc"] <= 1 for r in data["cells"])  # accuracy after EU, beside poison success
    assert prefix.with_suffix(".csv").read_text().startswith("dataset,attack,detector")


def test_aggregate_mean_and_sd():
    rows = [{"dataset": "d", "attack": "a", "detector": "x", "implanted": True, "tpr": t, "precision": 0.5,
             "eu_poison_success": 0.0, "eu_clean_acc": acc} for t, acc in ((0.2, 0.9), (0.4, 0.8))]
    rows.append({"dataset": "d", "attack": "a", "detector": "x", "implanted": False})
    (agg,) = aggregate(rows)
    assert agg["implanted"] == 2 and agg["seeds"] == 3
    assert agg["tpr_mean"] == pytest.approx(0.3) and agg["tpr_sd"] == pytest.approx(0.1)
    assert "0.30 ± 0.10" in markdown([agg]) and markdown([agg]).endswith("| 0.00 ± 0.00 | 0.85 ± 0.05 |")


def test_markdown_marks_the_best_f1_per_attack():
    rows = [{"dataset": "d", "attack": a, "detector": det, "implanted": True, "tpr": 1.0, "precision": p,
             "f1": 2 * p / (1 + p)} for a, det, p in (("a", "x", 0.5), ("a", "y", 1.0), ("b", "x", 0.2), ("b", "y", 0.1))]
    lines = {(r.split(" | ")[1], r.split(" | ")[2]): r for r in markdown(aggregate(rows)).splitlines()[2:]}
    assert "**1.00 ± 0.00**" in lines[("a", "y")] and "**" not in lines[("a", "x")]
    assert "**0.33 ± 0.00**" in lines[("b", "x")] and "**" not in lines[("b", "y")]


def test_table_bad_names(capsys):
    assert main(["table", "--attacks", "nope"]) == 2
    assert "--attack" in capsys.readouterr().err


def test_table_all_runs_every_registered_attack(monkeypatch):
    import deltainf.evaluation.table as table
    from deltainf.attacks import ATTACKS

    seen = {}

    def cells(base, datasets, attacks, *args, **kwargs):
        seen["attacks"] = attacks
        return []
    monkeypatch.setattr(table, "run_cells", cells)
    monkeypatch.setattr(table, "aggregate", lambda rows: [])
    monkeypatch.setattr(table, "markdown", lambda summary: "")
    assert main(["table", "--attacks", "all", "--quiet"]) == 0
    assert seen["attacks"] == tuple(ATTACKS) and {"blended", "wanet", "sig", "sleeper_agent"} <= set(seen["attacks"])
