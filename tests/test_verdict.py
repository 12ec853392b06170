"""The verdict before any accusation: a poisoned test image is called poisoned with its evidence; an honest mistake of
a clean model finds no evidence, so nothing is flagged or unlearned unless the analyst overrides it."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from deltainf.cli import main
from deltainf.suspicion.suspects import COLUMNS
from deltainf.verdict import at_most_share, control, judge, threshold_for, trace_of


def test_judge_weighs_the_suspects_against_a_control_of_the_same_size():
    labels = np.repeat(np.arange(3), 20)
    suspected = np.zeros(60, bool)
    suspected[20:26] = True
    calls = []

    def without(removed):  # the suspects hold the test image up; any other images of label 1 do not
        calls.append(removed.copy())
        return (-9.0, np.full(removed.sum(), 2)) if removed[20:26].all() else (3.0, np.full(removed.sum(), 1))

    v = judge(suspected, labels, 1, seed=0, margin_before=4.0, without=without, threshold=2.5)
    assert v.poisoned and v.score == pytest.approx(12 / 8 + 1 / 0.25)
    assert len(calls) == 2 and calls[1].sum() == 6 and (labels[calls[1]] == 1).all()
    assert not (calls[1] & suspected).any()  # the control is drawn from the other images of the label
    assert np.array_equal(control(suspected, labels, 1, 0), calls[1])  # seeded: the same control every time

    def anyone(removed):  # removing any six images of label 1 does the same
        return -1.0, np.full(removed.sum(), 1)

    v = judge(suspected, labels, 1, seed=0, margin_before=4.0, without=anyone, threshold=2.5)
    assert not v.poisoned and v.score == 0.0 and "no more than" in v.reason

    def trigger_learnt(removed):  # a model that learnt the trigger without its poisons keeps them at y; not the others
        return (-9.0, np.full(removed.sum(), 1)) if removed[20:26].all() else (3.0, np.full(removed.sum(), 2))

    v = judge(suspected, labels, 1, seed=0, margin_before=4.0, without=trigger_learnt, threshold=2.5)
    assert v.parts["relabelling"] == -1.0 and v.score == pytest.approx(12 / 8)  # counts 0, not −4 units
    empty = judge(np.zeros(60, bool), labels, 1, 0, 4.0, without, 2.5)
    assert not empty.poisoned and empty.parts["n_suspects"] == 0


def test_a_signal_the_suspects_share_that_sends_other_images_to_the_label_is_evidence():
    """The transfer: the share of images of other labels the suspects' shared signal sends to y, beyond the random
    control's, adds to the evidence (a transfer below the control's adds nothing); a large one is a trigger's trace."""
    labels = np.repeat(np.arange(3), 20)
    suspected = np.zeros(60, bool)
    suspected[20:26] = True
    seen = []

    def without(removed):  # the flip alone is weak: a weak model, as on natural images
        return (-1.0, np.full(removed.sum(), 2)) if removed[20:26].all() else (1.0, np.full(removed.sum(), 2))

    def sends(group):
        seen.append(group.copy())
        return 0.9 if group[20:26].all() else 0.1

    v = judge(suspected, labels, 1, 0, 4.0, without, lambda parts: 2.5 if parts["transfer"] >= 0.4 else 4.0,
              sends=sends)
    assert v.poisoned and v.threshold == 2.5
    assert v.score == pytest.approx(2 / 8 + 0.8 / 0.2)
    assert v.parts["sent_by_suspects"] == 0.9 and v.parts["sent_by_control"] == 0.1 and v.parts["transfer"] == 0.8
    assert np.array_equal(seen[1], control(suspected, labels, 1, 0))  # the same control as the retrained models'
    assert "sends 90%" in v.reason
    weaker = judge(suspected, labels, 1, 0, 4.0, without, 2.5, sends=lambda group: 0.1 if group[20:26].all() else 0.3)
    assert weaker.score == pytest.approx(2 / 8) and weaker.parts["transfer"] == -0.2


def test_the_bar_follows_the_trace_the_suspects_carry():
    """A stamp, a texture or a relabelling the verdict's own model reproduces: the traced bar; a perturbation the test
    image lacks (clean-label poisons keep their labels): the flip alone; a relabelling it does not reproduce (a cluster
    of look-alikes of another class goes back in part) or a likeness split: the untraced bar."""
    from deltainf.config import Config

    c = Config()
    bars = {name: threshold_for(trace_of(params), c) for name, params in {
        "stamp": {"trace": "stamp"}, "texture": {"trace": "texture"}, "perturbed": {"trace": "perturbed"},
        "likeness split": {"by": "likeness split"}}.items()}
    assert bars == {"stamp": 2.5, "texture": 2.5, "perturbed": 0.5, "likeness split": 5.0}
    # A group whose shared signal sends images of other labels to y carries a trigger whatever split found it.
    assert trace_of({"by": "likeness split"}, transfer=0.6) == "transfer"
    assert trace_of({"trace": "relabelled", "agreement": 0.82}, transfer=0.6, relabelling=0.5) == "transfer"
    assert trace_of({"by": "likeness split"}, transfer=0.2) is None
    assert trace_of({"trace": "perturbed"}, transfer=0.6) == "perturbed"
    # So does a group that shares an unusual fine-texture level with the test image (a warp), either way.
    assert trace_of({"by": "likeness split"}, level=1.9) == "texture level"
    assert trace_of({"by": "likeness split"}, level=-1.6) == "texture level"
    assert threshold_for("texture level", c) == 2.5
    # A relabelling counts only when the verdict's own model relabels (nearly) all of them too, beyond its control: a
    # cluster of look-alikes of another class goes back only in part.
    assert trace_of({"trace": "relabelled", "agreement": 0.97}, relabelling=0.98) == "relabelled"
    assert threshold_for("relabelled", c) == 2.5
    assert trace_of({"trace": "relabelled", "agreement": 0.97}, relabelling=0.77) is None
    assert trace_of({"trace": "relabelled", "agreement": 0.97}, relabelling=0.77, level=1.8) == "texture level"
    assert trace_of({"by": "likeness split"}, level=1.2) is None
    assert trace_of({"trace": "stamp"}, level=2.0) == "stamp"


def test_the_suspects_are_images_of_the_label_at_most_half_of_them_the_most_collapsed_first():
    labels = np.repeat(np.arange(2), 10)
    delta = np.tile(np.arange(20.0), (3, 1))  # the lower the index, the further its influence falls
    found = np.ones(20, bool)
    kept = at_most_share(found, delta, labels, 1)
    assert np.flatnonzero(kept).tolist() == [10, 11, 12, 13, 14]
    few = np.zeros(20, bool)
    few[[3, 17]] = True
    assert np.flatnonzero(at_most_share(few, delta, labels, 1)).tolist() == [17]


@pytest.mark.slow
def test_a_triggered_image_is_called_poisoned_first(demo, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "--cache-dir", str(demo.store.root), "--json", str(out), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("verdict POISONED"), lines  # the first result line, after data, model and query
    v = json.loads(out.read_text())["verdict"]
    assert v["poisoned"] and v["score"] >= v["threshold"]
    p = v["parts"]
    assert p["margin_without_suspects"] < 0 < p["margin_without_control"] and p["relabelling"] > 0.5
    assert p["trace"] in ("stamp", "relabelled") and v["threshold"] == 2.5  # the suspects carry a trace of it
    assert v["reason"].endswith("(a stamp)" if p["trace"] == "stamp" else "(dirty-label poisons)")  # and it says so


@pytest.fixture(scope="module")
def honest_case(tmp_path_factory):
    """A clean folder of digits (no poison at all), the analyst's own model trained on it with a plain loop, and the
    test image it gets most confidently wrong: an honest mistake."""
    from PIL import Image
    from safetensors.torch import save_file

    from case import user_model
    from case.poisoned_folder import train_plain, write_case
    from deltainf.data import load_dataset

    base = tmp_path_factory.mktemp("honest-case")
    d = load_dataset("digits", None, seed=0)
    write_case(base / "folder", d.x_train.numpy(), d.y_train.numpy(), d.x_test.numpy(), d.y_test.numpy(), d.classes,
               victim=3, target=7, n_poison=0)
    torch.manual_seed(0)
    model = train_plain(user_model.build(10), base / "folder", 16)
    save_file(model.state_dict(), str(base / "weights.safetensors"))
    with torch.no_grad():
        probs = model(d.x_test.float() / 255).softmax(1)
    wrong = np.flatnonzero(probs.argmax(1).numpy() != d.y_test.numpy())
    worst = int(wrong[probs[wrong].max(1).values.argmax()])
    Image.fromarray(d.x_test[worst].permute(1, 2, 0).numpy()).save(base / "mistake.png")
    return base


@pytest.mark.slow
def test_an_honest_mistake_finds_no_evidence_and_accuses_no_one(honest_case, capsys):
    base = honest_case
    args = ["investigate", "--data-root", str(base / "folder"), "--model", "case.user_model:build", "--weights",
            str(base / "weights.safetensors"), "--query", str(base / "mistake.png"), "--image-size", "16",
            "--cache-dir", str(base / "cache"), "--unlearn", "eu", "--quiet"]
    assert main([*args, "--json", str(base / "r.json"), "--flagged-out", str(base / "f.csv")]) == 0
    captured = capsys.readouterr()
    r = json.loads((base / "r.json").read_text())
    assert not r["verdict"]["poisoned"], r["verdict"]
    assert r["verdict"]["parts"]["trace"] == "" and r["verdict"]["threshold"] == 5.0  # a likeness split found them
    assert r["verdict"]["reason"].endswith("so the bar is higher")
    assert captured.out.splitlines()[3].startswith("verdict no evidence of poisoning")
    assert "exploration" in captured.out and "lists no file" in captured.err
    assert r["detectors"]["delta_refined"]["n_flagged"] > 0  # the τ/k rule still finds "suspects" to explore
    assert list(csv.reader((base / "f.csv").open())) == [COLUMNS]
    assert r["unlearn"] == {}  # nothing unlearned by default
    assert main([*args, "--despite-verdict", "--json", str(base / "d.json"), "--flagged-out", str(base / "d.csv")]) == 0
    d = json.loads((base / "d.json").read_text())
    assert d["unlearn"]["eu"]["removed"] == d["detectors"]["delta_refined"]["n_flagged"] > 0
    assert len(list(csv.reader((base / "d.csv").open()))) == d["detectors"]["delta_refined"]["n_flagged"] + 1


@pytest.mark.slow
def test_a_fresh_round_finds_evidence_only_while_poisons_remain(demo):
    """The re-check's question on an unlearned model: a fresh Δ round (the paper's τ = 0, k = 2, so clean images of
    the label collapse too) finds evidence after 20 clean images are removed, and none once every poison is
    (ground truth chooses the removed sets here, and is used for nothing else)."""
    from deltainf.verdict import judge_fresh_round

    inv, labels = demo.investigation, demo.poisoned.data.y_train.numpy()
    clean = np.zeros_like(demo.is_poison)
    clean[np.flatnonzero(~demo.is_poison & (labels != demo.query_label))[:20]] = True
    said = {}
    for name, removed in (("poisons left", clean), ("poisons gone", demo.is_poison)):
        module, _ = inv.unlearning.unlearn("eu", removed)
        scores = inv.influence.rescore(module, inv.unlearning.unlearn_key("eu", removed), np.flatnonzero(~removed))
        said[name] = judge_fresh_round(inv.unlearning, module, removed, scores, 0.0, 2)
    assert said["poisons left"].poisoned, said["poisons left"]
    assert not said["poisons gone"].poisoned and said["poisons gone"].parts["n_suspects"] > 0, said["poisons gone"]


@pytest.mark.slow
def test_a_test_image_still_pulled_a_little_is_clean_when_the_fresh_round_finds_no_evidence(demo):
    """The re-check: with every poison removed (ground truth chooses the set here, and nothing else) but the test
    image's probability of its label still above --clean-below (set as strict as it goes), the fresh round's verdict
    decides — it finds no evidence, so the model is clean; with a few clean images removed instead the test image
    keeps its label and no verdict is asked."""
    from dataclasses import replace

    from deltainf.unlearning.recheck import recheck

    stage = demo.investigation.unlearning
    few = np.zeros_like(demo.is_poison)
    few[np.flatnonzero(~demo.is_poison)[:20]] = True
    saved, said = stage.config, {}
    try:
        stage.config = replace(saved, clean_below=1e-30)
        for name, removed in (("poisons gone", demo.is_poison), ("poisons left", few)):
            module, _ = stage.unlearn("eu", removed)
            said[name], _ = recheck(stage, module, removed, "eu", 0.0, 2)
    finally:
        stage.config = saved
    gone, left = said["poisons gone"], said["poisons left"]
    assert gone["query_target_prob"] > 1e-30 and gone["fresh_verdict"]["poisoned"] is False and gone["clean"], gone
    assert not left["clean"] and "fresh_verdict" not in left, left


def test_the_verdict_picture_shows_each_part_it_was_given():
    from deltainf.figures.verdict import verdict_figure

    parts = {"n_suspects": 70, "margin_before": 4.4, "margin_without_suspects": -3.4, "margin_without_control": 4.8,
             "relabelled_suspects": 0.96, "relabelled_control": 0.87}
    two = verdict_figure({"poisoned": False, "score": 1.4, "threshold": 2.5, "parts": parts}, "horse")
    three = verdict_figure({"poisoned": True, "score": 4.7, "threshold": 2.5,
                            "parts": {**parts, "sent_by_suspects": 0.93, "sent_by_control": 0.1}}, "horse")
    assert len(two.data) == 2 and len(three.data) == 3
    assert list(three.data[2].y) == [0.93, 0.1] and three.data[2].text == ("93%", "10%")
    headings = [a.text for a in three.layout.annotations]
    assert headings == ["the test image's margin of horse", "the removed ones labelled otherwise",
                        "other images sent to horse"]
    domains = [three.layout[f"xaxis{s}"].domain for s in ("", "2", "3")]
    assert all(a[1] < b[0] for a, b in zip(domains, domains[1:]))  # panels side by side, apart
    assert "Poisoned: evidence 4.7" in three.layout.title.text


@pytest.mark.slow
def test_run_says_when_the_trigger_alone_holds_the_test_image(cache_dir, tmp_path, capsys):
    """Frequency seed 31 on the digits: the verdict finds no evidence behind the triggered image, and a model retrained
    without every poison still misreads it (its learnt pattern fools a clean model): the run says which it was."""
    out = tmp_path / "r.json"
    assert main(["run", "--attack", "frequency", "--seed", "31", "--cache-dir", str(cache_dir), "--json", str(out),
                 "--quiet"]) == 0
    r = json.loads(out.read_text())
    assert r["model"]["poison_success"] > 0.8 and not r["verdict"]["poisoned"]
    behind = r["behind_the_image"]
    assert behind["p_without_poisons"] >= 0.5 and behind["poisons_behind"] is False
    assert "known here: a model retrained without every poison still gives the test image its label" in \
        capsys.readouterr().out


@pytest.mark.slow
def test_a_look_alike_cluster_relabelled_together_is_no_trace_unless_the_verdicts_model_relabels_it_whole(cache_dir):
    """Blended seed 44 on the digits (one CPU thread, as measured): behind an honest mistake of its model (no poison
    behind it) the refined rule keeps 22 look-alikes its model sends to one class together — a coherent relabelling,
    as dirty-label poisons show — but the verdict's own model relabels only part of them, so the relabelling is no
    trace and the bar is the untraced one. Adaptive-Blend seed 43's poisons, so relabelled, go back whole: the image
    is called poisoned on the traced bar."""
    from deltainf.config import Config
    from deltainf.experiment import Experiment
    from deltainf.models.training import predict_logits
    from deltainf.verdict import REPRODUCED

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count is part of every cache key: this case's own model
    try:
        exp = Experiment(Config(attack="blended", seed=44, cache_dir=str(cache_dir)))
        d = exp.poisoned.data
        preds = predict_logits(exp.model, d.x_test, exp.device).argmax(1).numpy()
        wrong = np.flatnonzero((preds != d.y_test.numpy()) & (preds != exp.poisoned.target))
        honest = Experiment(exp.config, store=exp.store,
                            query_image=d.x_test[int(np.random.default_rng([44, 99]).choice(wrong))]).investigation
        refined, v = honest.detect("delta_refined").params, honest.verdict()
        poisoned = Experiment(Config(attack="adaptive_blend", seed=43, cache_dir=str(cache_dir))).investigation
        poisoned = poisoned.verdict()
    finally:
        torch.set_num_threads(threads)
    if not (refined.get("trace") == "relabelled" and refined["agreement"] >= 0.9):  # the bar of the rule before
        pytest.skip("this machine's numerics train another model: its mistake has no coherent look-alike cluster")
    assert v.parts["relabelling"] < REPRODUCED
    assert not v.poisoned and v.parts["trace"] == "" and v.threshold == 5.0, v
    assert poisoned.poisoned and poisoned.parts["relabelling"] >= REPRODUCED
    assert poisoned.parts["trace"] in ("relabelled", "texture level") and poisoned.threshold == 2.5
