"""Shared fixtures: one built-in (digits) experiment computed once per test session.

Markers: ``slow`` (trains a model: the built-in experiment, a CIFAR-10 subset, or inline — a test outside the slow
set that trains fails, saying so) and ``browser`` (drives Chromium). ``pytest -m "not slow and not browser"`` runs
the fast set alone.
"""
from __future__ import annotations

import pytest

from deltainf import Config
from deltainf.store import Store

#: Fixtures that train a model: a test that uses one is slow.
TRAINING_FIXTURES = {"demo", "cifar_exp", "exps", "freq", "brew", "case", "user_case", "honest_case"}


def pytest_configure(config):
    """The engine's thread rule for the whole session, as the app and the CLI apply it (``DELTAINF_TORCH_THREADS``,
    else torch's default): a fixture's model is then the one the app trains in the same process."""
    from deltainf.device import configure_cpu_threads

    configure_cpu_threads()


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _training_is_slow(request, monkeypatch):
    """A test that trains a model is slow, whichever fixture or line trains it: outside the slow set, training
    fails the test and says so (the fast set stays fast by what tests do, not by their fixtures' names)."""
    if request.node.get_closest_marker("slow") is None:
        import deltainf.models.training as training

        def refuse(*args, **kwargs):
            raise AssertionError("this test trains a model: mark it slow (pytest.mark.slow) or use a training fixture")
        monkeypatch.setattr(training, "train_model", refuse)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deltainf-cache")


@pytest.fixture(scope="session")
def demo(cache_dir):
    """The default built-in experiment (seed 0), its scores already computed."""
    from deltainf.experiment import Experiment

    exp = Experiment(Config(cache_dir=str(cache_dir)), store=Store(cache_dir))
    exp.investigation.scores()
    return exp


@pytest.fixture(scope="session")
def user_case(tmp_path_factory):
    """An analyst's case as they have it: a folder of digits as PNG files with uninformative names, 50 of class 3
    carrying this suite's own trigger and relabelled 7; their own model (tests/case/user_model.py) trained with a
    plain loop and saved as safetensors; a triggered test image of class 3."""
    import torch
    from safetensors.torch import save_file

    from case import user_model
    from case.poisoned_folder import train_plain, write_case
    from deltainf.data import load_dataset

    base = tmp_path_factory.mktemp("user-case")
    d = load_dataset("digits", None, seed=0)
    info = write_case(base / "folder", d.x_train.numpy(), d.y_train.numpy(), d.x_test.numpy(), d.y_test.numpy(),
                      d.classes, victim=3, target=7, n_poison=50)
    torch.manual_seed(0)
    model = train_plain(user_model.build(10), base / "folder", 16)
    save_file(model.state_dict(), str(base / "weights.safetensors"))
    (base / "known.txt").write_text("\n".join(info["poisons"][:10]))
    return {"base": base, "root": base / "folder", "weights": base / "weights.safetensors", **info}
