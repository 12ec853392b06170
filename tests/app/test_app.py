"""Every page of the Streamlit app under ``streamlit.testing`` (in-process, no browser).

One cache folder for the module (the session's digits cache when conftest provides one), so the
built-in experiment is trained and scored once; each test opens a fresh session (a new AppTest)
on the shared server-side runtime, as a second browser tab would.
"""
from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest import SLOW, check, flagged_line, metrics, n_flagged, settle, texts  # noqa: E402
from deltainf import Config  # noqa: E402

pytestmark = pytest.mark.slow  # every session here trains (or loads) the built-in experiment
ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
PAGES = {"experiment": "pages/experiment.py", "query": "pages/query_image.py",
         "transforms": "pages/transformations.py", "influence": "pages/influence.py",
         "unlearn": "pages/unlearn.py", "compare": "pages/compare.py"}


@pytest.fixture(scope="module", autouse=True)
def app_cache(request, tmp_path_factory):
    """Point the app at one cache folder for the whole module, with a fresh server-side runtime."""
    try:
        root = request.getfixturevalue("cache_dir")  # shared with the engine tests when available
    except pytest.FixtureLookupError:
        root = tmp_path_factory.mktemp("app-cache")
    import torch

    old, threads = os.environ.get("DELTAINF_CACHE_DIR"), torch.get_num_threads()
    os.environ["DELTAINF_CACHE_DIR"] = str(root)
    st.cache_resource.clear()
    yield Path(root)
    from ui.state import runtime

    for job in list(runtime().jobs.values()):  # let background work end before other tests use the engine
        job.finished.wait(SLOW)
    st.cache_resource.clear()
    torch.set_num_threads(threads)  # the app's runtime limits torch's threads; leave other tests as they were
    if old is None:
        os.environ.pop("DELTAINF_CACHE_DIR", None)
    else:
        os.environ["DELTAINF_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def pipe(app_cache):
    """The same built-in experiment the app runs (ground truth for the checks), computed up front.

    Under the app's compute lock: the engine seeds torch's global generator, so nothing else in this
    process may run engine work meanwhile; afterwards the tests only read what is in memory here.
    """
    from deltainf import Experiment
    from ui.state import runtime

    e = Experiment(Config())
    with runtime().compute:
        _ = e.model_metrics, e.poisoned_test_candidates, e.test_index, e.investigation.tau_k(), e.investigation.delta()
        e.investigation.verdict()
    return e




def open_app(page: str | None = None) -> AppTest:
    at = check(AppTest.from_file(APP, default_timeout=SLOW).run())
    if page:
        check(at.switch_page(PAGES[page]).run())
    return at








def trained(at: AppTest) -> AppTest:
    at.button(key="train").click().run()
    return settle(at, lambda a: "Clean accuracy" in metrics(a))


def verdict_text(at: AppTest) -> str:
    return " ".join(str(m.value) for m in at.markdown if "Verdict:" in str(m.value))


def captions(at: AppTest) -> list[str]:
    return [c for im in at.get("image") for c in im.captions]


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


# ----------------------------------------------------------------------------- before anything is trained
@pytest.mark.parametrize("page", ["query", "transforms", "influence", "unlearn", "compare"])
def test_page_opened_first_explains_what_to_do(page):
    at = open_app(page)
    message = texts(at.info)
    assert "Experiment" in message and "Train" in message
    assert not at.error
    from ui.state import runtime

    assert not runtime().jobs, "opening a page before training must not start any work"


def test_experiment_page_widgets_and_sidebar():
    at = open_app()
    assert at.selectbox(key="dataset").value == "digits"  # built-in data preselected
    for key in ("attack", "model", "trigger_pattern", "trigger_corner", "device"):
        assert at.selectbox(key=key).value is not None
    assert at.number_input(key="seed").value == 0
    assert at.button(key="train") is not None
    assert "Press **Train**" in texts(at.info)
    side = texts(at.sidebar.markdown) + texts(at.sidebar.caption)
    assert "Current experiment" in side and "built-in digits" in side and "not trained yet" in side
    assert "Cache" in side and "Device" in side and ("CPU" in side or "GPU" in side)
    # A picture of each attack's trigger, to choose from before training.
    from deltainf.attacks import ATTACKS

    previews = at.get("image")
    assert len(previews) == len(ATTACKS)
    assert all(len(im.captions) == 3 and im.captions[0] == "clean" for im in previews)  # + trigger, triggered


def test_bad_settings_are_refused_and_change_nothing():
    at = open_app()
    at.number_input(key="victim").set_value(3)
    at.number_input(key="target").set_value(3)
    check(at.button(key="train").click().run())
    assert "must differ" in texts(at.error)
    assert at.session_state["config"] == Config()


def test_missing_data_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DELTAINF_ALLOWED_ROOTS", str(tmp_path))  # the folder may be read; it holds no CIFAR
    at = open_app()
    check(at.selectbox(key="dataset").set_value("imagefolder").run())  # the Data folder field follows the dataset
    at.text_input(key="data_root").set_value(str(tmp_path / "no-such-folder"))
    check(at.button(key="train").click().run())
    assert "does not exist" in texts(at.error) and "Nothing changed" in texts(at.error)  # refused before loading
    assert at.session_state["config"].dataset == "digits"  # the experiment was not replaced
    check(at.selectbox(key="dataset").set_value("cifar10").run())
    at.text_input(key="data_root").set_value(str(tmp_path))  # a folder, without CIFAR in it
    check(at.button(key="train").click().run())
    at = settle(at, lambda a: len(a.error) > 0, timeout=120)
    assert "cifar10 not found" in texts(at.error)
    check(at.switch_page(PAGES["influence"]).run())
    assert "Training failed" in texts(at.info) and "cifar10 not found" in texts(at.info)


def test_damaged_cache_database_is_set_aside_and_said_in_the_sidebar(tmp_path, monkeypatch):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "cache.db").write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("DELTAINF_CACHE_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="was damaged"):
        at = open_app()
    assert "was damaged" in texts(at.sidebar.warning) and "store.damaged-" in texts(at.sidebar.warning)
    assert "empty" in texts(at.sidebar.caption)  # the new database is in use
    from ui.state import runtime

    runtime().notice = None


# ----------------------------------------------------------------------------- the walk-through
def test_train_shows_metrics_and_poison_strip(pipe):
    at = trained(open_app())
    m = metrics(at)
    assert float(m["Clean accuracy"]) == pytest.approx(pipe.model_metrics["clean_acc"], abs=1e-3)
    assert float(m["Poison success"]) == pytest.approx(pipe.model_metrics["poison_success"], abs=5e-3)
    assert m["Poisons"] == f"{len(pipe.poisoned.poison_idx)} / {len(pipe.is_poison)}"
    assert "Poisoned training images" in texts(at.subheader)
    assert "The trigger" in texts(at.subheader)
    assert any("the trigger patch" in c for c in captions(at))  # this experiment's own BadNet patch
    from ui.jobs import TrainJob
    from ui.state import runtime

    assert any(isinstance(key, TrainJob) for key in runtime().jobs)  # the runtime the tests inspect is the app's
    side_at = open_app()  # the sidebar of a new session sees the server's trained model
    assert "clean acc" in texts(side_at.sidebar.markdown)


def test_weight_uploads(pipe):
    import torch
    from safetensors.torch import save

    from deltainf.store.checkpoints import weights_to_bytes

    at = trained(open_app())
    before = metrics(at)
    for name, blob, message in [
        ("corrupt.safetensors", b"\x00\x01 definitely not weights", "neither a safetensors file"),
        ("foreign.safetensors", save({"encoder.weight": torch.zeros(3, 3)}), "does not fit this architecture"),
        ("wrong-shape.pt", _torch_bytes({k: torch.zeros(1) for k in pipe.model.state_dict()}), "does not fit"),
    ]:
        check(at.file_uploader(key="weights_upload").set_value((name, blob, "application/octet-stream")).run())
        settle(at, lambda a: a.error or a.success)  # checked in the background
        assert message in texts(at.error), name
        assert at.session_state["weights"] is None  # the experiment in progress is untouched
        assert metrics(at) == before
    check(at.file_uploader(key="weights_upload").set_value(
        ("mine.safetensors", weights_to_bytes(pipe.model), "application/octet-stream")).run())
    settle(at, lambda a: a.success)
    assert "fits this architecture" in texts(at.success)
    assert at.session_state["weights"].name == "mine.safetensors"
    at = trained(at)  # evaluates the uploaded weights: the same model, so the same figures
    assert float(metrics(at)["Clean accuracy"]) == pytest.approx(float(before["Clean accuracy"]), abs=1e-3)


def _torch_bytes(state) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_factors_fitted_ahead_once_trained(pipe):
    """The built-in experiment's EK-FAC factors take seconds: the Train job fits them right after the model, so the
    Influence page finds them fitted (a class's first look at influence collapse)."""
    from ui.jobs import FactorsJob
    from ui.state import runtime

    trained(open_app())
    job = runtime().jobs.get(FactorsJob(pipe.investigation.influence.factors_key))
    assert job is not None and job.label == "EK-FAC factors (ahead of Influence)"
    assert job.finished.wait(SLOW) and job.ok


def test_test_image_page_pick_and_uploads(pipe):
    from PIL import Image

    at = trained(open_app())
    check(at.switch_page(PAGES["query"]).run())
    assert charts(at) == 1  # class probabilities
    assert f"triggered test image #{pipe.test_index}" in captions(at)
    picks = [b for b in at.button if b.key and b.key.startswith("pick_")]
    assert picks, "gallery of triggered test images sent to the target"
    other = next(b for b in picks if b.key != f"pick_{pipe.test_index}")
    check(other.click().run())
    index = int(other.key.split("_")[1])
    assert at.session_state["config"].test_index == index
    assert int(index) in pipe.poisoned_test_candidates
    # the new test image loads in a job, maybe behind factors fitted ahead for an earlier test's model
    settle(at, lambda a: any(w.key == "index_input" for w in a.number_input))
    assert f"triggered test image #{index}" in captions(at)
    check(at.number_input(key="index_input").set_value(0).run())
    check(at.button(key="use_index").click().run())
    assert at.session_state["config"].test_index == 0
    settle(at, lambda a: "triggered test image #0" in captions(a))

    check(at.file_uploader(key="query_upload").set_value(("notes.png", b"plain text, not an image", "image/png")).run())
    assert "notes.png is not a readable image" in texts(at.error)
    assert at.session_state["query"] is None and at.session_state["config"].test_index == 0
    big = b"\x89PNG" + bytes(5_000_000)
    check(at.file_uploader(key="query_upload").set_value(("huge.png", big, "image/png")).run())
    assert "at most 4 MB" in texts(at.error)
    assert at.session_state["query"] is None
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(buf, format="PNG")
    check(at.file_uploader(key="query_upload").set_value(("mine.png", buf.getvalue(), "image/png")).run())
    assert not at.error
    query = at.session_state["query"]
    assert query.name == "mine.png" and tuple(query.data.shape) == tuple(pipe.query_image.shape)
    assert "your image mine.png" in captions(at)


def test_transformations_page_controls():
    at = trained(open_app())
    check(at.switch_page(PAGES["transforms"]).run())
    settle(at, lambda a: "T = 50" in texts(a.markdown))
    assert len(captions(at)) == 51 and "· random label" in captions(at)[1]  # "1: augmentation · random label c"
    assert at.segmented_control(key="mode_input").value == "full"
    check(at.number_input(key="T_input").set_value(8).run())
    assert at.session_state["config"].transforms == 8
    settle(at, lambda a: "T = 8" in texts(a.markdown))  # the new copies are drawn in the background
    assert len(captions(at)) == 9 and captions(at)[0].startswith("original")
    check(at.segmented_control(key="mode_input").set_value("label-only").run())
    assert at.session_state["config"].mode == "label-only"
    settle(at, lambda a: sum("label only" in c for c in captions(a)) == 8)  # the 8 copies, with their random label
    check(at.segmented_control(key="mode_input").set_value("full").run())
    settle(at, lambda a: len(captions(a)) == 9 and "label only" not in captions(a)[1])
    before = captions(at)
    check(at.number_input(key="transform_seed_input").set_value(at.session_state["config"].seed + 1).run())
    assert at.session_state["config"].transform_seed == at.session_state["config"].seed + 1
    settle(at, lambda a: len(captions(a)) == 9 and captions(a)[1:] != before[1:])  # other augmentations, labels


def test_influence_page_follows_tau_and_k(pipe):
    """The server side of the Influence page (the live area's sliders run in the browser, see the e2e test): the
    engine's suggestion at first, a typed τ, a settled k, the near-cut pictures, the flagged set's table and CSV."""
    from deltainf.influence.delta import delta_flags, score_scale

    at = trained(open_app())
    check(at.switch_page(PAGES["influence"]).run())
    at = settle(at, lambda a: flagged_line(a) != "")
    delta, scale = pipe.investigation.delta(), score_scale(pipe.investigation.scores())
    tau0, k0, _ = pipe.investigation.tau_k()  # a new session starts from the engine's suggestion (no ground truth used)
    assert at.number_input(key="tau_raw").value == pytest.approx(tau0)
    assert n_flagged(at) == int(delta_flags(delta, tau0, k0).sum()) and "(suggested" in flagged_line(at)
    assert "Just inside the cut" in " ".join(str(h.value) for h in at.get("html"))
    at = settle(at, lambda a: "Verdict: POISONED" in verdict_text(a))  # the headline, once its background job has run
    verdict = pipe.investigation.verdict()
    assert verdict.poisoned and f"evidence {verdict.score:.1f}" in verdict_text(at)
    check(at.toggle(key="verdict_why").set_value(True).run())  # what it rests on
    why = " ".join(str(c.value) for c in at.caption)
    assert f"without its {verdict.parts['n_suspects']} suspects" in why and "the refined rule's flags" in why, why
    check(at.toggle(key="verdict_why").set_value(False).run())
    side_at = open_app()  # the sidebar of a new session sees the server's verdict
    assert "verdict: **POISONED**" in texts(side_at.sidebar.markdown), texts(side_at.sidebar.markdown)
    csv = at.get("download_button")
    assert any("flagged" in str(b.proto.label) for b in csv)

    check(at.number_input(key="tau_raw").set_value(0.5 * scale).run())  # a typed τ is a choice
    assert at.session_state["det_tau"] == pytest.approx(0.5 * scale) and at.session_state["det_chosen"]
    assert n_flagged(at) == int(delta_flags(delta, 0.5 * scale, k0).sum()) and "(chosen" in flagged_line(at)
    at.session_state["det_k"] = 5  # what the live area's k slider sets once the user settles
    check(at.run())
    assert n_flagged(at) == int(delta_flags(delta, 0.5 * scale, 5).sum())
    clean = int((delta_flags(delta, 0.5 * scale, 5) & ~pipe.is_poison).sum())
    assert f"Clean points flagged (false positives): {clean}" in " ".join(str(h.value) for h in at.get("html"))
    check(at.toggle(key="show_multiples").set_value(True).run())
    assert charts(at) >= 1


def test_each_mode_keeps_its_own_tau_and_k(pipe):
    """τ/k the user never touched are suggested for each Δ matrix; a τ typed in one mode stays with that mode."""
    at = trained(open_app())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "")
    full_tau = at.session_state["det_tau"]
    assert full_tau == pytest.approx(pipe.investigation.tau_k()[0]) and not at.session_state["det_chosen"]
    check(at.switch_page(PAGES["transforms"]).run())
    check(at.segmented_control(key="mode_input").set_value("label-only").run())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "" and at.session_state["config"].mode == "label-only")
    tau, k, _ = pipe.investigation.tau_k("label-only")  # label-only's own suggestion (its scores are in the cache by now)
    assert at.session_state["det_tau"] == pytest.approx(tau) and at.session_state["det_k"] == k
    assert tau != pytest.approx(full_tau) and "(suggested" in flagged_line(at)
    from deltainf.influence.delta import score_scale

    typed = tau - 0.25 * score_scale(pipe.investigation.scores("label-only"))
    check(at.number_input(key="tau_raw").set_value(typed).run())
    assert at.session_state["det_chosen"]
    check(at.switch_page(PAGES["transforms"]).run())
    check(at.segmented_control(key="mode_input").set_value("full").run())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "" and at.session_state["config"].mode == "full")
    assert at.session_state["det_tau"] == pytest.approx(full_tau) and not at.session_state["det_chosen"]
    check(at.switch_page(PAGES["transforms"]).run())
    check(at.segmented_control(key="mode_input").set_value("label-only").run())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "" and at.session_state["config"].mode == "label-only")
    assert at.session_state["det_tau"] == pytest.approx(typed) and at.session_state["det_chosen"]


def test_a_running_job_says_its_stage_and_never_shows_done():
    """Training a new model: from the first run after Train, the progress box is running (not ✓) and names
    the stage it is in with the seconds elapsed."""
    at = open_app()
    at.number_input(key="seed").set_value(31)  # a model the cache does not hold
    start = time.time()
    check(at.button(key="train").click().run())
    boxes = at.get("status")
    assert boxes, "no progress box while training"
    assert all(b.state == "running" and b.icon == "spinner" for b in boxes)
    progress = " ".join(p.proto.text for p in at.get("progress"))
    assert any(stage in progress for stage in ("reading the data", "planting the poisons", "training the model"))
    assert progress.rstrip().endswith(" s") and time.time() - start < 30
    settle(at, lambda a: "Clean accuracy" in metrics(a))
    assert "the whole wait" in texts(at.caption)
    # The influence scores of the new model: a second later the box names what it computes.
    check(at.switch_page(PAGES["influence"]).run())
    time.sleep(1.0)
    check(at.run())
    boxes, progress = at.get("status"), " ".join(p.proto.text for p in at.get("progress"))
    assert boxes and all(b.state == "running" for b in boxes)  # factors and scores take seconds here
    assert any(stage in progress for stage in ("EK-FAC factors", "scoring", "reading the data")), progress


def test_every_page_says_when_the_attack_did_not_implant():
    at = open_app()
    at.number_input(key="poison_count").set_value(0)
    at = trained(at)
    assert at.session_state["config"].poison_count == 0 and "did not implant" in texts(at.warning)
    for page in ("influence", "compare"):
        check(at.switch_page(PAGES[page]).run())
        assert "did not implant (poison success 0.00" in texts(at.warning)


def test_unlearn_page_runs_methods_side_by_side_and_weights_load_back(pipe):
    from deltainf.unlearning import UNLEARNERS

    at = trained(open_app())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "")
    check(at.switch_page(PAGES["unlearn"]).run())
    at = settle(at, lambda a: "Verdict: POISONED" in verdict_text(a))  # Run unlearning waits for the verdict
    chooser = at.multiselect(key="unlearn_methods")
    assert [o.split(" — ")[0] for o in chooser.options] == [m.upper() for m in UNLEARNERS]  # the whole registry
    assert chooser.value == ["eu"]
    assert at.toggle(key="until_clean").value is False  # the re-check loop is offered, off by default
    check(chooser.set_value(["eu", "cf"]).run())
    check(at.button(key="run_unlearn").click().run())
    at = settle(at, lambda a: "Removed" in metrics(a))
    removed = [m.value for m in at.metric if m.label == "Removed"]
    poison = [float(m.value) for m in at.metric if m.label == "Poison success"]
    assert removed == [str(delta_flags_count(pipe))] * 2  # one row per method, same flags
    assert all(p < pipe.model_metrics["poison_success"] for p in poison)
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("CSV" in x for x in labels) and sum("safetensors" in x for x in labels) == 2
    assert charts(at) == 2  # before/after bars for both methods, the test image before/after
    assert at.selectbox(key="unlearn_shown").options == ["EU", "CF"]

    # The downloaded EU weights load back on the Experiment page and give the unlearned model's figures.
    from ui.state import runtime

    res = runtime().jobs[at.session_state["unlearn_job"]].result
    eu = res["methods"]["eu"]
    check(at.switch_page(PAGES["experiment"]).run())
    check(at.file_uploader(key="weights_upload").set_value(
        ("unlearned-eu.safetensors", eu["weights"], "application/octet-stream")).run())
    settle(at, lambda a: a.success)
    assert "fits this architecture" in texts(at.success)
    at = trained(at)
    assert float(metrics(at)["Poison success"]) == pytest.approx(eu["after"]["poison_success"], abs=5e-3)
    assert float(metrics(at)["Clean accuracy"]) == pytest.approx(eu["after"]["clean_acc"], abs=1e-3)


def test_unlearn_page_loop_draws_rounds(pipe):
    at = trained(open_app())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "")
    check(at.switch_page(PAGES["unlearn"]).run())
    at = settle(at, lambda a: "Verdict: POISONED" in verdict_text(a))  # Run unlearning waits for the verdict
    check(at.toggle(key="until_clean").set_value(True).run())
    check(at.button(key="run_unlearn").click().run())
    at = settle(at, lambda a: "Removed" in metrics(a))
    assert charts(at) == 3  # + the per-round chart of the re-check loop
    from ui.state import runtime

    after = runtime().jobs[at.session_state["unlearn_job"]].result["methods"]["eu"]["after"]
    assert after["rounds"] == len(after["per_round"]) >= 1
    assert after["clean"] == after["per_round"][-1]["clean"]
    # The re-check per round, beside poison success (known here).
    table = at.table[0].value
    assert list(table["verdict"]) == ["clean" if r["clean"] else "backdoor lives" for r in after["per_round"]]
    assert list(table["poison success"]) == [f"{r['poison_success']:.2f}" for r in after["per_round"]]


def test_influence_page_refined_rule_feeds_unlearning(pipe):
    """Δ refined beside the τ/k rule: its flags at the session's τ and k, what it did step by step, and the Unlearn
    page removing exactly those."""
    at = trained(open_app())
    check(at.switch_page(PAGES["influence"]).run())
    settle(at, lambda a: flagged_line(a) != "")
    tau0, k0, _ = pipe.investigation.tau_k()
    refined = pipe.detect("delta_refined", tau0, k0)
    check(at.segmented_control(key="det_rule").set_value("refined").run())
    at = settle(at, lambda a: any("Δ refined:" in str(m.value) for m in a.markdown))
    line = next(str(m.value) for m in at.markdown if "Δ refined:" in str(m.value))
    assert f"**Δ refined: {int(refined.flagged.sum())} flagged** where the τ/k rule flags {n_flagged(at)}" in line
    assert "precision" in line  # the ground truth, known here
    steps = next(d.value for d in at.dataframe if "step" in d.value.columns)  # what it did, step by step
    assert steps["step"].iloc[0] == "candidates" and steps["step"].iloc[-1] == "flagged"
    assert steps["images"].iloc[-1] == str(int(refined.flagged.sum()))
    html = " ".join(str(h.value) for h in at.get("html"))
    assert f"Kept by the refinement: {int(refined.flagged.sum())}" in html and "given back by the refinement" in html

    check(at.switch_page(PAGES["unlearn"]).run())
    at = settle(at, lambda a: "Verdict: POISONED" in verdict_text(a))  # Run unlearning waits for the verdict
    source = at.selectbox(key="unlearn_source")
    assert any(f"Δ refined at τ = {tau0:.4g}, k = {k0} → {int(refined.flagged.sum())} points" in o
               for o in source.options)
    check(source.set_value("refined").run())
    check(at.button(key="run_unlearn").click().run())
    at = settle(at, lambda a: "Removed" in metrics(a))
    assert metrics(at)["Removed"] == str(int(refined.flagged.sum()))


def delta_flags_count(pipe) -> int:
    """Points Δ-Influence flags at the engine's suggested τ and k (what a new session starts from)."""
    from deltainf.influence.delta import delta_flags

    tau, k, _ = pipe.investigation.tau_k()
    return int(delta_flags(pipe.investigation.delta(), tau, k).sum())


def test_compare_shows_the_influence_pages_suspect_set_first(pipe):
    """After the Influence page, Compare's first row is the suspect set as it stands there (the τ/k rule at the
    session's τ and k), beside every detector."""
    from deltainf.detectors import DETECTORS

    at = trained(open_app())
    check(at.switch_page(PAGES["influence"]).run())
    at = settle(at, lambda a: flagged_line(a) != "")
    shown = n_flagged(at)
    check(at.switch_page(PAGES["compare"]).run())
    at = settle(at, lambda a: len(a.table) > 0)
    table = at.table[0].value
    assert list(table["detector"]) == ["current suspect set", *DETECTORS]
    first = table.iloc[0]
    assert int(first["flagged"]) == shown and "the τ/k rule at τ =" in first["what it does"]


def test_compare_page_lists_every_detector(pipe):
    from deltainf.detectors import DETECTORS

    at = trained(open_app())
    check(at.switch_page(PAGES["compare"]).run())
    at = settle(at, lambda a: len(a.table) > 0)
    table = at.table[0].value
    assert list(table["detector"]) == list(DETECTORS)
    row = table.set_index("detector").loc["delta_influence"]
    assert int(row["flagged"]) == delta_flags_count(pipe)
    assert charts(at) == 1  # precision vs TPR
    # Two known poisoned test points: Δ-Influence and boosted EK-FAC with intersected flags join the table.
    check(at.number_input(key="compare_points").set_value(2).run())
    at = settle(at, lambda a: len(a.table) > 0 and "delta_influence × 2 points" in list(a.table[0].value["detector"]))
    multi = at.table[0].value.set_index("detector")
    assert int(multi.loc["delta_influence × 2 points", "flagged"]) <= int(multi.loc["delta_influence", "flagged"])
    assert int(multi.loc["ekfac × 2 points", "flagged"]) <= int(multi.loc["ekfac", "flagged"])
    # Unlearning after each detector: the default (Δ-Influence and EK-FAC × EU and CF) is about a minute…
    assert at.multiselect(key="grid_methods").value == ["eu", "cf"]
    assert at.multiselect(key="grid_detectors").value == ["delta_influence", "ekfac"]
    assert not at.button(key="run_grid").disabled
    # …every method on every detector is long, so it asks first.
    from deltainf.unlearning import UNLEARNERS

    check(at.multiselect(key="grid_methods").set_value(list(UNLEARNERS)).run())
    check(at.multiselect(key="grid_detectors").set_value(list(DETECTORS)).run())
    runs = len(DETECTORS) * len(UNLEARNERS)
    assert f"{runs} unlearning runs: about" in texts(at.caption) and at.button(key="run_grid").disabled
    check(at.checkbox(key="grid_confirm").check().run())
    assert not at.button(key="run_grid").disabled
    check(at.multiselect(key="grid_methods").set_value(["eu", "cf"]).run())
    check(at.multiselect(key="grid_detectors").set_value(["delta_influence", "ekfac"]).run())
    assert not at.button(key="run_grid").disabled
    check(at.button(key="run_grid").click().run())
    at = settle(at, lambda a: len(a.table) > 1)
    grid = at.table[1].value
    assert [tuple(r) for r in grid[["detector", "method"]].values] == [
        ("delta_influence", "EU"), ("delta_influence", "CF"), ("ekfac", "EU"), ("ekfac", "CF")]
    assert set(grid["flagged"]) == {delta_flags_count(pipe), pipe.detect("ekfac").flagged.sum()}
    assert charts(at) == 2  # + poison success / clean accuracy per detector and method
    check(at.run())  # (the grid may have finished during the run that drew the estimate)
    assert "(from the runs timed so far)" in texts(at.caption)


def test_flagged_csv_is_the_clis_file(pipe, tmp_path):
    """The Unlearn page's CSV download and the CLI's --flagged-out agree byte for byte."""
    from deltainf.cli import main
    from deltainf.figures.influence import DeltaView
    from deltainf.suspicion.suspects import SuspectSet, described
    from ui.state import runtime

    tau, k, _ = pipe.investigation.tau_k()
    view = DeltaView.build(pipe.investigation.scores(), pipe.is_poison, [""] * pipe.config.transforms,
                           pipe.poisoned.data.y_train.numpy())
    with runtime().compute:  # the engine seeds torch's global generator: no background job meanwhile
        assert main(["run", "--detectors", "delta_influence", "--flagged-out", str(tmp_path / "cli.csv"), "--quiet",
                     "--cache-dir", str(pipe.store.root)]) == 0
    data = pipe.poisoned.data  # what Unlearn downloads, with the rule named as the CLI names it
    page = SuspectSet(view.flags(tau, k), described("delta_influence", {"tau": tau, "k": k}), tau).csv(
        view.delta, view.scale, view.labels, data.classes, data.train_paths, view.is_poison)
    assert page.encode() == (tmp_path / "cli.csv").read_bytes()


def test_two_sessions_asking_for_the_same_stage_compute_it_once(pipe, monkeypatch):
    """Two browser tabs press Train on the same new experiment: one training run serves both."""
    import deltainf.models.training as engine

    calls = []
    real = engine.train_model

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "train_model", counted)
    tabs = [open_app(), open_app()]
    for at in tabs:  # a short, new experiment: both tabs ask before either finishes
        at.number_input(key="epochs").set_value(2)
        at.number_input(key="seed").set_value(77)
        at.button(key="train").click().run()
    for at in tabs:
        settle(at, lambda a: "Clean accuracy" in metrics(a))
    assert len(calls) == 1
    assert metrics(tabs[0]) == metrics(tabs[1])
