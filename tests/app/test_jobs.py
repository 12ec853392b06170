"""Background jobs: what the progress box reads, and cancelling one."""
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deltainf.progress import Reporter  # noqa: E402
from ui.jobs import Runtime  # noqa: E402


def test_a_job_names_the_item_it_is_in_and_stops_when_cancelled():
    exp, seen = SimpleNamespace(reporter=Reporter()), []

    def grid(e):  # a long loop that reports, like unlearning_grid
        for i in range(1, 1000):
            with e.reporter.within(f"run {i}/999: EU on ekfac's flags"):
                e.reporter("unlearn eu", 1, 3)
            seen.append(i)
            time.sleep(0.01)
        return "done"

    job = Runtime().start(("cancel-test",), "Grid", exp, grid)
    while not seen:
        time.sleep(0.01)
    assert job.text().startswith("run ") and "/999: EU on ekfac's flags · unlearn eu: retraining" in job.text()
    job.cancel()
    assert job.finished.wait(10)
    assert job.cancelled and job.error == "cancelled" and job.result is None and len(seen) < 999


def test_a_setting_that_does_not_train_keeps_the_model():
    """The training job's key and the uploads follow the options training reads — derived from the option sections
    and the attacks' settings, not a hand-kept list — so a detector's or the re-check's setting keeps the model."""
    from deltainf import Config
    from deltainf.config import CaseConfig
    from ui.state import train_fields

    base = Config()
    for kept in ({"kin_quantile": 0.3}, {"stamp_tolerance": 4}, {"verdict_threshold": 3.0}, {"max_rounds": 5},
                 {"lambda_examples": 100}, {"test_index": 3}, {"tau": -1.0}, {"ssd_alpha": 10.0}):
        assert train_fields(base.replace(**kept)) == train_fields(base), kept
    for trains in ({"epochs": 3}, {"seed": 1}, {"trigger_size": 4}, {"attack": "blended"}, {"poison_count": 20}):
        assert train_fields(base.replace(**trains)) != train_fields(base), trains
    case = CaseConfig(data_root="/d", model="cnn", query="q.png")
    assert train_fields(case.replace(known_poisons="known.txt")) == train_fields(case)
    assert train_fields(case.replace(weights="w.safetensors")) != train_fields(case)
