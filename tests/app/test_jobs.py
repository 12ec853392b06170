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
