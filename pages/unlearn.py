"""Unlearn: remove the flagged training points and check that the poison is gone."""
import streamlit as st

from deltainf.detectors import DETECTORS
from deltainf.evaluation.report import flagged_csv
from deltainf.figures import unlearning as figures
from deltainf.figures.experiment import class_probabilities, probability_figure
from deltainf.store.checkpoints import weights_to_bytes
from deltainf.unlearning import UNLEARNERS
from ui import prerequisites as pre
from ui.figures import delta_view, detector_params
from ui.jobs import UnlearnJob
from ui.sidebar import stop
from ui.state import runtime

TUNED = "tuned"  # flags from the Influence page's τ/k rule

st.title("Unlearn")
st.caption("Remove the flagged training points from the model with an unlearning method, then measure clean "
           "accuracy and poison success again, and look at the test image's prediction.")

instance, exp = pre.require_trained()
pre.require_scores(instance, exp)
view = delta_view(instance, exp)
tau, k = detector_params(view, exp)
tuned = view.metrics(tau, k)

c1, c2 = st.columns(2)
methods = c1.multiselect("Methods", list(UNLEARNERS), default=["eu"], key="unlearn_methods", format_func=str.upper,
                         help="Each chosen method runs on the same flags; the charts put them side by side.\n\n"
                              + "\n".join(f"- **{e.label}**: {e.help.split(':', 1)[-1].strip()}"
                                          for e in UNLEARNERS.entries()))
sources = [TUNED] + list(DETECTORS)
source = c2.selectbox(
    "Flags from", sources, key="unlearn_source",
    format_func=lambda d: (f"the Influence page: Δ ({exp.config.mode}), τ = {tau:.4g}, k = {k} → "
                           f"{tuned['n_flagged']} points" if d == TUNED
                           else f"detector {d} (its defaults; Δ rules at the engine's suggested τ, k)"))
if source == TUNED:
    st.markdown(f"Δ-Influence as tuned on the Influence page flags **{tuned['n_flagged']}** training points "
                f"(TPR {tuned['tpr']:.2f}, precision {tuned['precision']:.2f}, ground truth known here).")

repeat = st.toggle(
    "Repeat until the test image is clean", key="until_clean",
    help="After unlearning, re-check: while the new model still gives the test image its poisoned label (or more "
         f"than {exp.config.clean_below:g} probability for it), run Δ-Influence on the new model over the remaining "
         "points, add what it flags and unlearn again.")
job_key = UnlearnJob(instance, tuple(methods), source, tau, k, repeat)
if st.button("Run unlearning", type="primary", key="run_unlearn", icon=":material/play_arrow:", disabled=not methods):
    flags_now = view.flags(tau, k) if source == TUNED else None
    # Flags tuned here re-check at this τ and k; a registry detector runs with its own defaults (as on Compare).
    loop_tau, loop_k = (tau, k) if source == TUNED else (None, None)

    def run(e):
        flagged = flags_now if flags_now is not None else e.detect(source).flagged
        out = {"flagged": flagged, "methods": {}}
        for m in methods:
            inv = e.investigation
            model, after = inv.unlearn_until_clean(m, flagged, loop_tau, loop_k) if repeat else inv.unlearn(m, flagged)
            out["methods"][m] = {"after": after, "weights": weights_to_bytes(model),
                                 "probs_after": class_probabilities(model, e.query_image, e.device)}
        return out

    runtime().start(job_key, "Unlearning (" + ", ".join(m.upper() for m in methods) + ")", exp, run)
    st.session_state.unlearn_job = job_key

last = st.session_state.get("unlearn_job")
job = runtime().jobs.get(last) if last else None
if job is None or last.instance != instance:
    st.info("Choose one or more methods and press **Run unlearning**.")
    stop()
res = pre.await_job(job, what=f"{job.label} in the background…")
done = res["methods"]
before = exp.model_metrics
if last != job_key:
    st.caption(f"Showing the last run: {', '.join(m.upper() for m in last.methods)} on flags from {last.source}, "
               f"τ = {last.tau:.4g}, k = {last.k}. Press **Run unlearning** for the current choice.")

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
    st.plotly_chart(figures.before_after_figure(before, {m: r["after"] for m, r in done.items()}), key="before_after")
with right:
    shown = st.selectbox("Test image after", list(done), key="unlearn_shown", format_func=str.upper) \
        if len(done) > 1 else next(iter(done))
    classes = exp.data.classes
    p = exp.poisoned
    probs_before = class_probabilities(exp.model, exp.query_image, exp.device)
    probs_after = done[shown]["probs_after"]
    b, a = int(probs_before.argmax()), int(probs_after.argmax())
    st.markdown(f"The test image: predicted **{classes[b]}** before, **{classes[a]}** after {shown.upper()} "
                f"(true class {classes[p.victim]}, target {classes[p.target]}).")
    st.plotly_chart(probability_figure(probs_before, classes, p.target, "The test image, before and after",
                                       compare=probs_after, names=("before", f"after {shown.upper()}")),
                    key="query_before_after")
loops = {m: r["after"]["per_round"] for m, r in done.items() if "per_round" in r["after"]}
if loops:
    st.plotly_chart(figures.rounds_figure(loops), key="rounds")

cols = st.columns(1 + len(done))
cols[0].download_button("Flagged set (CSV)", flagged_csv(view.delta, res["flagged"], last.tau, view.labels, view.is_poison),
                        file_name="flagged.csv", mime="text/csv", key="download_flagged", icon=":material/download:",
                        help="the first round's flags")
for col, (m, r) in zip(cols[1:], done.items()):
    col.download_button(f"{m.upper()} weights (safetensors)", r["weights"], file_name=f"unlearned-{m}.safetensors",
                        mime="application/octet-stream", key=f"download_weights_{m}", icon=":material/download:",
                        help="Load it back on the Experiment page (Weights file) to continue from the unlearned model.")
