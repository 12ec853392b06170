"""``deltainf investigate`` as an analyst uses it: a poisoned folder written by this test (its own trigger,
uninformative file names), a model of their own code trained with a plain loop and saved as safetensors,
one misbehaving test image — and every bad input answered with one line."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deltainf.cli import main
from deltainf.suspicion.suspects import COLUMNS

HERE = Path(__file__).parent
MODEL = f"{HERE / 'user_model.py'}:build"
VICTIM, TARGET = 3, 7


@pytest.fixture(scope="module")
def case(user_case):
    return user_case


def run(case, *extra, model=MODEL, weights=None, query=None, cache=None):
    argv = ["investigate", "--data-root", str(case["root"]), "--model", model, "--image-size", "16",
            "--query", str(query or case["query"]), "--cache-dir", str(cache or case["base"] / "cache"), "--quiet"]
    if weights is not False:
        argv += ["--weights", str(weights or case["weights"])]
    return main([*argv, *extra])


def one_line(capsys, code: int, needle: str) -> None:
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if not x.startswith("deltainf: warning")]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err


@pytest.mark.slow
def test_finds_the_planted_files_and_unlearns_them(case, capsys):
    base = case["base"]
    code = run(case, "--unlearn", "eu,cf", "--until-clean", "--json", str(base / "r.json"), "--flagged-out",
               str(base / "f.csv"), "--report", str(base / "r.html"), "--weights-out", str(base / "out"), "--explain")
    out = capsys.readouterr()
    assert code == 0, out.err
    r = json.loads((base / "r.json").read_text())
    assert r["query"]["predicted_name"] == str(TARGET)  # the trigger works on the user's model
    assert r["data"]["n_train"] == 1438 and r["model"]["clean_acc"] > 0.9
    rows = list(csv.DictReader((base / "f.csv").open()))
    assert list(rows[0]) == COLUMNS
    flagged = {row["path"] for row in rows}
    found = len(flagged & set(case["poisons"]))
    assert found >= 0.8 * len(case["poisons"]) and found >= 0.25 * len(flagged), (found, len(flagged))
    refined, plain = r["detectors"]["delta_refined"], r["detectors"]["delta_influence"]  # the default: refined first
    assert refined["n_flagged"] == len(rows) and refined["suggested"] and r["unlearn"]["eu"]["detector"] == "delta_refined"
    assert refined["n_flagged"] < plain["n_flagged"]  # fewer clean images of class 7, the same planted files
    steps = {step["step"]: step for step in refined["steps"]}  # --explain: Δ refined step by step
    assert steps["candidates"]["count"] >= steps["flagged"]["count"] == refined["n_flagged"]
    assert "delta_refined, step by step:" in out.out and steps["candidates"]["what"] in out.out
    assert "not from your weights" in r["unlearn"]["eu"]["starts_from"]
    # The unlearned weights load back into the user's own model: the trigger no longer works.
    import user_model
    from safetensors.torch import load_file

    triggered = torch.from_numpy(case["triggered"]).float() / 255
    for method in ("eu", "cf"):
        m = user_model.build(10)
        m.load_state_dict(load_file(r["unlearn"][method]["weights"]))
        success = float((m.eval()(triggered).argmax(1) == TARGET).float().mean())
        assert r["unlearn"][method]["query_predicted_name"] != str(TARGET)
        assert success <= 0.2 and r["unlearn"][method]["clean_acc"] >= r["model"]["clean_acc"] - 0.03, (method, success)
    page = (base / "r.html").read_text()
    assert "data:image/png;base64" in page and "plotly" in page.lower() and "<script src=\"http" not in page
    assert case["poisons"][0] in page  # flagged images are shown with their paths
    assert "delta_refined, step by step" in page and steps["candidates"]["what"].split(" (τ")[0] in page


@pytest.mark.slow
def test_known_poisons_give_tpr_and_a_module_spec_works(case, capsys):
    out = case["base"] / "k.json"
    assert run(case, "--known-poisons", str(case["base"] / "known.txt"), "--detectors", "delta_influence",
               "--model", "case.user_model:build", "--json", str(out), "--flagged-out", str(case["base"] / "k.csv")) == 0
    r = json.loads(out.read_text())
    assert r["data"]["n_known_poisons"] == 10 and r["detectors"]["delta_influence"]["tpr"] == 1.0
    assert "known_poison" in (case["base"] / "k.csv").read_text().splitlines()[0]


def _state(blob_of):
    buf = io.BytesIO()
    torch.save(blob_of, buf)
    return buf.getvalue()


def test_bad_inputs_each_give_one_line(case, tmp_path, capsys):
    import user_model
    from safetensors.torch import save_file

    from deltainf.models import build_model

    save_file(build_model("cnn", 10, torch.zeros(3), torch.ones(3)).state_dict(), str(tmp_path / "cnn.safetensors"))
    one_line(capsys, run(case, weights=tmp_path / "cnn.safetensors"), "does not fit this architecture")
    save_file(user_model.build(5).state_dict(), str(tmp_path / "five.safetensors"))
    one_line(capsys, run(case, weights=tmp_path / "five.safetensors"), "head.2.weight has shape (5, 64)")
    (tmp_path / "model.pt").write_bytes(_state(user_model.build(10)))
    one_line(capsys, run(case, weights=tmp_path / "model.pt"), "pickled Python objects")
    one_line(capsys, run(case, model=f"{HERE / 'user_model.py'}:five_outputs", weights=False),
             "gives outputs of shape (2, 5)")
    one_line(capsys, run(case, model=f"{HERE / 'user_model.py'}:no_layers", weights=False), "no Conv2d or Linear")
    one_line(capsys, run(case, model=f"{HERE / 'user_model.py'}:broken"), "RuntimeError: no GPU in this test")
    (tmp_path / "typo.py").write_text("def build(num_classes):\n    return nn.Linear(3, num_classes\n")
    one_line(capsys, run(case, model=f"{tmp_path / 'typo.py'}:build"), "failed to import: SyntaxError")
    one_line(capsys, run(case, model=f"{HERE / 'user_model.py'}:nothing"), "has no callable 'nothing'")
    one_line(capsys, run(case, model="torchvision:not_a_net"), "torchvision has no classification model")
    one_line(capsys, run(case, model="vgg"), "unknown --model")
    (tmp_path / "notes.png").write_text("not an image")
    one_line(capsys, run(case, query=tmp_path / "notes.png"), "notes.png is not a readable image")
    one_line(capsys, run(case, "--query-label", "giraffe"), "--query-label 'giraffe'")
    (tmp_path / "known.txt").write_text("train/7/not-there.png\n")
    one_line(capsys, run(case, "--known-poisons", str(tmp_path / "known.txt")), "line 1: train/7/not-there.png")
    one_line(capsys, main(["investigate", "--model", "cnn", "--query", "q.png"]), "--data-root is required")
    one_line(capsys, run(case, weights=tmp_path / "missing.safetensors"), "no such file")


def test_folder_problems(case, tmp_path, capsys):
    from deltainf.data.imagefolder import load_imagefolder

    root = tmp_path / "f"
    for split, cls in (("train", "cat"), ("train", "dog"), ("test", "cat"), ("test", "bird")):
        (root / split / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / split / cls / "a.png")
    with pytest.raises(Exception, match=r"test classes \['bird'\] have no training folder"):
        load_imagefolder(root, 8, require_test=False)
    (root / "test").rename(tmp_path / "elsewhere")
    (root / "train" / "cat" / "notes.txt").write_text("hello")
    data = load_imagefolder(root, 8, require_test=False)
    assert len(data.y_test) == 0 and data.skipped == ("train/cat/notes.txt",)
    assert data.train_paths == ["train/cat/a.png", "train/dog/a.png"]


def test_a_query_of_another_size_is_resized_with_a_notice(case, tmp_path):
    from deltainf.case import Case
    from deltainf.config import CaseConfig

    Image.open(case["query"]).resize((40, 30)).save(tmp_path / "big.png")
    cfg = CaseConfig(data_root=str(case["root"]), model=MODEL, weights=str(case["weights"]), query=str(tmp_path / "big.png"),
                     image_size=16, query_label="7", cache_dir=str(tmp_path / "c"))
    with pytest.warns(UserWarning, match="40×30: resized and centre-cropped to 16×16"):
        q = Case(cfg).query
    assert tuple(q.image.shape) == (3, 16, 16) and q.label == 7


def test_torchvision_spec_builds_with_the_data_classes_and_reads_weights():
    from deltainf.models.spec import check_model, resolve
    from deltainf.store.checkpoints import load_weights_into, weights_to_bytes

    arch = resolve("torchvision:resnet18")
    model = arch.build(3, torch.zeros(3), torch.ones(3), "imagenet")
    check_model(model, 3, (3, 32, 32), "resnet18")
    part = arch.weights_part(model, "imagenet")
    assert part is model[1] and part.fc.out_features == 3
    load_weights_into(arch.weights_part(arch.build(3, torch.zeros(3), torch.ones(3), "imagenet"), "imagenet"),
                      weights_to_bytes(part))
    assert np.isfinite(model(torch.rand(1, 3, 32, 32)).detach().numpy()).all()


@pytest.mark.slow
def test_the_report_and_unlearning_follow_the_analysts_reviewed_set(case):
    """The app hands its suspect set (with the review's marks) to the report: unlearning removes it but the dismissed
    images, which the report shows apart as kept; the CSV carries each mark."""
    from deltainf.case import Case
    from deltainf.config import CaseConfig
    from deltainf.evaluation.case_report import investigate, suspect_set
    from deltainf.evaluation.html_report import render

    cfg = CaseConfig(data_root=str(case["root"]), model=MODEL, weights=str(case["weights"]), query=str(case["query"]),
                     image_size=16, cache_dir=str(case["base"] / "cache"), unlearn=("eu",))
    c = Case(cfg)
    suspects = suspect_set(c)
    members = np.flatnonzero(suspects.members)
    assert len(members) > 5 and suspects.flagged_by.startswith("delta_refined")  # the verdict: poisoned
    paths = c.data.train_paths
    suspects.marks = {int(members[0]): "confirmed", int(members[1]): "dismissed", int(members[2]): "dismissed"}
    r = investigate(c, suspects=suspects)
    assert r["suspects"] == {"flagged_by": suspects.flagged_by, "n_flagged": len(members),
                             "n_removed": len(members) - 2, "confirmed": 1, "dismissed": 2, "added": 0}
    assert r["unlearn"]["eu"]["removed"] == len(members) - 2
    page = render(c, r, suspects)
    kept = page.split("Dismissed by the analyst")[1]
    assert "1 confirmed, 2 dismissed" in page and paths[members[1]] in kept and paths[members[2]] in kept
    assert paths[members[3]] not in kept and f"{paths[members[0]]} · " in page
    rows = {row["path"]: row["review"] for row in csv.DictReader(io.StringIO(
        suspects.csv(c.investigation.delta("full"), 1.0, c.data.y_train.numpy(), c.data.classes, paths)))}
    assert rows[paths[members[0]]] == "confirmed" and rows[paths[members[1]]] == "dismissed"
