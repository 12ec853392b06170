"""Compare: every detector the engine has, on the same experiment, against the ground truth."""
import streamlit as st

from deltainf import views
from deltainf.detect import DETECTORS
from pages import _ui as ui

st.title("Compare")
st.caption("Every registered detector on this experiment. Δ-Influence and its ablations use τ and k from the "
           "Influence page (the engine's suggestion from Δ while none is set); the baselines their own defaults. "
           "Ground truth is known here, so TPR and precision are exact.")

ikey, pipe = ui.require_trained()
names = list(DETECTORS)
# Every detector once per experiment (baselines fit their own models, so this is the slow part)…
rows = ui.await_job(ui.runtime().start(("compare", ikey, tuple(names)), "Every detector", pipe,
                                       lambda p: views.detector_rows(p, names)),
                    what="Running every detector in the background (ablations need their own scoring passes, "
                         "baselines their own fits)…")
# …then the ones with a τ/k rule again at the session's τ and k: fast, from the cached scores.
tau, k = st.session_state.det_tau, st.session_state.det_k
tuned = [n for n in names if {"tau", "k"} & set(pipe.detect(n).params)]
if tau is not None and k is not None and tuned:
    cfg = ui.config()
    tk_key, tk_pipe = ui.pipeline(cfg.replace(tau=tau, k=min(k, cfg.transforms - 1)))
    again = ui.await_job(ui.runtime().start(("compare", tk_key, tuple(tuned)), "Δ detectors at your τ and k",
                                            tk_pipe, lambda p: views.detector_rows(p, tuned)))
    by_name = {r["detector"]: r for r in again}
    rows = [by_name.get(r["detector"], r) for r in rows]
rows = [{**r, "what it does": views.doc_line(DETECTORS[r["detector"]])} for r in rows]
with st.container(key="compare_table"):
    st.table([{**r, "TPR": f"{r['TPR']:.3f}", "precision": f"{r['precision']:.3f}"} for r in rows])
st.plotly_chart(views.compare_figure(rows), key="compare_scatter")
