"""torchrun: `fit-factors` / `score` write the influence stages into the cache a later single-process run reads.

On CPUs kronfluence has no distributed path: rank 0 computes, the other ranks wait and read its result. The
GPU path (kronfluence sharding the training set over the ranks) is measured by benchmarks/gpu.py, not here.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from deltainf import Config
from deltainf.cli import main
from deltainf.experiment import Experiment
from deltainf.store import Store

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # what the torchrun command runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cached_scores(cache_dir, transforms):
    exp = Experiment(Config(cache_dir=str(cache_dir), transforms=transforms), store=Store(cache_dir))
    scores = exp.investigation.scores()
    return scores, exp.timings.cached["scores_s"]


def test_world_size_one_writes_what_a_single_process_reads(demo, cache_dir, monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    assert main(["score", "run", "--transforms", "3", "--cache-dir", str(cache_dir), "--quiet"]) == 0
    assert not dist.is_initialized()  # the process group is left as found
    out = capsys.readouterr().out
    assert "full 4×" in out and "(1 process)" in out
    assert main(["fit-factors", "run", "--cache-dir", str(cache_dir), "--quiet"]) == 0
    assert "EK-FAC factors: " in capsys.readouterr().out
    scores, cached = _cached_scores(cache_dir, 3)
    assert cached and scores.shape == (4, len(demo.data.y_train))


def test_two_processes_on_cpus_share_one_cache(demo, cache_dir):
    env = {**os.environ, "DELTAINF_TORCH_THREADS": str(torch.get_num_threads()),  # models are keyed by it
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run(TORCHRUN + ["--standalone", "--nproc_per_node=2", "-m", "deltainf", "score", "run",
                           "--transforms", "4", "--cache-dir", str(cache_dir), "--quiet"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("influence scores cached") == 1  # rank 0 alone reports
    scores, cached = _cached_scores(cache_dir, 4)
    assert cached and scores.shape == (5, len(demo.data.y_train))
    assert np.isfinite(scores).all()


def test_torchrun_scores_an_investigation(user_case, tmp_path):
    from deltainf.case import Case
    from deltainf.config import CaseConfig

    options = dict(data_root=str(user_case["root"]), model=f"{ROOT / 'tests' / 'case' / 'user_model.py'}:build",
                   weights=str(user_case["weights"]), query=str(user_case["query"]), image_size=16,
                   cache_dir=str(tmp_path / "cache"), transforms=5)
    argv = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    env = {**os.environ, "DELTAINF_TORCH_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(TORCHRUN + ["--standalone", "--nproc_per_node=2", "-m", "deltainf", "score",
                           "investigate", *argv, "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    case = Case(CaseConfig(**options))
    scores = case.investigation.scores()
    assert case.timings.cached["scores_s"] and scores.shape == (6, 1438)


def test_whole_commands_refuse_several_processes(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "deltainf score run" in err
