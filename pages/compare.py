"""Compare: every detector the engine has, on the same experiment, against the ground truth."""
import streamlit as st

from deltainf import comparison, report, views
from deltainf.detect import DETECTORS
from deltainf.unlearn import UNLEARNERS
from pages import _ui as ui

st.title("Compare")
st.caption("Every registered detector on this experiment. Δ-Influence and its ablations use τ and k from the "
           "Influence page (the engine's suggestion from Δ while none is set); the baselines their own defaults. "
           "Ground truth is known here, so TPR and precision are exact.")

ikey, pipe = ui.require_trained()
names = list(DETECTORS)
# Every detector once per experiment (baselines fit their own models, so this is the slow part)…
rows = ui.await_job(ui.runtime().start(("compare", ikey, tuple(names)), "Every detector", pipe,
                                       lambda p: comparison.detector_rows(p, names)),
                    what="Running every detector in the background (ablations need their own scoring passes, "
                         "baselines their own fits)…")
# …then the ones with a τ/k rule again at the session's τ and k: fast, from the cached scores.
tau, k = st.session_state.det_tau, st.session_state.det_k
tuned = [n for n in names if {"tau", "k"} & set(pipe.detect(n).params)]
tk_pipe = pipe  # Δ detectors at the τ and k the user chose on Influence (else each one's own suggestion)
if st.session_state.get("det_chosen") and tau is not None and k is not None and tuned:
    k = min(k, pipe.config.transforms - 1)
    tk_pipe = ui.runtime().view(("at_tau_k", ikey, tau, k), lambda: pipe.at_tau_k(tau, k))
    again = ui.await_job(ui.runtime().start(("compare", ikey, tau, k, tuple(tuned)), "Δ detectors at your τ and k",
                                            tk_pipe, lambda p: comparison.detector_rows(p, tuned)))
    by_name = {r["detector"]: r for r in again}
    rows = [by_name.get(r["detector"], r) for r in rows]
rows = [{**r, "what it does": views.doc_line(DETECTORS[r["detector"]])} for r in rows]

# Several known poisoned test points (paper Tables 4–5): Δ-Influence and boosted EK-FAC, flags intersected.
available = len(pipe.poisoned_test_candidates)
n_points = st.number_input(
    "Known poisoned test points", min_value=1, max_value=max(1, available), value=1, step=1, key="compare_points",
    help=f"With N > 1, Δ-Influence and naive EK-FAC run on N poisoned test images (the chosen one first) and flag "
         f"only what every one of them flags. {available} triggered test images go to the target here.")
if n_points > 1:
    cfg = ui.config().replace(test_points=int(n_points))
    if tau is not None and k is not None:
        cfg = cfg.replace(tau=tau, k=k)
    mp_key, mp_pipe = ui.pipeline(cfg)
    multi = ui.await_job(ui.runtime().start(("compare-multi", mp_key), f"Detectors over {n_points} test points",
                                            mp_pipe, lambda p: comparison.detector_rows(p, ["delta_influence", "ekfac"])),
                         what=f"Scoring {n_points} poisoned test images and their copies in the background…")
    rows += [{**r, "detector": f"{r['detector']} × {n_points} points",
              "what it does": f"{'Δ-Influence' if r['detector'] == 'delta_influence' else 'naive EK-FAC'} on "
                              f"{n_points} known poisoned test images, flags intersected"} for r in multi]
with st.container(key="compare_table"):
    st.table([{**r, "TPR": f"{r['TPR']:.3f}", "precision": f"{r['precision']:.3f}", "F1": f"{r['F1']:.3f}"} for r in rows])
st.plotly_chart(comparison.compare_figure(rows), key="compare_scatter")

st.subheader("Unlearning after each detector")
st.caption("Each unlearning method on each detector's flags: poison success and clean accuracy afterwards. Flags "
           "that hold many clean points show which methods survive false positives (EU/CF) and which lose "
           "accuracy (SSD, SCRUB) — the paper's Figures 3–5 in one view.")
c1, c2 = st.columns([3, 2])
methods = c1.multiselect("Methods", list(UNLEARNERS), default=list(UNLEARNERS), key="grid_methods",
                         format_func=str.upper)
singles = [r["detector"] for r in rows if r["detector"] in DETECTORS]
chosen = c2.multiselect("Detectors", singles, default=singles,
                        key="grid_detectors")
grid_key = ("unlearn-grid", ikey, tau, k, tuple(chosen), tuple(methods))
if st.button(f"Unlearn {len(chosen)} × {len(methods)} flag sets", key="run_grid", icon=":material/play_arrow:",
             disabled=not (methods and chosen)):
    ui.runtime().start(grid_key, "Unlearning every detector's flags", tk_pipe,
                       lambda p: report.unlearning_grid(p, chosen, methods))
    st.session_state.grid_job = grid_key
last = st.session_state.get("grid_job")
job = ui.runtime().jobs.get(last) if last else None
if job is None or last[1] != ikey:
    st.info("Choose methods and detectors, then press the button (EU retrains once per detector; on the built-in "
            "data each run takes a few seconds).")
    ui.stop()
grid = ui.await_job(job, what="Unlearning each detector's flags in the background…")
with st.container(key="grid_table"):
    st.table([{"detector": r["detector"], "method": r["method"].upper(), "flagged": r["n_flagged"],
               "clean accuracy": f"{r['clean_acc']:.3f}", "poison success": f"{r['poison_success']:.2f}"}
              for r in grid])
st.plotly_chart(comparison.unlearning_grid_figure(grid), key="grid_figure")
