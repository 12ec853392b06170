"""The Influence page's second rule: Δ-Influence refined (``delta_refined``) at the session's τ and k — the images
carrying the stamp the candidates share with the test image, or else the candidates a model trained without them
labels otherwise — with what it gave back and why (and the stamp, outlined on the test image). The Unlearn page can
take its flags (``refined_flags``)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from deltainf.detectors import DETECTORS
from deltainf.evaluation.metrics import detection_metrics
from deltainf.figures.images import outlined

from . import prerequisites as pre
from .figures import thumbnail_strip
from .jobs import DetectorsJob, Instance, Job
from .state import runtime

RULES = {"tau_k": "the τ/k rule", "refined": "Δ refined (trains models)"}
STRIP = 16


def refined_job(instance: Instance, src, tau: float, k: int) -> Job:
    """The refined detector at τ and k on this source (a background job: it trains up to ``refined_rounds``
    models)."""
    return runtime().start(DetectorsJob(instance, ("delta_refined",), tau, k), "Δ refined at your τ and k", src,
                           lambda e: e.detect("delta_refined", tau, k))


def why(params: dict, classes: list[str]) -> str:
    """One sentence on what the refinement kept and gave back, and by which test."""
    sentence = _decided(params, classes)
    if "widened_from" in params:
        return (f"{sentence} But a model retrained without those {params['widened_from']} still gives the test image "
                f"its label: poisons are left among the other candidates, so the τ/k rule's flags of that label are "
                f"added.")
    if "query_without_kept" in params:
        return f"{sentence} A model retrained without them gives the test image " \
               f"{classes[params['query_without_kept']]}."
    return sentence


def _decided(params: dict, classes: list[str]) -> str:
    cand, kin = params["n_candidates"], params["n_kin"]
    raised = params["candidate_tau"] != params["tau"]
    start = f"{cand} candidates (" + ("the τ/k rule with τ raised to 0" if raised else "the τ/k rule's flags") + ")" + (
        f" and {kin} look-alikes of them" if kin else "")
    if "stamp_cut" in params:
        beyond = params["n_stamped_beyond_candidates"]
        share = "all" if params["stamp_cut"] >= 1 else f"at least {params['stamp_cut']:.0%}"
        return (f"Of {start}, the images of the test image's label share {params['stamp_pixels']} pixels with the test "
                f"image that almost no other training image has (a stamped trigger, outlined below); the images of "
                f"that label carrying {share} of them are kept (the carriers split from the "
                f"rest by 2-means, {params['stamp_separation']:.0%} of the variance between the groups)"
                + (f", {beyond} of them beyond the candidates" if beyond else "")
                + f". {params['n_dropped_as_unstamped']} candidates that do not carry it are given back; no model was "
                  f"trained to decide.")
    if "texture_cut" in params:
        beyond = params["n_stamped_beyond_candidates"]
        return (f"Of {start}, the images of the test image's label whose fine texture (each image minus its local "
                f"mean) correlates with the test image's by at least {params['texture_cut']:.2f} are kept: a pattern "
                f"mixed into the whole image (a blended trigger), carried whole or not at all (2-means, "
                f"{params['texture_separation']:.0%} of the variance between the groups)"
                + (f", {beyond} of them beyond the candidates" if beyond else "")
                + f". {params['n_dropped_as_unstamped']} candidates that do not share it are given back; no model "
                  f"was trained to decide.")
    if "n_dropped_as_their_label" in params:
        sent = ", ".join(f"{n} to {classes[c]}" for c, n in params["sent_to"].items())
        rounds = " → ".join(str(n) for n in params["suspects_per_round"])
        kept = ("— the first round's kept: a model without the last round's still gave the test image its label "
                "(the rounds gave back poisons it needs)" if params.get("kept_round") == 1 else "— kept")
        return (f"{start} set aside; a model trained without them labels {sum(params['sent_to'].values())} otherwise "
                f"({sent}; suspects per round {rounds}) {kept}. {params['n_dropped_as_their_label']} keep their own "
                f"label: clean images of it, given back.")
    if "agreement" in params:
        reason = (f"labels {sum(params['sent_to'].values())} otherwise but to scattered classes (the largest holds "
                  f"{params['agreement']:.0%}): it does not know the classes well enough to tell poisons from its own "
                  f"errors")
    else:
        reason = "gives almost none another label (clean-label poisons, or none)"
    if "likeness_cut" not in params:
        return f"{start} set aside; a model trained without them {reason}, and their likeness does not split: the τ/k " \
               f"rule's flags stand."
    return (f"{start} set aside; a model trained without them {reason}. So the likeness split decides: of their "
            f"images of the test image's label, the group most like the test image (likeness plus the model's "
            f"probability of that label ≥ {params['likeness_cut']:.2f}, split by 2-means) is kept; "
            f"{params['n_dropped_as_unlike_the_query']} "
            f"unlike it are given back.")


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
                f"{why(det.params, src.train_set.classes)}", help=DETECTORS["delta_refined"].help)
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
