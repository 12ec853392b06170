"""The command line: the JSON contract, the flagged CSV, and one clear line for every bad input."""
import csv
import json
import subprocess
import sys

import pytest

from deltainf.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_and_flagged_csv(demo, cache_dir, tmp_path, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "f.csv"
    code, stdout, _ = _run(capsys, "run", "--cache-dir", str(cache_dir), "--unlearn", "eu", "--json", str(out_json),
                           "--flagged-out", str(out_csv), "--quiet")
    assert code == 0 and "delta_influence" in stdout
    r = json.loads(out_json.read_text())
    assert set(r) >= {"config", "data", "model", "detectors", "unlearn", "timings"}
    assert set(r["data"]) >= {"n_train", "n_test", "n_poison", "victim", "target", "test_index"}
    assert r["config"]["victim"] == r["data"]["victim"] and r["config"]["epochs"] == 12
    d = r["detectors"]["delta_influence"]
    assert set(d) >= {"tpr", "precision", "n_flagged", "tau", "k"} and 0 <= d["tpr"] <= 1 and 0 <= d["precision"] <= 1
    assert set(r["detectors"]["ekfac"]) >= {"tpr", "precision", "n_flagged"}
    assert set(r["unlearn"]["eu"]) >= {"detector", "clean_acc", "poison_success", "seconds"}
    assert set(r["timings"]) == {"train_s", "factors_s", "scores_s", "detect_s", "unlearn_s", "verdict_s"}
    assert r["verdict"]["poisoned"] and set(r["verdict"]) == {"poisoned", "score", "threshold", "reason", "parts"}
    assert "behind_the_image" not in r  # only when the verdict finds no evidence
    assert d == demo.detection_report("delta_influence")
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == d["n_flagged"]
    assert all(int(row["drop_count"]) >= 50 - d["k"] and float(row["mean_delta"]) < 0 for row in rows)
    assert {row["flagged_by"] for row in rows} == {f"delta_influence (τ = {d['tau']:.4g}, k = {d['k']})"}
    assert sum(int(row["known_poison"]) for row in rows) == round(d["tpr"] * r["data"]["n_poison"])
    # The same run again: its unlearnt model comes from the cache, and the line says so rather than "0.0 s".
    code, stdout, _ = _run(capsys, "run", "--cache-dir", str(cache_dir), "--unlearn", "eu", "--quiet")
    assert code == 0 and "poison success" in stdout
    assert [ln for ln in stdout.splitlines() if ln.startswith("unlearn eu")][0].endswith("[from the cache]")
    # --explain: Δ refined step by step, once it is among the detectors (the verdict ran it already: cached).
    code, stdout, err = _run(capsys, "run", "--cache-dir", str(cache_dir), "--explain", "--quiet")
    assert code == 0 and "step by step" not in stdout and "add delta_refined to --detectors" in err
    code, stdout, _ = _run(capsys, "run", "--cache-dir", str(cache_dir), "--detectors", "delta_refined", "--explain",
                           "--quiet")
    steps = demo.detection_report("delta_refined")["steps"]
    assert code == 0 and "delta_refined, step by step:" in stdout and steps[0]["step"] == "candidates"
    assert all(s["what"] in stdout for s in steps) and steps[-1]["count"] == demo.detect("delta_refined").flagged.sum()


@pytest.mark.parametrize("argv, needle", [
    (["run", "--dataset", "mnist"], "--dataset"),
    (["run", "--attack", "trojan"], "--attack"),
    (["run", "--model", "vgg"], "--model"),
    (["run", "--mode", "half"], "--mode"),
    (["run", "--detectors", "delta_influence,magic"], "--detectors"),
    (["run", "--unlearn", "forget"], "--unlearn"),
    (["run", "--device", "tpu"], "--device"),
    (["run", "--stream", "maybe"], "--stream"),
    (["run", "--tau", "abc"], "--tau"),
    (["run", "--k", "-1"], "--k"),
    (["run", "--k", "50"], "--k"),
    (["run", "--transforms", "0"], "--transforms"),
    (["run", "--epochs", "0"], "--epochs"),
    (["run", "--poison-count", "-1"], "--poison-count"),
    (["run", "--victim", "3", "--target", "3"], "--victim"),
    (["run", "--victim", "10"], "--victim"),
    (["run", "--test-index", "5000"], "--test-index"),
    (["run", "--dataset", "imagefolder", "--data-root", "/nonexistent/data"], "does not exist"),
    (["run", "--dataset", "imagefolder"], "--data-root"),
    (["run", "--epochs", "two"], "--epochs"),
    (["run", "--bogus-flag"], "unrecognized"),
    (["explode"], "invalid choice"),
    (["--bogus"], "see: python -m deltainf --help"),
    (["run", "--detectors", ""], "--detectors"),
    (["run", "--ekfac-threshold", "nan"], "--ekfac-threshold"),
    (["run", "--transform-seed", "-1"], "transform"),
    (["run", "--detectors", "none", "--flagged-out", "out.csv"], "--flagged-out"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, cache_dir, capsys):
    code, stdout, stderr = _run(capsys, *argv, *(["--cache-dir", str(cache_dir)] if argv[0] == "run" else []))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in stderr


def test_unwritable_cache_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = _run(capsys, "run", "--cache-dir", str(blocker / "cache"))
    assert code == 2 and "--cache-dir" in stderr and len(stderr.strip().splitlines()) == 1


def test_missing_folder_layout(tmp_path, capsys):
    (tmp_path / "train" / "a").mkdir(parents=True)
    code, _, stderr = _run(capsys, "run", "--dataset", "imagefolder", "--data-root", str(tmp_path),
                           "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "test/" in stderr


def test_real_process_prints_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "deltainf", "run", "--tau", "nan", "--cache-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--tau" in r.stderr


def test_bad_thread_setting_is_one_line(monkeypatch, cache_dir, capsys):
    monkeypatch.setenv("DELTAINF_TORCH_THREADS", "many")
    code, _, stderr = _run(capsys, "run", "--cache-dir", str(cache_dir))
    assert code == 2 and stderr.strip().splitlines() == [stderr.strip()] and "DELTAINF_TORCH_THREADS" in stderr


@pytest.mark.slow
def test_attack_that_did_not_implant_writes_no_flagged_csv(cache_dir, tmp_path, capsys):
    out = tmp_path / "flagged.csv"
    code, stdout, stderr = _run(capsys, "run", "--cache-dir", str(cache_dir), "--poison-count", "0", "--quiet",
                                "--flagged-out", str(out))
    assert code == 0 and "did not implant" in stdout
    assert "not written" in stderr and not out.exists()
