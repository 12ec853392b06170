"""Unlearn: remove the flagged training points and check that the poison is gone."""
import streamlit as st

from deltainf import views
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
method = c1.selectbox("Method", list(UNLEARNERS), key="unlearn_method",
                      format_func=lambda m: f"{m.upper()} — {views.doc_line(UNLEARNERS[m]).split(':', 1)[-1].strip()}")
sources = [TUNED] + list(DETECTORS)
source = c2.selectbox(
    "Flags from", sources, key="unlearn_source",
    format_func=lambda d: (f"the Influence page: Δ ({pipe.config.mode}), τ = {tau:.4g}, k = {k} → "
                           f"{tuned['n_flagged']} points" if d == TUNED
                           else f"detector {d} (its defaults; Δ rules at the engine's suggested τ, k)"))
if source == TUNED:
    st.markdown(f"Δ-Influence as tuned on the Influence page flags **{tuned['n_flagged']}** training points "
                f"(TPR {tuned['tpr']:.2f}, precision {tuned['precision']:.2f}, ground truth known here).")

repeat = hasattr(pipe, "unlearn_until_clean") and st.toggle(
    "Repeat until the test image is clean", key="until_clean",
    help="After unlearning, re-check: while the new model still gives the test image its poisoned label, run "
         "Δ-Influence on the new model over the remaining points, add what it flags and unlearn again.")
job_key = ("unlearn", ikey, method, source, tau, k, repeat)
if st.button("Run unlearning", type="primary", key="run_unlearn", icon=":material/play_arrow:"):
    flags_now = view.flags(tau, k) if source == TUNED else None

    def run(p):
        flagged = flags_now if flags_now is not None else p.detect(source).flagged
        model, after = p.unlearn_until_clean(method, flagged) if repeat else p.unlearn(method, flagged)
        return {"after": after, "flagged": flagged, "weights": weights_to_bytes(model),
                "probs_after": views.class_probabilities(p, p.query_image, model)}

    # Flags tuned here run on the experiment with this τ and k set (the re-check loop reads them from there);
    # a registry detector runs on the session's experiment, whose detections Compare shares.
    run_pipe = ui.pipeline(ui.config().replace(tau=tau, k=k))[1] if source == TUNED else pipe
    ui.runtime().start(job_key, f"Unlearning ({method.upper()})", run_pipe, run)
    st.session_state.unlearn_job = job_key

last = st.session_state.get("unlearn_job")
job = ui.runtime().jobs.get(last) if last else None
if job is None or last[1] != ikey:
    st.info("Choose a method and press **Run unlearning**.")
    st.stop()
res = ui.await_job(job, what=f"{job.label} in the background…")
_, method_done, source_done, tau_done, k_done, repeat_done = last[1:]
after = res["after"]
before = pipe.model_metrics
if (method_done, source_done, tau_done, k_done, repeat_done) != (method, source, tau, k, repeat):
    st.caption(f"Showing the last run: {method_done.upper()} on flags from {source_done}, τ = {tau_done:.4g}, "
               f"k = {k_done}. Press **Run unlearning** for the current choice.")

with st.container(key="unlearn_result"):
    cols = st.columns(4)
    removed = after.get("total_removed", after["n_removed"])
    rounds = f" in {after['rounds']} rounds" if after.get("rounds", 1) > 1 else ""
    cols[0].metric("Removed", removed, help=f"training points removed{rounds}")
    cols[1].metric("Clean accuracy", f"{after['clean_acc']:.3f}", f"{after['clean_acc'] - before['clean_acc']:+.3f}")
    cols[2].metric("Poison success", f"{after['poison_success']:.2f}",
                   f"{after['poison_success'] - before['poison_success']:+.2f}", delta_color="inverse")
    cols[3].metric("Time", f"{after['seconds']:.1f} s")
left, right = st.columns(2)
with left:
    st.plotly_chart(views.before_after_figure(before, after, method_done), key="before_after")
with right:
    classes = pipe.data.classes
    p = pipe.poisoned
    probs_before = views.class_probabilities(pipe, pipe.query_image)
    b, a = int(probs_before.argmax()), int(res["probs_after"].argmax())
    st.markdown(f"The test image: predicted **{classes[b]}** before, **{classes[a]}** after "
                f"(true class {classes[p.victim]}, target {classes[p.target]}).")
    st.plotly_chart(views.probability_figure(probs_before, classes, p.target, "The test image, before and after",
                                             compare=res["probs_after"], names=("before", "after")),
                    key="query_before_after")

d1, d2 = st.columns(2)
d1.download_button("Flagged set (CSV)", views.flagged_csv(view, res["flagged"], tau_done), file_name="flagged.csv",
                   mime="text/csv", key="download_flagged", icon=":material/download:")
d2.download_button(f"Unlearned weights ({method_done.upper()}, safetensors)", res["weights"],
                   file_name=f"unlearned-{method_done}.safetensors", mime="application/octet-stream",
                   key="download_weights", icon=":material/download:")
