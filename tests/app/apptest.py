"""What the AppTest modules share: run a page until it is done, read its metrics and texts."""
from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

SLOW = 600  # seconds: a cold stage on a loaded 2-core machine


def check(at: AppTest) -> AppTest:
    assert not at.exception, "\n".join(f"{e.message}\n{''.join(e.stack_trace)}" for e in at.exception)
    return at


def settle(at: AppTest, done, timeout: float = SLOW) -> AppTest:
    """Rerun (as the page's progress poller would) until ``done(at)``; fail on any exception."""
    deadline = time.time() + timeout
    while not done(check(at)):
        assert time.time() < deadline, f"page did not finish: {[e.value for e in at.error]}"
        time.sleep(0.3)
        at.run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def flagged_line(at: AppTest) -> str:
    """The Influence page's server-side line: "**N flagged** at τ = …, k = … (suggested or chosen)"."""
    return next((str(m.value) for m in at.markdown if "flagged** at τ" in str(m.value)), "")


def n_flagged(at: AppTest) -> int:
    return int(flagged_line(at).split("**")[1].split()[0])
