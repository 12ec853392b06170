"""Unlearn: remove the flagged training points and check what changed — poison success where the experiment
knows it, the test image's prediction and clean accuracy always."""
import hashlib

import numpy as np
import streamlit as st

from deltainf.detectors import DETECTORS
from deltainf.figures import unlearning as figures
from deltainf.figures.experiment import class_probabilities, probability_figure
from deltainf.suspicion.suspects import SuspectSet, described
from deltainf.unlearning import UNLEARNERS
from ui import prerequisites as pre
from ui.downloads import case_report_html, weights_file
from ui.figures import delta_view, detector_params
from ui.jobs import UnlearnJob
from ui.refined import CONFIRMED, REFINED, TUNED, refined_flags
from ui.review import marks, with_mark
from ui.sidebar import stop
from ui.state import runtime
from ui.verdict import finished as finished_verdict, headline

st.title("Unlearn")
instance, exp = pre.require_trained()
st.caption("Remove the flagged training points from the model with an unlearning method, then measure "
           + ("clean accuracy (where your folder has test/) and the test image's prediction again."
              if exp.planted is None
              else "clean accuracy and poison success again, and look at the test image's prediction."))
pre.require_scores(instance, exp)
headline(instance, exp)
view = delta_view(instance, exp)
tau, k = detector_params(view, exp)
tuned = view.metrics(tau, k)
marked = with_mark(instance, view.delta.shape[1])
dismissed = with_mark(instance, view.delta.shape[1], "dismissed")  # never removed, whatever the source
case = exp.planted is None  # nobody planted an attack: no target, no poison success

c1, c2 = st.columns(2)
ss = st.session_state
ss.setdefault("unlearn_methods", ["eu"])
methods = c1.multiselect("Methods", list(UNLEARNERS), key="unlearn_methods", format_func=str.upper,
                         help="Each chosen method runs on the same flags; the charts put them side by side.\n\n"
                              + "\n".join(f"- **{e.label}**: {e.help.split(':', 1)[-1].strip()}"
                                          for e in UNLEARNERS.entries())
                              + ("\n\nEU retrains your architecture from scratch with the engine's recipe; the others "
                                 "start from your weights." if case else ""))
refined = refined_flags(instance, tau, k)
sources = ([CONFIRMED] if marked is not None else []) + [TUNED] + [REFINED] * (exp.config.mode == "full") \
    + list(DETECTORS)
if ss.get("unlearn_source") not in sources:  # the confirmed set was cleared meanwhile
    ss.pop("unlearn_source", None)
source = c2.selectbox(
    "Flags from", sources, key="unlearn_source",
    format_func=lambda d: (f"the {int(marked.sum())} images confirmed on the Influence page" if d == CONFIRMED
                           else f"the Influence page: Δ ({exp.config.mode}), τ = {tau:.4g}, k = {k} → "
                                f"{tuned['n_flagged']} points" if d == TUNED
                           else f"the Influence page: Δ refined at τ = {tau:.4g}, k = {k}"
                                + (f" → {int(refined.sum())} points" if refined is not None else " (trains models)")
                           if d == REFINED
                           else f"detector {d} (its defaults; Δ rules at the engine's suggested τ, k)"))
if source == TUNED:
    truth = "" if view.is_poison is None else \
        f" (TPR {tuned['tpr']:.2f}, precision {tuned['precision']:.2f}, ground truth known here)"
    st.markdown(f"Δ-Influence as tuned on the Influence page flags **{tuned['n_flagged']}** training points{truth}.")

repeat = st.toggle(
    "Repeat until the backdoor is gone", key="until_clean",
    help="After unlearning, re-check without ground truth: the test image must lose its label y (at most "
         f"{exp.config.clean_below:g} probability), the removed images that look like it must go to y hardly more "
         "often than under a model retrained without them (EU), and "
         "a fresh Δ-Influence round on the new model must find no new pile of look-alikes. While one of them fails, "
         "what the fresh round flags is removed too, with the kept images of y as like the test image as the removed "
         "ones (poisons the detector missed), and the method runs again.")
escalate = st.toggle("…and if a cheap method leaves the backdoor, escalate to EU", key="escalate", disabled=not repeat,
                     help="When the re-check still finds the backdoor after the last round of CF, SSD, SCRUB or BadT, "
                          "exact unlearning (retraining without everything removed so far) takes over.")
verdict = finished_verdict(instance)
unproven = verdict is None or not verdict.poisoned
despite = False
if unproven:
    st.warning("No verdict of poisoning backs these flags yet: " + (
        "it finds no evidence behind this test image, so unlearning removes images nothing accuses." if verdict
        else "it is still being computed (above)."), icon=":material/warning:")
    despite = st.checkbox("Unlearn them all the same (an exploration)", key="unlearn_despite")
flags_now = marked if source == CONFIRMED else view.flags(tau, k) if source == TUNED else None
named = source if flags_now is None else f"{source}:{hashlib.sha256(np.flatnonzero(flags_now).tobytes()).hexdigest()[:12]}"
if dismissed is not None:
    named += f":kept-{hashlib.sha256(np.flatnonzero(dismissed).tobytes()).hexdigest()[:12]}"
    st.caption(f"The {int(dismissed.sum())} images dismissed on the Influence page stay in the training set.")
job_key = UnlearnJob(instance, tuple(methods), named, tau, k, repeat, repeat and escalate)
if st.button("Run unlearning", type="primary", key="run_unlearn", icon=":material/play_arrow:",
             disabled=not methods or (unproven and not despite)):
    # Flags chosen here re-check at this τ and k; a registry detector runs with its own defaults (as on Compare).
    loop_tau, loop_k = (tau, k) if flags_now is not None or source == REFINED else (None, None)

    def run(e):
        flagged = flags_now if flags_now is not None else \
            e.detect("delta_refined", tau, k).flagged if source == REFINED else e.detect(source).flagged
        if dismissed is not None:
            flagged = flagged & ~dismissed
        out = {"flagged": flagged, "methods": {}}
        for j, m in enumerate(methods, 1):
            inv = e.investigation
            with e.reporter.within(f"{m.upper()} ({j}/{len(methods)})"):
                model, after = inv.unlearning.until_clean(m, flagged, loop_tau, loop_k, escalate=escalate) if repeat \
                    else inv.unlearning.unlearn(m, flagged)
            probs = class_probabilities(model, e.query_image, e.device)
            after = {**after, "query_label_probability": float(probs[e.query_label])}
            blob = weights_file(e, model)
            out["methods"][m] = {"after": after, "weights": blob, "probs_after": probs}
        return out

    runtime().start(job_key, "Unlearning (" + ", ".join(m.upper() for m in methods) + ")", exp, run)
    st.session_state.unlearn_job = job_key

last = st.session_state.get("unlearn_job")
job = runtime().jobs.get(last) if last else None
if job is None or last.instance != instance:
    st.info("Choose one or more methods and press **Run unlearning**.")
    stop()
res = pre.await_job(job, what=f"{job.label} in the background…", cancel=True)
done = res["methods"]
classes = exp.train_set.classes
probs_before = class_probabilities(exp.model, exp.query_image, exp.device)
before = {**exp.model_metrics, "query_label_probability": float(probs_before[exp.query_label])}
timed = st.session_state.setdefault("run_seconds", {})  # what Compare's estimate learns from
timed.update({m: float(r["after"]["seconds"]) for m, r in done.items() if r["after"].get("rounds", 1) == 1})
if last != job_key:
    origin = last.source.split(":")[0]
    origin = {TUNED: "the Influence page's τ/k rule", REFINED: "the Influence page's Δ refined",
              CONFIRMED: "the confirmed images"}.get(origin, f"detector {origin}")
    loop = " with **Repeat until the backdoor is gone**" if last.until_clean else ""
    st.warning(f"Shown below: the last run, {', '.join(m.upper() for m in last.methods)} on flags from {origin} "
               f"(τ = {last.tau:.4g}, k = {last.k}){loop} — not the choice above. Press **Run unlearning** for it.",
               icon=":material/history:")

with st.container(key="unlearn_result"):
    for m, r in done.items():
        after = r["after"]
        cols = st.columns([1, 2, 2, 2, 2])
        cols[0].markdown(f"**{m.upper()}**")
        removed = after.get("total_removed", after["n_removed"])
        rounds = f" in {after['rounds']} rounds" if after.get("rounds", 1) > 1 else ""
        kin = f", {after['kin_added']} of them kin of the flags" if after.get("kin_added") else ""
        cols[1].metric("Removed", removed, help=f"training points removed{rounds}{kin}")
        if before.get("clean_acc") is not None:
            cols[2].metric("Clean accuracy", f"{after['clean_acc']:.3f}",
                           f"{after['clean_acc'] - before['clean_acc']:+.3f}")
        if case:
            p = r["probs_after"]
            cols[3].metric("Test image", classes[int(p.argmax())], help=f"predicted after {m.upper()} "
                           f"(p = {p.max():.2f}); P(y = {classes[exp.query_label]}) = {p[exp.query_label]:.3f}")
        else:
            cols[3].metric("Poison success", f"{after['poison_success']:.2f}",
                           f"{after['poison_success'] - before['poison_success']:+.2f}", delta_color="inverse")
        cols[4].metric("Time", "from the cache" if after.get("cached") else f"{after['seconds']:.1f} s",
                       help="Seconds this run took; a model made before with the same flags and settings is read "
                            "from the cache.")
left, right = st.columns(2)
with left:
    measures = figures.CASE_MEASURES if case else figures.EXPERIMENT_MEASURES
    st.plotly_chart(figures.before_after_figure(before, {m: r["after"] for m, r in done.items()}, measures),
                    key="before_after")
with right:
    shown = st.selectbox("Test image after", list(done), key="unlearn_shown", format_func=str.upper) \
        if len(done) > 1 else next(iter(done))
    probs_after = done[shown]["probs_after"]
    b, a = int(probs_before.argmax()), int(probs_after.argmax())
    target = None if case else exp.planted.target
    truth = "" if case else f" (true class {classes[exp.planted.victim]}, target {classes[target]})"
    st.markdown(f"The test image: predicted **{classes[b]}** before, **{classes[a]}** after {shown.upper()}{truth}.")
    st.plotly_chart(probability_figure(probs_before, classes, target, "The test image, before and after",
                                       compare=probs_after, names=("before", f"after {shown.upper()}")),
                    key="query_before_after")
loops = {m: r["after"]["per_round"] for m, r in done.items() if "per_round" in r["after"]}
if loops:
    for m, r in done.items():
        after = r["after"]
        if "escalated_from" in after:
            st.warning(f"{m.upper()} left the backdoor by the re-check; escalated to EU, whose result is shown.")
        elif after.get("clean") is False:
            st.warning(f"After {after['rounds']} round(s) of {m.upper()} the re-check still finds the backdoor: "
                       f"do not call this model clean. Try EU, or switch on the escalation above.")
    st.plotly_chart(figures.rounds_figure(loops, before), key="rounds")
    with st.container(key="recheck_table"):
        st.caption("The re-check, round by round (no ground truth): the test image's P(y); the share of the removed "
                   "images that look like it still sent to y, against EU's share (a model retrained without them, which "
                   "sends the clean ones among them to y too); images like it a fresh Δ-Influence round would flag; kept "
                   "images of y as like it as the removed ones (kin: removed with the flags in the first round, and "
                   "again when the check fails); once clean, the removed images a model trained without the rest "
                   "still labels as labelled are given back, in a last round that must pass the check too."
                   + ("" if case else " Poison success (ground truth, known here) beside it."))
        st.table([{"method": m.upper(), "round": x["round"], "removed": x["n_removed"],
                   "P(y) on the test image": f"{x['query_target_prob']:.3f}",
                   "removed look-alikes sent to y (EU)": "—" if x["trigger_rate"] is None
                   else f"{x['trigger_rate']:.2f} ({x['reference_rate']:.2f})",
                   "fresh look-alikes": x["fresh_lookalikes"], "kin": x.get("kin", 0),
                   "given back": x.get("given_back", 0),
                   "verdict": "clean" if x["clean"] else "backdoor lives",
                   **({} if case else {"poison success": f"{x['poison_success']:.2f}"})}
                  for m, rounds in loops.items() for x in rounds])

data = exp.train_set
origin = last.source.split(":")[0]
by = {TUNED: described(f"τ/k rule, {exp.config.mode} copies, seed {exp.config.seed}", {"tau": last.tau, "k": last.k}),
      REFINED: f"Δ refined at τ = {last.tau:.4g}, k = {last.k}",
      CONFIRMED: "the images confirmed in the review"}.get(origin, f"detector {origin} (its defaults)")
suspects = SuspectSet(res["flagged"], by, last.tau, marks(instance))
csv_text = suspects.csv(view.delta, view.scale, view.labels, data.classes, data.train_paths, view.is_poison)
cols = st.columns(1 + len(done) + case)
cols[0].download_button("Flagged set (CSV)", csv_text, file_name="flagged.csv", mime="text/csv", key="download_flagged",
                        on_click="ignore", icon=":material/download:", help="the first round's flags")
for col, (m, r) in zip(cols[1:], done.items()):
    col.download_button(f"{m.upper()} weights (safetensors)", r["weights"], file_name=f"unlearned-{m}.safetensors",
                        mime="application/octet-stream", key=f"download_weights_{m}", on_click="ignore",
                        icon=":material/download:",
                        help="Loads into the same model: " + ("pass it as the weights of your model." if case else
                             "on the Experiment page (Weights file) to continue from the unlearned model."))
if case:
    at = (last.tau, last.k) if origin in (TUNED, CONFIRMED, REFINED) \
        else (exp.config.tau, exp.config.k)  # a registry detector's run re-checked at the engine's τ/k
    cols[-1].download_button("Report (HTML)", case_report_html(exp, *at, last.methods, last.until_clean,
                                                               last.escalate, suspects),
                             file_name="deltainf-report.html", mime="text/html", key="download_report",
                             on_click="ignore", icon=":material/download:", help="One self-contained file: opens offline.")
