"""Compare: every detector the engine has, on the same source; against the ground truth where it is known."""
import streamlit as st

from deltainf.detectors import DETECTORS, needs
from deltainf.evaluation.metrics import detection_metrics
from deltainf.evaluation.report import case_rows, detector_rows, unlearning_grid
from deltainf.figures import unlearning as figures
from deltainf.unlearning import UNLEARNERS
from ui import prerequisites as pre
from ui.jobs import DetectorsJob, GridJob
from ui.review import with_mark
from ui.sidebar import stop
from ui.state import config, experiment, runtime, use_mode

GRID_METHODS = ("eu", "cf")                       # the default grid: seconds on the built-in data
GRID_DETECTORS = ("delta_influence", "ekfac")
FIRST_GUESS_S = 10.0  # seconds per unlearning run before any was timed in this session

st.title("Compare")
instance, exp = pre.require_trained()
st.caption("Every registered detector on this " + ("investigation" if exp.planted is None else "experiment") + ". "
           "Δ-Influence and its ablations use τ and k from the Influence page (the engine's suggestion from Δ while "
           "none is set) — the refined one, which trains models of its own, at the suggestion; the baselines their "
           "own defaults." + ("" if exp.planted is None else " The experiment planted the poisons, so TPR and "
                                                               "precision are exact."))
names = list(DETECTORS)


def current_row(src) -> tuple[dict, object] | None:
    """The Influence page's suspect set — Δ refined's flags when chosen there, else the τ/k rule's at the session's
    τ and k, less the images dismissed there — as a row beside the detectors, with its flags (None before Influence
    was opened on this source)."""
    ss = st.session_state
    if ss.get("det_for") != src.config or "suspects" not in ss:
        return None
    flags, by = ss.suspects
    dismissed = with_mark(instance, len(flags), "dismissed")
    if dismissed is not None:
        flags, by = flags & ~dismissed, f"{by}, less {int(dismissed.sum())} dismissed"
    row = {"detector": "current suspect set", "flagged": int(flags.sum())}
    if src.truth is not None:
        m = detection_metrics(flags, src.truth)
        row.update(TPR=float(m["tpr"]), precision=float(m["precision"]), F1=float(m["f1"]))
    return {**row, "what it does": f"the Influence page's set: {by}"}, flags


if exp.planted is None:  # an analyst's case: what each detector flags, and how much it agrees with Δ-Influence
    rows = pre.await_job(runtime().start(DetectorsJob(instance, tuple(names)), "Every detector", exp,
                                         lambda e: case_rows(e, names)),
                         what="Running every detector in the background…")
    st.caption("Your own data: nobody knows which images are poisons, so this page shows how many each detector "
               "flags and how many of those Δ-Influence flags too" + (" (and TPR/precision against the poisons you "
                                                                       "listed)." if exp.truth is not None else "."))
    current = current_row(exp)
    if current is not None:
        row, flags = current
        agree = int((flags & exp.detect("delta_influence").flagged).sum())
        metrics = {"TPR": f"{row['TPR']:.3f}", "precision": f"{row['precision']:.3f}"} if "TPR" in row else {}
        rows = [{"detector": row["detector"], "flagged": row["flagged"], "also flagged by Δ-Influence": agree,
                 **metrics, "what it does": row["what it does"]}, *rows]
    with st.container(key="compare_table"):
        st.table(rows)
    stop()
# Every detector once per experiment (baselines fit their own models, so this is the slow part)…
rows = pre.await_job(runtime().start(DetectorsJob(instance, tuple(names)), "Every detector", exp,
                                     lambda e: detector_rows(e, names)),
                     what="Running every detector in the background (ablations need their own scoring passes, "
                          "baselines their own fits)…")
# …then the ones with a τ/k rule again at the session's τ and k: fast, from the cached scores.
use_mode(exp.config.mode)
tau, k = st.session_state.det_tau, st.session_state.det_k
# (not those that train models of their own, such as the refined Δ-Influence: they stay at the suggested τ and k)
tuned = [n for n in names if "tau" in exp.detect(n).params and not needs(n)["retrains"]]
chosen_tk = (None, None)  # Δ detectors at the τ and k the user chose on Influence (else each one's own suggestion)
if st.session_state.get("det_chosen") and tau is not None and k is not None and tuned:
    chosen_tk = (tau, min(k, exp.config.transforms - 1))
    again = pre.await_job(runtime().start(DetectorsJob(instance, tuple(tuned), *chosen_tk),
                                          "Δ detectors at your τ and k", exp,
                                          lambda e: detector_rows(e, tuned, *chosen_tk)))
    by_name = {r["detector"]: r for r in again}
    rows = [by_name.get(r["detector"], r) for r in rows]
rows = [{**r, "what it does": DETECTORS[r["detector"]].help} for r in rows]
current = current_row(exp)
if current is not None:  # the suspect set of the Influence page, as it stands
    rows = [{**current[0], "parameters": ""}, *rows]

# Several known poisoned test points (paper Tables 4–5): Δ-Influence and boosted EK-FAC, flags intersected.
available = len(exp.poisoned_test_candidates)
n_points = st.number_input(
    "Known poisoned test points", min_value=1, max_value=max(1, available), value=1, step=1, key="compare_points",
    help=f"With N > 1, Δ-Influence and naive EK-FAC run on N poisoned test images (the chosen one first) and flag "
         f"only what every one of them flags. {available} triggered test images go to the target here.")
if n_points > 1:
    cfg = config().replace(test_points=int(n_points))
    if tau is not None and k is not None:
        cfg = cfg.replace(tau=tau, k=k)
    multi_instance, multi_exp = experiment(cfg)
    multi = pre.await_job(runtime().start(DetectorsJob(multi_instance, ("delta_influence", "ekfac")),
                                          f"Detectors over {n_points} test points", multi_exp,
                                          lambda e: detector_rows(e, ["delta_influence", "ekfac"])),
                          what=f"Scoring {n_points} poisoned test images and their copies in the background…")
    rows += [{**r, "detector": f"{r['detector']} × {n_points} points",
              "what it does": f"{DETECTORS[r['detector']].label} on {n_points} known poisoned test images, flags "
                              f"intersected"} for r in multi]
with st.container(key="compare_table"):
    st.table([{**r, "TPR": f"{r['TPR']:.3f}", "precision": f"{r['precision']:.3f}", "F1": f"{r['F1']:.3f}"} for r in rows])
st.plotly_chart(figures.compare_figure(rows), key="compare_scatter")

st.subheader("Unlearning after each detector")
st.caption("Each unlearning method on each detector's flags: poison success and clean accuracy afterwards. Flags "
           "that hold many clean points show which methods survive false positives (EU/CF) and which lose "
           "accuracy (SSD, SCRUB) — the paper's Figures 3–5 in one view.")
c1, c2 = st.columns([3, 2])
singles = [r["detector"] for r in rows if r["detector"] in DETECTORS]
ss = st.session_state
ss.setdefault("grid_methods", list(GRID_METHODS))
ss.setdefault("grid_detectors", [d for d in GRID_DETECTORS if d in singles])
ss.grid_detectors = [d for d in ss.grid_detectors if d in singles]
methods = c1.multiselect("Methods", list(UNLEARNERS), key="grid_methods", format_func=str.upper)
chosen = c2.multiselect("Detectors", singles, key="grid_detectors")
grid_key = GridJob(instance, *chosen_tk, tuple(chosen), tuple(methods))
timed = ss.setdefault("run_seconds", {})  # method → seconds per run, from the runs seen so far
done = runtime().jobs.get(ss.get("grid_job"))
for r in done.result if done is not None and done.ok else []:
    timed[r["method"]] = float(r["seconds"])
estimate = len(chosen) * sum(timed.get(m, FIRST_GUESS_S) for m in methods)
runs = len(chosen) * len(methods)
st.caption(f"{runs} unlearning runs: about {estimate / 60:.1f} min "
           + ("(from the runs timed so far)." if timed else "(a first guess: no run timed yet in this session)."))
confirmed = estimate <= 60 or st.checkbox(f"Yes, spend about {estimate / 60:.0f} min on {runs} runs",
                                          key="grid_confirm")
if st.button(f"Unlearn {len(chosen)} × {len(methods)} flag sets", key="run_grid", icon=":material/play_arrow:",
             disabled=not (methods and chosen and confirmed)):
    runtime().start(grid_key, "Unlearning every detector's flags", exp,
                    lambda e: unlearning_grid(e, chosen, methods, *chosen_tk))
    st.session_state.grid_job = grid_key
last = st.session_state.get("grid_job")
job = runtime().jobs.get(last) if last else None
if job is None or last.instance != instance:
    st.info("Choose methods and detectors, then press the button (EU retrains once per detector).")
    stop()
grid = pre.await_job(job, what="Unlearning each detector's flags in the background…", cancel=True)
if last != grid_key:
    st.warning(f"Shown below: the last grid, {', '.join(m.upper() for m in last.methods)} on the flags of "
               f"{', '.join(last.detectors)} — not the choice above. Press the button for it.",
               icon=":material/history:")
with st.container(key="grid_table"):
    st.table([{"detector": r["detector"], "method": r["method"].upper(), "flagged": r["n_flagged"],
               "clean accuracy": f"{r['clean_acc']:.3f}", "poison success": f"{r['poison_success']:.2f}"}
              for r in grid])
st.plotly_chart(figures.unlearning_grid_figure(grid, exp.model_metrics), key="grid_figure")
