"""The Influence page's live τ/k area: a Streamlit component (components v2; HTML/CSS/JS from this folder, no
build step, nothing fetched at run time) that recomputes the drop counts, histograms, flagged-against-τ curve and
metrics in the browser on every move, and reports the chosen τ/k once the user settles."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import streamlit as st

HERE = Path(__file__).parent
KEY = "delta_live"


@st.cache_resource(show_spinner=False)
def _component():
    return st.components.v2.component("deltainf.delta_live", js=(HERE / "delta_live.js").read_text(),
                                      css=(HERE / "delta_live.css").read_text())


def delta_live(data: dict, on_choice: Callable[[], None]) -> None:
    """Mount the live area (``key="delta_live"``) with :func:`~deltainf.figures.live.live_payload`'s data plus the
    current ``tau_index``, ``k``, ``rev`` and ``suggested``; ``on_choice`` runs when the user settles."""
    _component()(key=KEY, data=data, on_choice_change=on_choice, height="content")


def choice() -> dict | None:
    """What the user settled on: {version, index, k, copy, suggested}, or None."""
    state = st.session_state.get(KEY)
    return None if state is None else state.get("choice")
