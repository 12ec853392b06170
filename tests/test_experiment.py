"""The built-in experiment end to end: the attack implants, Δ-Influence finds it, EU removes it."""
import numpy as np
import pytest

from deltainf import Config
from deltainf.errors import ConfigError
from deltainf.experiment import Experiment
from deltainf.store import Store


def test_attack_implants_and_model_is_accurate(demo):
    m = demo.model_metrics
    assert m["clean_acc"] >= 0.93
    assert m["poison_success"] >= 0.8
    assert demo.query_label == demo.poisoned.target
    assert demo.test_index in demo.poisoned_test_candidates


def test_delta_influence_beats_naive_ekfac(demo):
    d = demo.detection_report("delta_influence")
    e = demo.detection_report("ekfac")
    assert d["tpr"] >= 0.5
    assert d["precision"] >= 3 * e["precision"]
    assert e["tpr"] >= 0.8 and e["n_flagged"] > 5 * d["n_flagged"]  # naive flags a large share of clean data
    assert demo.investigation.scores().shape == (51, len(demo.is_poison))


def test_ablations_follow_the_papers_pattern(demo):
    full = demo.detection_report("delta_influence")
    label_only = demo.detection_report("delta_label_only")
    image_only = demo.detection_report("delta_image_only")
    assert label_only["precision"] < full["precision"]
    assert image_only["tpr"] < full["tpr"]


def test_eu_on_flags_removes_the_poison(demo):
    before = demo.model_metrics
    model, after = demo.investigation.unlearning.unlearn("eu", demo.detect("delta_influence").flagged)
    assert after["n_removed"] == demo.detection_report("delta_influence")["n_flagged"]
    assert after["poison_success"] <= before["poison_success"] - 0.5
    assert after["clean_acc"] >= before["clean_acc"] - 0.03


def test_second_run_recomputes_nothing(demo, cache_dir, monkeypatch):
    from deltainf.influence import ekfac, stages
    from deltainf.models import training

    def forbidden(*a, **k):
        raise AssertionError("a cached stage was recomputed")

    demo.investigation.unlearning.unlearn("eu", demo.detect("delta_influence").flagged)
    monkeypatch.setattr(training, "train_model", forbidden)
    monkeypatch.setattr(ekfac, "fit_factors", forbidden)
    monkeypatch.setattr(ekfac, "pairwise_scores", forbidden)
    monkeypatch.setattr(stages, "make_queries", forbidden)
    again = Experiment(Config(cache_dir=str(cache_dir)), store=Store(cache_dir))
    np.testing.assert_array_equal(again.detect("delta_influence").flagged, demo.detect("delta_influence").flagged)
    again.investigation.unlearning.unlearn("eu", again.detect("delta_influence").flagged)
    assert all(again.timings.cached.values()), again.timings.cached


def test_damaged_cache_entry_is_recomputed_not_served(demo, cache_dir):
    store = Store(cache_dir)
    exp = Experiment(Config(cache_dir=str(cache_dir)), store=store)
    q = exp.investigation.queries()
    key = next(k for k in store.cache.iterkeys() if k.startswith("scores-"))
    good = store.cache.get(key)
    store.cache.set(key, good[: len(good) // 2])  # truncated, as after a disk fault
    with pytest.warns(UserWarning, match="damaged"):
        assert store.get(key) is None
    assert key not in store  # dropped, so the next run recomputes it
    assert q.T == 50


def test_test_index_out_of_range_is_caught_before_training(cache_dir):
    exp = Experiment(Config(cache_dir=str(cache_dir), test_index=999), store=Store(cache_dir))
    with pytest.raises(ConfigError, match="out of range"):
        exp.validate()


def test_user_query_image(demo, cache_dir):
    img = demo.poisoned.x_trigger_test[demo.test_index].clone()
    exp = Experiment(Config(cache_dir=str(cache_dir)), store=Store(cache_dir), query_image=img)
    assert exp.query_label == demo.query_label
    assert exp.investigation.queries().images.shape == demo.investigation.queries().images.shape


def test_another_tau_k_reuses_scores_and_flags_by_the_new_rule(demo, monkeypatch):
    from deltainf.influence import ekfac
    from deltainf.influence.delta import delta_flags

    inv = demo.investigation
    tau, k, _ = inv.tau_k()
    monkeypatch.setattr(ekfac, "pairwise_scores", lambda *a, **kw: pytest.fail("scores recomputed"))
    assert inv.tau_k(tau=tau * 2 - 1.0, k=3) == (tau * 2 - 1.0, 3, False)
    expected = delta_flags(inv.delta(), tau * 2 - 1.0, 3)
    assert np.array_equal(demo.detect("delta_influence", tau * 2 - 1.0, 3).flagged, expected)
    assert not np.array_equal(expected, demo.detect("delta_influence").flagged)
    assert demo.detect("delta_influence").params["tau"] == tau  # the suggestion's flags are untouched


def test_transform_seed_redraws_the_copies_not_the_model(demo):
    import torch

    other = Experiment(demo.config.replace(transform_seed=demo.config.seed + 1), store=demo.store)
    assert other.train_key == demo.train_key  # the model is reused
    a, b = demo.investigation.queries(), other.investigation.queries()
    assert torch.equal(a.images[0], b.images[0]) and not torch.equal(a.images[1:], b.images[1:])
    same = Experiment(demo.config.replace(transform_seed=demo.config.seed), store=demo.store)
    assert torch.equal(same.investigation.queries().images, a.images)  # None means the experiment's seed
    with pytest.raises(ConfigError, match="transform"):
        demo.config.replace(transform_seed=-1)


def test_cpu_thread_count_is_part_of_the_model_key(demo):
    """Multi-threaded CPU sums depend on the thread count, so models trained with another count are not mixed."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        assert Experiment(demo.config, store=demo.store).train_key != demo.train_key
    finally:
        torch.set_num_threads(before)
    assert Experiment(demo.config, store=demo.store).train_key == demo.train_key


@pytest.mark.slow
def test_a_model_at_chance_is_not_an_implanted_backdoor(cache_dir):
    """Ten training images: the model sends everything to the target, so "poison success" is 1 without a backdoor."""
    exp = Experiment(Config(n_train=10, cache_dir=str(cache_dir)), store=Store(cache_dir))
    assert exp.model_metrics["poison_success"] >= 0.5
    assert not exp.implanted and "chance" in exp.implant_problem
