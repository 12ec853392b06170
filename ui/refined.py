"""The Influence page's second rule: Δ-Influence refined (``delta_refined``) at the session's τ and k — the images
carrying the stamp the candidates share with the test image, or else the candidates a model trained without them
labels otherwise — told step by step, with pictures of what it kept and gave back (and the stamp, outlined on the
test image). The Unlearn page can take its flags (``refined_flags``)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from deltainf.detectors import DETECTORS, explained
from deltainf.evaluation.metrics import detection_metrics
from deltainf.figures.images import outlined

from . import prerequisites as pre
from .figures import thumbnail_strip
from .jobs import DetectorsJob, Instance, Job
from .state import runtime

RULES = {"tau_k": "the τ/k rule", "refined": "Δ refined (trains models)"}
TUNED, REFINED, CONFIRMED = "tuned", "refined", "confirmed"  # the Unlearn page's sources from the Influence page
STRIP = 16


def refined_job(instance: Instance, src, tau: float, k: int) -> Job:
    """The refined detector at τ and k on this source (a background job: it trains up to ``refined_rounds``
    models)."""
    return runtime().start(DetectorsJob(instance, ("delta_refined",), tau, k), "Δ refined at your τ and k", src,
                           lambda e: e.detect("delta_refined", tau, k))


def refined_section(instance: Instance, src, view, tau: float, k: int, flagged: np.ndarray, counts: np.ndarray) -> None:
    """The refined rule's flags beside the τ/k rule's, with its reasons and pictures of what it kept and gave back."""
    job = refined_job(instance, src, tau, k)
    if not job.finished.wait(0.6):
        pre.progress_panel(job, "Δ refined: training a model without the candidates…")
        return
    if job.error:
        st.error(f"Δ refined failed: {job.error}")
        return
    det = job.result
    kept = det.flagged
    back = flagged & ~kept
    truth = ""
    if view.is_poison is not None:
        a, b = (detection_metrics(f, view.is_poison) for f in (flagged, kept))
        truth = (f" — TPR {a['tpr']:.2f} → {b['tpr']:.2f}, precision {a['precision']:.2f} → {b['precision']:.2f} "
                 f"(ground truth known here)")
    st.markdown(f"**Δ refined: {int(kept.sum())} flagged** where the τ/k rule flags {int(flagged.sum())}{truth}. "
                f"Step by step:", help=DETECTORS["delta_refined"].help)
    steps = explained("delta_refined", det, src.train_set.classes)
    with st.container(key="refined_steps"):
        st.dataframe([{"step": s["step"], "images": "" if s["count"] is None else str(s["count"]), "what": s["what"]}
                      for s in steps], hide_index=True, width="stretch",
                     column_config={"what": st.column_config.TextColumn(width="large")})
    if "stamp_at" in det.params:
        pixels = np.zeros(src.query_image.shape[-2:], bool)
        pixels[tuple(np.array(det.params["stamp_at"], int).reshape(-1, 2).T)] = True
        st.image(outlined(src.query_image, pixels), caption="The stamp: the pixels the kept images share with the "
                                                            "test image, outlined on it")
    order = np.flatnonzero(kept)
    thumbnail_strip(src, view, order[np.argsort(-counts[order], kind="stable")][:STRIP], counts,
                    f"Kept by the refinement: {len(order)}" + (f" — the {STRIP} with most drops"
                                                               if len(order) > STRIP else ""))
    order = np.flatnonzero(back)
    thumbnail_strip(src, view, order[np.argsort(-counts[order], kind="stable")][:STRIP], counts,
                    f"Flagged by τ/k, given back by the refinement: {len(order)}"
                    + (f" — the {STRIP} with most drops" if len(order) > STRIP else ""))


def refined_flags(instance: Instance, tau: float, k: int) -> np.ndarray | None:
    """The refined rule's flags at τ and k once its job has finished on the Influence page, else None."""
    job = runtime().jobs.get(DetectorsJob(instance, ("delta_refined",), tau, k))
    return job.result.flagged if job is not None and job.ok else None
