"""Influence: Δ of every training point on every copy, and the τ/k rule that flags influence collapse."""
import numpy as np
import streamlit as st

from deltainf.figures import live as live_figures
from deltainf.figures.influence import small_multiples
from ui import prerequisites as pre
from ui.figures import delta_view, detector_params, flagged_table, suggestion, thumbnail_strip
from ui.live import choice, delta_live
from ui.refined import REFINED, RULES, TUNED, refined_flags, refined_section
from ui.review import marks, with_mark, review
from ui.state import runtime
from ui.verdict import headline

st.title("Influence")
instance, exp = pre.require_trained()
st.session_state.page_run = st.session_state.get("page_run", 0) + 1  # a run of the whole page, not its fragment
pre.await_job(pre.scores_job(instance, exp), what="Computing influence in the background…")
verdict_slot = st.container()  # filled last: the verdict's models train only once the live area is drawn
view = delta_view(instance, exp)
detector_params(view, exp)
suggested = suggestion(instance, exp)
known = "" if view.is_poison is None else f" ({int(view.is_poison.sum())} poisons, known here)"
st.caption(f"{view.delta.shape[1]} training points{known} · T = {view.T} copies ({exp.config.mode}) · Δ = influence "
           "on a copy − influence on the test image. A poison's influence collapses (Δ < τ) on nearly every copy: "
           "flag a point when at least T − k of its Δ fall below τ. Arrow keys move a focused slider.")


def _grid() -> live_figures.TauGrid:
    """τ's grid: through the typed τ, else through the suggestion, covering both with room to spare (fixed while
    the sliders move, so the browser keeps its copy of Δ)."""
    ss = st.session_state
    sugg = suggested[0] / view.scale
    grid = live_figures.tau_grid(sugg if ss.get("det_anchor") is None else ss.det_anchor, sugg)
    if not grid.holds(ss.det_tau / view.scale):
        ss.det_anchor = ss.det_tau / view.scale  # a τ off the grid (restored, or from the command line)
        grid = live_figures.tau_grid(ss.det_anchor, sugg)
    return grid


def _on_choice() -> None:
    ss, c = st.session_state, choice()
    grid = ss.get("live_grid")
    if not c or grid is None or c.get("version") != grid[0]:
        return  # a move on an older picture of Δ
    if c.get("suggested"):
        ss.det_tau, ss.det_k, ss.det_chosen = float(suggested[0]), int(suggested[1]), False
    else:
        ss.det_tau = grid[1].value(int(c["index"])) * view.scale
        ss.det_k, ss.det_chosen = int(c["k"]), True
    ss.live_sig = (ss.det_tau, ss.det_k)


def _typed() -> None:
    ss = st.session_state
    ss.det_tau, ss.det_chosen = float(ss.tau_raw), True
    ss.det_anchor = ss.det_tau / view.scale


@st.fragment
def live() -> None:
    """The live area, then what needs the server at the settled τ/k; a settle reruns only this part."""
    ss = st.session_state
    tau, k = float(ss.det_tau), int(ss.det_k)
    grid = _grid()
    version = f"{instance.content}:{exp.config.mode}:{grid.anchor}:{grid.below}:{grid.n}"
    ss.live_grid = (version, grid)
    payload = runtime().view(("live", instance.content, exp.config.mode, grid),
                             lambda: live_figures.live_payload(view, grid, version))
    if ss.get("live_sig") != (tau, k):  # set elsewhere than in the live area: it takes them
        ss.det_rev = ss.get("det_rev", 0) + 1
        ss.live_sig = (tau, k)
    sugg = suggested[0] / view.scale
    delta_live({**payload, "tau_index": grid.index(tau / view.scale), "k": k, "rev": ss.det_rev,
                "suggested": {"index": grid.index(sugg), "k": int(suggested[1])} if grid.holds(sugg) else None},
               _on_choice)

    counts = view.counts(tau)  # once per settle: the rule, the pictures and the table read it
    flagged = counts >= view.T - k
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    ss.tau_raw = tau
    c1.number_input("exact τ (raw score units)", key="tau_raw", format="%.6g", step=view.scale * live_figures.STEP,
                    on_change=_typed,
                    help="Any value, e.g. the paper's τ ∈ {0, −1, −5, −10, −100}; the slider's steps then pass "
                         "through it.")
    state = "suggested from Δ (no ground truth)" if not ss.det_chosen else "chosen"
    c2.markdown(f"**{int(flagged.sum())} flagged** at τ = {tau:.4g} ({tau / view.scale:+.2f} × scale), k = {k} "
                f"({state}): the pictures and the table below follow the sliders once they settle.")
    inside, outside = live_figures.near_cut(view, counts, k)
    thumbnail_strip(exp, view, inside, counts, "Just inside the cut: flagged, fewest drops")
    thumbnail_strip(exp, view, outside, counts, "Just outside the cut: not flagged, most drops")
    if view.is_poison is not None:
        clean = np.flatnonzero(flagged & ~view.is_poison)
        clean = clean[np.argsort(-counts[clean], kind="stable")]
        thumbnail_strip(exp, view, clean[:16], counts,
                        f"Clean points flagged (false positives): {len(clean)}" + (" — the 16 with most drops"
                                                                                    if len(clean) > 16 else ""))
    refined = None  # Δ refined's flags, once chosen here and done
    if exp.config.mode == "full":  # the refined rule reads the full copies' Δ
        rule = st.segmented_control(
            "Flag by", list(RULES), format_func=RULES.get, default="tau_k", key="det_rule", selection_mode="single",
            on_change=_rule_chosen,
            help="Δ refined starts from the τ/k rule's flags (τ raised to 0 when lower), sets them aside with their "
                 "look-alikes, trains a model without them and keeps those it labels otherwise: the clean images of the "
                 "test image's label go back (where that cannot decide, the likeness split does). If a model retrained "
                 "without the group kept still misclassifies the test image, the τ/k rule's flags of its label are "
                 "added. The table, its CSV, the review below and the Unlearn page then follow its flags.")
        if rule == "refined":
            refined_section(instance, exp, view, tau, k, flagged, counts)
            refined = refined_flags(instance, tau, k)
    by = f"Δ refined at τ = {tau:.4g}, k = {k}" if refined is not None else None
    ss.suspects = (flagged if refined is None else refined, by or f"the τ/k rule at τ = {tau:.4g}, k = {k}")
    flagged_table(exp, view, tau, k, counts, refined, by, marks(instance))  # (τ/k: the table's own words)
    # A settle of τ/k reruns this fragment only (the review has its Refresh button); a new rule — Δ refined done,
    # or the τ/k rule again — reruns the page, so that the review below follows the suspect set at once.
    rule, fragment_only = refined is not None, ss.get("live_run") == ss.page_run
    ss.live_run, before, ss.suspects_rule = ss.page_run, ss.get("suspects_rule"), rule
    if fragment_only and before is not None and before != rule:
        st.rerun(scope="app")


def _rule_chosen() -> None:
    """The Unlearn page's source follows the rule chosen here (unless images are confirmed: those come first)."""
    ss = st.session_state
    if with_mark(instance, view.delta.shape[1]) is None:
        ss.unlearn_source = REFINED if ss.det_rule == "refined" else TUNED


live()

if st.toggle("Show every copy at a glance (small multiples)", key="show_multiples"):
    st.plotly_chart(runtime().view(("multiples", instance.content, exp.config.mode),
                                   lambda: small_multiples(view)), key="small_multiples")
review(instance, exp, view, *st.session_state.get("suspects", (None, None)))
pre.page_link("unlearn", "Next: unlearn the flagged points")
with verdict_slot:
    headline(instance, exp)
