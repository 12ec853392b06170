"""The cache: entries carry their key, damage is never served, a killed run leaves nothing trusted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deltainf import Config
from deltainf.errors import CacheError
from deltainf.experiment import Experiment
from deltainf.store.cache import Store, content_key, decode, encode

ROOT = Path(__file__).resolve().parents[2]


def test_roundtrip_and_key_check(tmp_path):
    store = Store(tmp_path)
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    store.put("scores-1", arrays, {"mode": "full"})
    e = store.get("scores-1")
    np.testing.assert_array_equal(e.arrays["a"], arrays["a"]) and e.meta == {"mode": "full"}
    store.cache.set("scores-2", encode("scores-1", arrays, {}))  # an entry filed under the wrong key
    with pytest.warns(UserWarning):
        assert store.get("scores-2") is None
    key, back, meta = decode(encode("k", arrays, {"x": 1}))
    assert key == "k" and meta == {"x": 1}


def test_content_key_changes_with_content():
    assert content_key("scores", "f1", "q1") == content_key("scores", "f1", "q1")
    assert content_key("scores", "f1", "q1") != content_key("scores", "f1", "q2")


def test_damaged_database_is_set_aside_with_one_message(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "cache.db").write_bytes(b"this is not sqlite" * 100)
    (tmp_path / "kronfluence" / "deltainf" / "factors_x").mkdir(parents=True)
    with pytest.warns(UserWarning, match="damaged") as caught:
        store = Store(tmp_path)
    assert len(caught) == 1 and store.notice and "store.damaged-" in store.notice
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("store.damaged-")]
    assert len(aside) == 1 and (aside[0] / "cache.db").read_bytes().startswith(b"this is not sqlite")
    assert (tmp_path / "kronfluence" / "deltainf" / "factors_x").is_dir()  # factors untouched
    store.put("k", {"a": np.arange(3)}, {"x": 1})
    assert Store(tmp_path).get("k").meta == {"x": 1} and Store(tmp_path).notice is None


def test_unopenable_database_gives_one_clear_message(tmp_path):
    (tmp_path / "store" / "cache.db").mkdir(parents=True)  # a folder where the database file should be
    with pytest.raises(CacheError, match="cannot be opened"):
        Store(tmp_path)
    assert (tmp_path / "store" / "cache.db").is_dir()  # not damage: nothing is moved


def test_killed_run_leaves_nothing_trusted_and_rerun_matches(demo, tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "deltainf", "run", "--cache-dir", str(cache), "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kron = cache / "kronfluence" / "deltainf"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if kron.is_dir() and any(".partial-" in p.name for p in kron.iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before factor fitting could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(cache)
    assert not any(k.startswith("scores-") for k in store.cache.iterkeys())
    assert not any(p.name.startswith("factors_") and ".partial-" not in p.name for p in kron.iterdir())
    # The rerun trusts the finished model, refits the factors, and — same seed — flags exactly the same points.
    exp = Experiment(Config(cache_dir=str(cache)), store=store)
    flagged = exp.detect("delta_influence").flagged
    assert exp.timings.cached["train_s"] and not exp.timings.cached["factors_s"]
    reference = demo.detect("delta_influence").flagged
    assert np.array_equal(flagged, reference), f"{(flagged ^ reference).sum()} points differ"
