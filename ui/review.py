"""The analyst's review of the flagged images: each with its file, class, drop count, mean Δ and likeness to the
test image, sortable; each can be marked confirmed or dismissed. Unlearning and exports use the confirmed set
when one is marked (``confirmed``)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from deltainf.suspicion.likeness import likeness_split

from .figures import training_thumb
from .jobs import Instance
from .refined import CONFIRMED

SORTS = {"drops": "drop count", "mean": "mean Δ (lowest first)", "likeness": "likeness to the test image"}
STATUSES = ("unmarked", "confirmed", "dismissed")
MAX_ROWS = 300


def marks(instance: Instance) -> dict[int, str]:
    """Training index → "confirmed" or "dismissed", for this source, kept for the session."""
    return st.session_state.setdefault("marks", {}).setdefault(instance.content, {})


def with_mark(instance: Instance, n: int, status: str = "confirmed") -> np.ndarray | None:
    """The images marked ``status`` (confirmed, or dismissed) as a mask over the ``n`` training points, or None while
    none is."""
    idx = [i for i, s in marks(instance).items() if s == status]
    if not idx:
        return None
    mask = np.zeros(n, bool)
    mask[idx] = True
    return mask


def review(instance: Instance, src, view, flagged: np.ndarray | None = None, by: str | None = None) -> None:
    """The review table of the suspect set: ``flagged`` by ``by`` (as the Influence page left it), else the τ/k
    rule's flags at the session's τ and k. Marks are kept per image, whatever the rule or τ/k."""
    ss = st.session_state
    if not st.toggle("Review the flagged images: sort them, confirm or dismiss each", key="review_open",
                     value=src.planted is None):
        return
    tau, k = float(ss.det_tau), int(ss.det_k)
    suspects = view.flags(tau, k) if flagged is None else np.asarray(flagged, bool)
    idx = np.flatnonzero(suspects)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    sort = c1.segmented_control("Sort by", list(SORTS), format_func=SORTS.get, default="drops", key="review_sort",
                                selection_mode="single") or "drops"
    c2.button("Refresh at the current τ and k", key="review_refresh", help="The sliders above redraw their own part "
              "of the page; this table follows them when it is drawn again.")
    counts, mean, like = view.counts(tau), view.mean_rel, src.investigation.activations.likeness()
    labels = src.train_set.y_train.numpy()
    like_it, _ = likeness_split(like, suspects & (labels == src.query_label), src.config.seed,
                                src.investigation.activations.confidence())
    key = {"drops": (mean[idx], -counts[idx]), "mean": (-counts[idx], mean[idx]), "likeness": (-like[idx],)}[sort]
    idx = idx[np.lexsort(key)][:MAX_ROWS]
    data, state = src.train_set, marks(instance)
    rows = {"image": [training_thumb(view, data.x_train, i) for i in idx],
            "file": [data.train_paths[i] if data.train_paths else f"#{i}" for i in idx],
            "class": [data.classes[int(data.y_train[i])] for i in idx],
            "drops": [int(counts[i]) for i in idx], "mean Δ / scale": [float(mean[i]) for i in idx],
            "likeness": [float(like[i]) for i in idx], "like the test image": [bool(like_it[i]) for i in idx],
            "status": [state.get(int(i), STATUSES[0]) for i in idx]}
    import pandas as pd

    st.caption(f"{int(suspects.sum())} flagged by " + (by or f"the τ/k rule at τ = {tau:.4g}, k = {k}")
               + (f" (the first {MAX_ROWS} shown)" if len(idx) == MAX_ROWS else "") + ". Mark each image as confirmed "
               "(a suspect you will remove) or dismissed; Unlearn then uses the confirmed ones.")
    with st.container(key="review_table"):
        edited = st.data_editor(
            pd.DataFrame(rows), key=f"review_table_{tau}_{k}_{sort}_{by}", hide_index=True,
            width="stretch",
            disabled=[c for c in rows if c != "status"],
            column_config={"image": st.column_config.ImageColumn("image", width="small"),
                           "mean Δ / scale": st.column_config.NumberColumn(format="%.3g"),
                           "likeness": st.column_config.NumberColumn(format="%.3f", help=(
                               "How far the image differs from a typical training image of the test image's label the "
                               "way the test image does: the cosine of both differences in the model's last hidden "
                               "layer.")),
                           "like the test image": st.column_config.CheckboxColumn(
                               help="Of the flagged images labelled like the test image, it is in the group most "
                                    "like the test image (likeness plus the model's probability of that label, "
                                    "split in two by 2-means): what the refined "
                                    "Δ-Influence keeps when its relabelling check cannot decide (clean images of that "
                                    "label collapse too, but do not share what makes the test image differ from a "
                                    "typical one, as poisons carrying its trigger do)."),
                           "status": st.column_config.SelectboxColumn("status", options=list(STATUSES))})
    for i, status in zip(idx, edited["status"]):
        if status in STATUSES[1:]:
            state[int(i)] = status
        else:
            state.pop(int(i), None)
    n_conf = sum(v == "confirmed" for v in state.values())
    n_dis = sum(v == "dismissed" for v in state.values())
    a, b, c, d = st.columns(4)
    a.caption(f"**{n_conf}** confirmed · **{n_dis}** dismissed")
    if b.button("Confirm those like the test image", key="review_confirm_refined",
                help="The flagged images ticked in the column above (the refined Δ-Influence's likeness split)."):
        state.update({int(i): "confirmed" for i in idx if like_it[i] and state.get(int(i)) != "dismissed"})
        st.rerun()
    if c.button("Confirm all shown", key="review_confirm_all"):
        state.update({int(i): "confirmed" for i in idx if state.get(int(i)) != "dismissed"})
        st.rerun()
    if d.button("Clear the marks", key="review_clear"):
        state.clear()
        ss.pop("unlearn_source", None)
        st.rerun()
    if n_conf and ss.get("review_marked") != n_conf:
        ss.review_marked = n_conf  # new confirmations: the Unlearn page takes the confirmed images
        ss.unlearn_source = CONFIRMED

