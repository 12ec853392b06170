"""Influence: Δ of every training point on every copy, and the τ/k rule that flags influence collapse."""
import numpy as np
import streamlit as st

from deltainf.figures import influence as figures
from ui import prerequisites as pre
from ui.figures import delta_view, detector_params, suggestion
from ui.review import review
from ui.state import runtime

STEP = 0.05
MAX_SHOWN = 30
LIVE = {"displayModeBar": False}  # charts redrawn on every τ/k move: no toolbar to rebuild each time

st.title("Influence")
st.caption("EK-FAC influence scores every training point against the test image and its T copies. "
           "Δ[t, i] = score(copy t, point i) − score(original, point i). A poison's influence collapses "
           "(Δ < τ) on nearly every copy; flag a point when at least T − k of its Δ fall below τ.")

instance, exp = pre.require_trained()
pre.await_job(pre.scores_job(instance, exp), what="Computing influence in the background…")
view = delta_view(instance, exp)
detector_params(view, exp)
suggested = suggestion(instance, exp)

known = "" if view.is_poison is None else f" ({int(view.is_poison.sum())} poisons, known here)"
st.markdown(f"{view.delta.shape[1]} training points{known}, T = {view.T} copies ({exp.config.mode}). Raw scores are "
            f"unnormalised, so τ is set in units of their **scale** = median |score| on the original test image = "
            f"**{view.scale:.4g}**.")


def _from_rel() -> None:
    ss = st.session_state
    ss.det_tau, ss.det_chosen = float(ss.tau_rel) * view.scale, True
    ss.tau_raw = ss.det_tau


def _from_raw() -> None:
    ss = st.session_state
    ss.det_tau, ss.det_chosen = float(ss.tau_raw), True
    ss.tau_rel = _rel(ss.det_tau)


def _from_k() -> None:
    st.session_state.det_k, st.session_state.det_chosen = int(st.session_state.k), True


def _use_suggestion() -> None:
    st.session_state.det_tau, st.session_state.det_k = suggested
    st.session_state.det_chosen = False


def _rel(tau: float) -> float:
    return float(np.clip(round(tau / view.scale / STEP) * STEP, -2.0, 2.0))


@st.fragment
def live() -> None:
    """Controls and everything they change; a move reruns only this part."""
    ss = st.session_state
    tau, k = float(ss.det_tau), int(ss.det_k)
    # Widgets take their values from the session's τ and k, which outlive page switches. Written on every
    # run on purpose: a browser that fell behind (fast key presses) is put back in step with what is used.
    ss.tau_raw = tau
    ss.tau_rel = _rel(tau)
    ss.k = k
    c1, c2, c3 = st.columns([3, 2, 3])
    c1.slider("τ in units of the scale", -2.0, 2.0, step=STEP, key="tau_rel", on_change=_from_rel,
              help="A Δ below τ counts as a drop. 0 is the paper code's default.")
    c2.number_input("exact τ (raw score units)", key="tau_raw", format="%.6g", step=view.scale * STEP,
                    on_change=_from_raw, help="Any value, e.g. the paper's τ ∈ {0, −1, −5, −10, −100}.")
    if view.T > 1:
        c3.slider("k: copies allowed not to drop", 0, view.T - 1, key="k", on_change=_from_k,
                  help=f"Flag a point when at least T − k = {view.T} − k copies drop.")
    else:
        c3.caption("k = 0: with T = 1 the one copy must drop.")
    current = (tau, k) == tuple(suggested)
    st.button(("Using" if current else "Use") + f" the suggestion: τ = {suggested[0] / view.scale:+.2f} × scale, "
              f"k = {suggested[1]}", key="use_suggested", on_click=_use_suggestion, disabled=current,
              help="Chosen without ground truth: the cut T − k that best separates the pile-up at T drops from "
                   "the rest of the drop-count histogram.")
    m = view.metrics(tau, k)
    with st.container(key="live_metrics", horizontal=True):
        if view.is_poison is not None:
            st.metric("TPR", f"{m['tpr']:.3f}", help="Share of the poisons that are flagged.", border=True)
            st.metric("Precision", f"{m['precision']:.3f}", help="Share of the flagged that are poisons.", border=True)
        st.metric("Flagged", f"{m['n_flagged']}", help=f"of {view.delta.shape[1]} training points", border=True)
        if view.is_poison is not None:
            st.metric("Poisons found", f"{round(m['tpr'] * m['n_poison'])} / {m['n_poison']}", border=True)
            st.metric("F1", f"{m['f1']:.3f}", help="Harmonic mean of TPR and precision.", border=True)
        else:
            at = view.metrics(*suggested)["n_flagged"]
            st.metric("At the suggestion", f"{at}", border=True, help="How many the suggested τ and k flag.")
        st.metric("Rule", f"Δ < {tau:.3g} on ≥ {view.T - k} / {view.T}", border=True,
                  help=f"Flag a training point when at least T − k = {view.T - k} of its T = {view.T} Δ fall below "
                       f"τ ({figures.fmt_tau(tau / view.scale, tau)}).")
    left, right = st.columns(2)
    with left:
        t = st.selectbox("Copy", range(view.T), format_func=lambda i: view.names[i], key="transform",
                         help="Which transformed copy's Δ to show.")
        st.plotly_chart(figures.delta_histogram(view, t, tau, k), key="delta_hist", config=LIVE)
    with right:
        st.plotly_chart(figures.count_histogram(view, tau, k), key="count_hist", config=LIVE)
    flagged = view.flags(tau, k)
    order = figures.flagged_order(view, flagged, tau)
    if len(order) == 0:
        st.info("Nothing is flagged at this τ and k: raise τ or k.")
    else:
        more = f" (the {MAX_SHOWN} most collapsed of {len(order)})" if len(order) > MAX_SHOWN else ""
        st.caption(f"Flagged training points{more}, most collapsed first.")
        st.plotly_chart(figures.flagged_rows_figure(view, exp.train_set.x_train, order[:MAX_SHOWN],
                                                    exp.train_set.classes, exp.train_set.train_paths),
                        key="flagged_rows",
                        config=LIVE)


live()

if st.toggle("Show every copy at a glance (small multiples)", key="show_multiples"):
    st.plotly_chart(runtime().view(("multiples", instance.content, exp.config.mode),
                                   lambda: figures.small_multiples(view)), key="small_multiples")
review(instance, exp, view)
pre.page_link("unlearn", "Next: unlearn the flagged points")
