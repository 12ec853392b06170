"""A page with only the Influence page's live area over a synthetic Δ (``benchmarks/live_component.py`` runs it):
N training points × T copies, 1 % of them poisons whose influence collapses on nearly every copy."""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import streamlit as st  # noqa: E402

from deltainf.figures.influence import DeltaView  # noqa: E402
from deltainf.figures.live import live_payload, tau_grid  # noqa: E402
from deltainf.influence.suggest import resolve_tau_k  # noqa: E402
from ui.live import delta_live  # noqa: E402


@st.cache_resource
def made(n: int, t: int):
    rng = np.random.default_rng(0)
    poison = np.zeros(n, bool)
    poison[rng.choice(n, n // 100, replace=False)] = True
    original = rng.standard_cauchy(n)
    scores = np.vstack([original, original + rng.normal(0, 1, (t, n)) * np.abs(rng.standard_cauchy(n))])
    scores[1:, poison] -= np.abs(original[poison]) * 50 + 20  # the collapse
    start = time.perf_counter()
    view = DeltaView.build(scores, poison, [f"{i + 1}: copy · random label {i % 10}" for i in range(t)], np.zeros(n))
    tau, k, _ = resolve_tau_k(scores, None, None)
    grid = tau_grid(tau / view.scale)
    payload = live_payload(view, grid, f"synthetic-{n}x{t}")
    seconds = time.perf_counter() - start
    return payload, grid.index(tau / view.scale), int(k), seconds


n, t = int(os.environ.get("LIVE_N", "50000")), int(os.environ.get("LIVE_T", "50"))
payload, index, k, seconds = made(n, t)
st.caption(f"payload {len(json.dumps(payload)) / 1e6:.2f} MB (JSON), built in {seconds:.2f} s")
delta_live({**payload, "tau_index": index, "k": k, "rev": 0, "suggested": {"index": index, "k": k}}, lambda: None)
