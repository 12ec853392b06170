"""Unlearn: remove the flagged training points and check that the poison is gone."""
import streamlit as st

from deltainf import comparison, views
from deltainf.checkpoints import weights_to_bytes
from deltainf.detect import DETECTORS
from deltainf.unlearn import UNLEARNERS
from pages import _ui as ui

TUNED = "tuned"

st.title("Unlearn")
st.caption("Remove the flagged training points from the model with an unlearning method, then measure clean "
           "accuracy and poison success again, and look at the test image's prediction.")

ikey, pipe = ui.require_trained()
ui.require_scores(ikey, pipe)
view = ui.delta_view(ikey, pipe)
tau, k = ui.detector_params(view, pipe)
tuned = view.metrics(tau, k)

c1, c2 = st.columns(2)
methods = c1.multiselect("Methods", list(UNLEARNERS), default=["eu"], key="unlearn_methods", format_func=str.upper,
                         help="Each chosen method runs on the same flags; the charts put them side by side.\n\n"
                              + "\n".join(f"- **{m.upper()}**: {views.doc_line(f).split(':', 1)[-1].strip()}"
                                          for m, f in UNLEARNERS.items()))
sources = [TUNED] + list(DETECTORS)
source = c2.selectbox(
    "Flags from", sources, key="unlearn_source",
    format_func=lambda d: (f"the Influence page: Δ ({pipe.config.mode}), τ = {tau:.4g}, k = {k} → "
                           f"{tuned['n_flagged']} points" if d == TUNED
                           else f"detector {d} (its defaults; Δ rules at the engine's suggested τ, k)"))
if source == TUNED:
    st.markdown(f"Δ-Influence as tuned on the Influence page flags **{tuned['n_flagged']}** training points "
                f"(TPR {tuned['tpr']:.2f}, precision {tuned['precision']:.2f}, ground truth known here).")

repeat = st.toggle(
    "Repeat until the test image is clean", key="until_clean",
    help="After unlearning, re-check: while the new model still gives the test image its poisoned label (or more "
         f"than {pipe.config.clean_below:g} probability for it), run Δ-Influence on the new model over the remaining "
         "points, add what it flags and unlearn again.")
job_key = ("unlearn", ikey, tuple(methods), source, tau, k, repeat)
if st.button("Run unlearning", type="primary", key="run_unlearn", icon=":material/play_arrow:", disabled=not methods):
    flags_now = view.flags(tau, k) if source == TUNED else None

    def run(p):
        flagged = flags_now if flags_now is not None else p.detect(source).flagged
        out = {"flagged": flagged, "methods": {}}
        for m in methods:
            model, after = p.unlearn_until_clean(m, flagged) if repeat else p.unlearn(m, flagged)
            out["methods"][m] = {"after": after, "weights": weights_to_bytes(model),
                                 "probs_after": views.class_probabilities(p, p.query_image, model)}
        return out

    # Flags tuned here run on the experiment with this τ and k set (the re-check loop reads them from there);
    # a registry detector runs on the session's experiment, whose detections Compare shares.
    run_pipe = ui.runtime().view(("at_tau_k", ikey, tau, k), lambda: pipe.at_tau_k(tau, k)) if source == TUNED else pipe
    ui.runtime().start(job_key, "Unlearning (" + ", ".join(m.upper() for m in methods) + ")", run_pipe, run)
    st.session_state.unlearn_job = job_key

last = st.session_state.get("unlearn_job")
job = ui.runtime().jobs.get(last) if last else None
if job is None or last[1] != ikey:
    st.info("Choose one or more methods and press **Run unlearning**.")
    ui.stop()
res = ui.await_job(job, what=f"{job.label} in the background…")
_, methods_done, source_done, tau_done, k_done, repeat_done = last[1:]
done = res["methods"]
before = pipe.model_metrics
if (methods_done, source_done, tau_done, k_done, repeat_done) != (tuple(methods), source, tau, k, repeat):
    st.caption(f"Showing the last run: {', '.join(m.upper() for m in methods_done)} on flags from {source_done}, "
               f"τ = {tau_done:.4g}, k = {k_done}. Press **Run unlearning** for the current choice.")

with st.container(key="unlearn_result"):
    for m, r in done.items():
        after = r["after"]
        cols = st.columns([1, 2, 2, 2, 2])
        cols[0].markdown(f"**{m.upper()}**")
        removed = after.get("total_removed", after["n_removed"])
        rounds = f" in {after['rounds']} rounds" if after.get("rounds", 1) > 1 else ""
        cols[1].metric("Removed", removed, help=f"training points removed{rounds}")
        cols[2].metric("Clean accuracy", f"{after['clean_acc']:.3f}", f"{after['clean_acc'] - before['clean_acc']:+.3f}")
        cols[3].metric("Poison success", f"{after['poison_success']:.2f}",
                       f"{after['poison_success'] - before['poison_success']:+.2f}", delta_color="inverse")
        cols[4].metric("Time", f"{after['seconds']:.1f} s")
left, right = st.columns(2)
with left:
    st.plotly_chart(comparison.before_after_figure(before, {m: r["after"] for m, r in done.items()}), key="before_after")
with right:
    shown = st.selectbox("Test image after", list(done), key="unlearn_shown", format_func=str.upper) \
        if len(done) > 1 else next(iter(done))
    classes = pipe.data.classes
    p = pipe.poisoned
    probs_before = views.class_probabilities(pipe, pipe.query_image)
    probs_after = done[shown]["probs_after"]
    b, a = int(probs_before.argmax()), int(probs_after.argmax())
    st.markdown(f"The test image: predicted **{classes[b]}** before, **{classes[a]}** after {shown.upper()} "
                f"(true class {classes[p.victim]}, target {classes[p.target]}).")
    st.plotly_chart(views.probability_figure(probs_before, classes, p.target, "The test image, before and after",
                                             compare=probs_after, names=("before", f"after {shown.upper()}")),
                    key="query_before_after")
loops = {m: r["after"]["per_round"] for m, r in done.items() if "per_round" in r["after"]}
if loops:
    st.plotly_chart(comparison.rounds_figure(loops), key="rounds")

cols = st.columns(1 + len(done))
cols[0].download_button("Flagged set (CSV)", views.flagged_csv(view, res["flagged"], tau_done), file_name="flagged.csv",
                        mime="text/csv", key="download_flagged", icon=":material/download:",
                        help="the first round's flags")
for col, (m, r) in zip(cols[1:], done.items()):
    col.download_button(f"{m.upper()} weights (safetensors)", r["weights"], file_name=f"unlearned-{m}.safetensors",
                        mime="application/octet-stream", key=f"download_weights_{m}", icon=":material/download:",
                        help="Load it back on the Experiment page (Weights file) to continue from the unlearned model.")
