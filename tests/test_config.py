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
