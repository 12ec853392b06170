import pytest

from deltainf import Config
from deltainf.config import default_cache_dir
from deltainf.errors import ConfigError


@pytest.mark.parametrize("changes, needle", [
    ({"dataset": "mnist"}, "--dataset"),
    ({"attack": "trojan"}, "--attack"),
    ({"model": "vgg"}, "--model"),
    ({"mode": "half"}, "--mode"),
    ({"device": "tpu"}, "--device"),
    ({"detectors": ("delta_influence", "magic")}, "--detectors"),
    ({"unlearn": ("forget",)}, "--unlearn"),
    ({"tau": float("nan")}, "--tau"),
    ({"k": -1}, "--k"),
    ({"k": 50}, "--k"),
    ({"transforms": 0}, "--transforms"),
    ({"epochs": 0}, "--epochs"),
    ({"poison_count": -3}, "--poison-count"),
    ({"victim": 2, "target": 2}, "--victim"),
    ({"victim": -1}, "--victim"),
    ({"test_index": -2}, "--test-index"),
    ({"dataset": "imagefolder"}, "--data-root"),
    ({"lr": 0.0}, "--lr"),
    ({"clean_below": 0.0}, "--clean-below"),
    ({"clean_below": 1.5}, "--clean-below"),
])
def test_bad_values_fail_at_construction_with_one_line(changes, needle):
    with pytest.raises(ConfigError) as exc:
        Config(**changes)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


def test_k_range_follows_T():
    assert Config(transforms=5, k=4).k == 4
    with pytest.raises(ConfigError, match="0..4"):
        Config(transforms=5, k=5)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DELTAINF_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert Config().cache_path == tmp_path / "c"
    assert Config(cache_dir=str(tmp_path / "d")).cache_path == tmp_path / "d"


def test_the_shared_evidence_and_the_recheck_do_not_need_a_detector():
    """--until-clean's give-back and the kin read settings of their own sections: a Config composed without Δ refined
    still has them, and the command line lists each once."""
    import dataclasses

    from deltainf.cli import build_parser
    from deltainf.config import SECTIONS, compose, entry_sections

    sections = [s for s in SECTIONS + entry_sections() if s[0] != "detector delta_refined"]
    fields = {f.name for f in dataclasses.fields(compose("NoRefined", sections, lambda c: None, ""))}
    assert {"kin_quantile", "refined_rounds", "refined_min_share", "max_rounds", "clean_below"} <= fields
    assert "stamp_tolerance" not in fields and "stamp_tolerance" in {f.name for f in dataclasses.fields(Config)}
    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert text.count("--kin-quantile") == 1 and text.count("--refined-rounds") == 1
