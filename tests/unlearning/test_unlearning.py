"""The five unlearning methods on the built-in experiment, the re-check loop, and weights in and out."""
import io

import numpy as np
import pytest
import torch

from deltainf.errors import CheckpointError
from deltainf.models import build_model
from deltainf.models.training import predict_logits
from deltainf.store.checkpoints import load_weights_into, weights_to_bytes
from deltainf.unlearning import UNLEARNERS
from deltainf.unlearning.ssd import dampen


@pytest.mark.parametrize("method", ["eu", "cf", "ssd", "scrub", "badt"])
def test_each_method_removes_the_poison_and_keeps_accuracy(demo, method):
    before = demo.model_metrics
    _, after = demo.investigation.unlearn(method, demo.detect("delta_influence").flagged)
    assert after["poison_success"] <= before["poison_success"] - 0.5, after
    assert after["clean_acc"] >= before["clean_acc"] - 0.05, after


def test_false_positives_hurt_ssd_and_scrub_more_than_eu_and_cf(demo):
    flagged = demo.detect("ekfac").flagged  # the naive detector flags about half the training set
    assert flagged.mean() > 0.3
    acc = {m: demo.investigation.unlearn(m, flagged)[1]["clean_acc"] for m in ("eu", "cf", "ssd", "scrub")}
    assert min(acc["ssd"], acc["scrub"]) < min(acc["eu"], acc["cf"]) - 0.05, acc


def test_until_clean_reports_rounds(demo):
    _, r = demo.investigation.unlearn_until_clean("eu", demo.detect("delta_influence").flagged, max_rounds=2)
    assert r["clean"] and r["query_pred"] != demo.query_label
    assert 1 <= r["rounds"] <= 2 and len(r["per_round"]) == r["rounds"]
    assert r["total_removed"] >= r["per_round"][0]["n_removed"]


def test_until_clean_adds_points_when_the_first_flags_miss(demo):
    flagged = np.zeros_like(demo.is_poison)
    flagged[np.flatnonzero(demo.is_poison)[:5]] = True  # far too few: the backdoor survives round 1
    demo.investigation.scores()
    seconds = demo.timings.seconds
    own = {k: seconds.get(k) for k in ("factors_s", "scores_s")}
    _, r = demo.investigation.unlearn_until_clean("eu", flagged, max_rounds=2)
    assert r["per_round"][0]["query_pred"] == demo.query_label
    assert r["rounds"] == 2 and r["total_removed"] > 5
    assert {k: seconds.get(k) for k in own} == own  # the re-check's factors and scores are counted apart
    assert seconds["recheck_scores_s"] > 0 and seconds["recheck_factors_s"] > 0
    assert r["per_round"][1]["hits"] > r["per_round"][0]["hits"]


def test_recheck_wants_the_target_probability_gone_too(demo):
    """An unlearned model that no longer predicts the target may still give it weight: with a strict
    ``clean_below`` the loop does not call that clean; with 1 the prediction alone decides."""
    from deltainf.experiment import Experiment
    from deltainf.unlearning.recheck import query_is_clean

    inv = demo.investigation
    model, m = inv.unlearn("eu", demo.detect("delta_influence").flagged)
    assert m["query_pred"] != demo.query_label
    p = inv.query_target_prob(model)
    assert 0 < p < 0.5 < inv.query_target_prob(demo.model)
    assert query_is_clean(m["query_pred"], p, demo.query_label, 1.0)
    assert not query_is_clean(m["query_pred"], p, demo.query_label, p / 2)
    poisoned = inv.evaluate(demo.model, demo.train_key)["query_pred"]
    assert not query_is_clean(poisoned, inv.query_target_prob(demo.model), demo.query_label, 1.0)  # never clean
    strict = Experiment(demo.config.replace(clean_below=p / 2), store=demo.store)
    _, r = strict.investigation.unlearn_until_clean("eu", demo.detect("delta_influence").flagged, max_rounds=2)
    assert not r["per_round"][0]["clean"]  # so a second round looks for more
    assert r["rounds"] == 2 or r["total_removed"] == r["per_round"][0]["n_removed"]  # …unless nothing new is flagged


def test_unlearning_grid_rows_match_single_runs(demo):
    from deltainf.evaluation.report import unlearning_grid

    rows = unlearning_grid(demo, ["delta_influence", "ekfac"], ["eu"])
    assert [(r["detector"], r["method"]) for r in rows] == [("delta_influence", "eu"), ("ekfac", "eu")]
    for r in rows:
        flagged = demo.detect(r["detector"]).flagged
        _, after = demo.investigation.unlearn("eu", flagged)
        assert r["n_flagged"] == flagged.sum()
        assert (r["clean_acc"], r["poison_success"]) == (after["clean_acc"], after["poison_success"])


def test_dampen_selects_and_scales():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0]]))
    imp_r = {"weight": torch.tensor([[1.0, 1.0]])}
    imp_f = {"weight": torch.tensor([[20.0, 5.0]])}
    dampen(model, imp_r, imp_f, alpha=10.0, lam=1.0)
    torch.testing.assert_close(model.weight, torch.tensor([[0.05, 1.0]]))


def test_registry_names():
    assert list(UNLEARNERS) == ["eu", "cf", "ssd", "scrub", "badt"]


def test_weights_roundtrip_and_bad_files(demo):
    blob = weights_to_bytes(demo.model)
    fresh = load_weights_into(demo.recipe.new_model(), blob)
    x = demo.poisoned.x_trigger_test[:8]
    torch.testing.assert_close(predict_logits(fresh, x, demo.device), predict_logits(demo.model, x, demo.device))
    buf = io.BytesIO()
    torch.save(demo.model.state_dict(), buf)
    load_weights_into(demo.recipe.new_model(), buf.getvalue(), "model.pt")  # a plain state dict, weights_only
    with pytest.raises(CheckpointError, match="neither"):
        load_weights_into(demo.recipe.new_model(), b"garbage" * 100, "broken.pt")
    foreign = build_model("cnn", 5, torch.zeros(3), torch.ones(3))
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights_into(demo.recipe.new_model(), weights_to_bytes(foreign), "five_classes.safetensors")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_weights_into(demo.recipe.new_model(), weights_to_bytes(build_model("resnet18", 10, torch.zeros(3), torch.ones(3))))
