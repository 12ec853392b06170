"""The app's second start, under ``streamlit.testing``: investigate a model of the user's own — their folder, model
code, weights and test image — with no ground truth, through every page; and what the server refuses."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest import SLOW, check, flagged_line, metrics, n_flagged, settle, texts  # noqa: E402

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
MODEL = str(ROOT / "tests" / "case" / "user_model.py") + ":build"


@pytest.fixture(scope="module", autouse=True)
def server(user_case, tmp_path_factory):
    """A fresh runtime on its own cache; the case's folder allowed, model code enabled."""
    import torch

    saved = {k: os.environ.get(k) for k in ("DELTAINF_CACHE_DIR", "DELTAINF_ALLOWED_ROOTS", "DELTAINF_ALLOW_MODEL_CODE")}
    threads = torch.get_num_threads()
    os.environ.update(DELTAINF_CACHE_DIR=str(tmp_path_factory.mktemp("app-case-cache")),
                      DELTAINF_ALLOWED_ROOTS=f"{user_case['base']}{os.pathsep}{ROOT / 'tests'}",
                      DELTAINF_ALLOW_MODEL_CODE="1")
    st.cache_resource.clear()
    yield
    from ui.state import runtime

    for job in list(runtime().jobs.values()):
        job.finished.wait(SLOW)
    st.cache_resource.clear()
    torch.set_num_threads(threads)
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)










def investigate_form(at: AppTest, user_case, root=None, model=MODEL, weights=True) -> AppTest:
    check(at.segmented_control(key="start").set_value("case").run())
    check(at.radio(key="case_model_kind").set_value("your own code").run())  # only the model code's field shows
    assert not [s for s in at.selectbox if s.key == "case_model"]
    at.text_input(key="case_root").set_value(str(root or user_case["root"]))
    at.text_input(key="case_code").set_value(model)
    at.number_input(key="case_image_size").set_value(16)
    if weights:
        at.file_uploader(key="case_weights_upload").set_value(
            ("weights.safetensors", Path(user_case["weights"]).read_bytes(), "application/octet-stream"))
    else:
        at.checkbox(key="case_train_new").check()  # a new model only when asked for
    at.file_uploader(key="case_query_upload").set_value(("query.png", Path(user_case["query"]).read_bytes(), "image/png"))
    return check(at.button(key="investigate").click().run())


def test_investigate_a_model_through_every_page(user_case):
    at = check(AppTest.from_file(APP, default_timeout=SLOW).run())
    at = investigate_form(at, user_case)
    at = settle(at, lambda a: "Training images" in metrics(a))
    assert at.session_state["kind"] == "case" and metrics(at)["Test image"] == "7"  # the trigger works
    check(at.switch_page("pages/influence.py").run())
    at = settle(at, lambda a: flagged_line(a) != "")
    assert "(suggested" in flagged_line(at)  # τ/k from Δ alone
    assert "Clean points flagged" not in " ".join(str(h.value) for h in at.get("html"))  # no ground truth here
    flagged = n_flagged(at)
    assert at.dataframe, "the review table of the flagged images"
    table = at.dataframe[0].value
    files = list(table["file"])
    assert len(files) == flagged and sum(f in user_case["poisons"] for f in files) >= 40  # paths, not indices
    review = at.dataframe[1].value  # the review table: the likeness split's upper group ticked "like the test image"
    ticked = list(review.loc[review["like the test image"], "file"])
    planted = sum(f in user_case["poisons"] for f in ticked)
    assert planted >= 0.9 * len(ticked) and planted >= 0.9 * sum(f in user_case["poisons"] for f in review["file"])
    # The analyst confirms ten of them: unlearning then uses exactly those.
    from ui.state import runtime

    instance = next(i for i, _ in runtime().experiments.values() if i.content[0].__class__.__name__ == "CaseConfig")
    at.session_state["marks"] = {instance.content: {files.index(f): "confirmed" for f in files[:10]}}
    check(at.switch_page("pages/unlearn.py").run())
    at = settle(at, lambda a: "Verdict: POISONED" in texts(a.markdown))  # the verdict, then the button
    assert "confirmed" in at.selectbox(key="unlearn_source").value
    check(at.toggle(key="until_clean").set_value(True).run())
    check(at.button(key="run_unlearn").click().run())
    at = settle(at, lambda a: "Removed" in metrics(a))
    assert "Poison success" not in metrics(at)
    # Ten of fifty poisons leave the backdoor: the re-check (no ground truth) says so and looks for more.
    table = at.table[0].value
    assert "poison success" not in table.columns and table["verdict"].iloc[0] == "backdoor lives"
    assert int(table["removed"].iloc[0]) == 10 and int(metrics(at)["Removed"]) > 10
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("Report" in x for x in labels) and any("safetensors" in x for x in labels)
    check(at.switch_page("pages/compare.py").run())
    at = settle(at, lambda a: len(a.table) > 0)
    table = at.table[0].value
    assert "also flagged by Δ-Influence" in table.columns
    assert table["detector"].iloc[0] == "current suspect set" and int(table["flagged"].iloc[0]) == flagged


def test_the_analysts_model_is_kept_for_a_new_question(user_case):
    """Back on the Experiment page after other pages, a new label with no upload investigates the same weights and
    test image: no model is trained in their place."""
    at = check(AppTest.from_file(APP, default_timeout=SLOW).run())
    at = settle(investigate_form(at, user_case), lambda a: "Training images" in metrics(a))
    kept = at.session_state["case_weights"]
    check(at.switch_page("pages/influence.py").run())
    check(at.switch_page("pages/experiment.py").run())
    assert "kept: weights.safetensors" in at.file_uploader(key="case_weights_upload").label
    assert at.radio(key="case_model_kind").value == "your own code" and at.text_input(key="case_code").value == MODEL
    at.text_input(key="case_query_label").set_value("3")
    check(at.button(key="investigate").click().run())
    at = settle(at, lambda a: a.session_state["case"].query_label == "3" and "Training images" in metrics(a))
    assert at.session_state["case_weights"].digest == kept.digest
    assert at.session_state["case"].weights == "weights.safetensors"
    assert "weights weights.safetensors" in texts(at.caption)


def test_what_the_server_refuses(user_case, tmp_path, monkeypatch):
    at = check(AppTest.from_file(APP, default_timeout=SLOW).run())
    at = investigate_form(at, user_case, root=tmp_path)
    assert "outside the folders this server may read" in texts(at.error) and "DELTAINF_ALLOWED_ROOTS" in texts(at.error)
    assert at.session_state["kind"] == "experiment"  # nothing changed
    monkeypatch.setenv("DELTAINF_ALLOW_MODEL_CODE", "0")
    at = investigate_form(at, user_case)
    assert "DELTAINF_ALLOW_MODEL_CODE=1" in texts(at.error)
    monkeypatch.setenv("DELTAINF_ALLOW_MODEL_CODE", "1")
    at = investigate_form(at, user_case, model=str(ROOT / "tests" / "case" / "user_model.py") + ":five_outputs",
                          weights=False)
    at = settle(at, lambda a: "Not loaded" in texts(a.error))
    assert "gives outputs of shape (2, 5)" in texts(at.error) and at.session_state["kind"] == "experiment"
    buf = io.BytesIO(b"not an image")
    at.file_uploader(key="case_query_upload").set_value(("notes.png", buf.getvalue(), "image/png"))
    check(at.button(key="investigate").click().run())
    assert "notes.png is not a readable image" in texts(at.error)
