"""The verdict's headline — is there evidence of poisoning behind the test image? — on the Test image, Influence and
Unlearn pages (the sidebar reads the same job). A background job: the full copies' scores, the refined rule's
suspects and models trained without them and without a control."""
from __future__ import annotations

import streamlit as st

from deltainf.figures.verdict import verdict_figure

from . import prerequisites as pre
from .jobs import Instance, Job, VerdictJob
from .state import runtime

EXPLORATION = "Nothing is accused: the flags below are an exploration."


def verdict_job(instance: Instance, src) -> Job:
    """The verdict of ``src``'s investigation (started now unless it is running or done)."""
    return runtime().start(VerdictJob(instance), "The verdict", src, lambda e: e.investigation.verdict())


def finished(instance: Instance):
    """The verdict once its job has finished, else None."""
    job = runtime().jobs.get(VerdictJob(instance))
    return job.result if job is not None and job.ok else None


def headline(instance: Instance, src, start: bool = True) -> None:
    """The verdict in one line at the top of the page (the live area stays in view at 1280×720); what it rests on,
    with its picture, on demand; its progress while it runs. ``start=False``: only a verdict already asked for
    (a page one clicks through, where each test image would queue its own)."""
    job = verdict_job(instance, src) if start else runtime().jobs.get(VerdictJob(instance))
    with st.container(key="verdict"):
        if job is None:
            st.caption("The verdict — is there evidence of poisoning behind this image? — comes with its influence "
                       "scores, on the **Influence** page.")
            return
        if not job.finished.is_set():  # even from the cache it takes a second: never hold the page for it
            pre.progress_panel(job, "The verdict: is there evidence of poisoning? Finding the suspects (refined "
                                    "Δ-Influence), retraining without them and without as many other images of "
                                    "its label…")
            return
        if job.error:
            st.error(f"The verdict failed: {job.error}")
            return
        v = job.result
        said, why = st.columns([5, 1], vertical_alignment="center")
        title = ":red[**Verdict: POISONED**]" if v.poisoned else ":blue[**Verdict: no evidence of poisoning**]"
        said.markdown(f"{title} — evidence {v.score:.1f} (threshold {v.threshold:g})"
                      + ("" if v.poisoned else ". " + EXPLORATION))
        if why.toggle("Why?", key="verdict_why"):
            by = v.parts.get("suspects_by")
            st.caption(v.reason[0].upper() + v.reason[1:] + "." + (f" The suspects: the refined rule's flags of the "
                                                                   f"label, found by {by}." if by else ""))
            label = src.train_set.classes[src.query_label]
            st.plotly_chart(verdict_figure(v.as_dict(), label), key="verdict_figure")
