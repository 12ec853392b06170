"""The verdict: is there evidence of poisoning behind the test image? Asked before any training image is accused.

Influence collapse cannot answer it alone: the clean images of the test image's label y collapse too (they
supported y, and a copy with a random label no longer needs them), so the τ/k rule finds "suspects" behind an
honest mistake as readily as behind a backdoor. The verdict puts the suspects — the images of y that the refined
Δ-Influence would accuse — to two counterfactual questions, each against a control of the same size: images of y
drawn at random (seeded) from the others, so that what removing *any* that many images of y does is not taken for
evidence:

* **the flip**: a model retrained without the suspects (exact unlearning, the investigation's recipe) moves the
  test image away from y — by how many logits of margin more than a model retrained without the control;
* **the relabelling**: that model gives the suspects a label other than y — how much more often than the control's
  model gives the control images another label (a dirty-label poison is an image of another class);
* **the transfer**: the suspects' shared signal (their mean image minus the training set's) added to images of other
  labels sends them to y under the model investigated — how much more often than the control's
  (:mod:`~deltainf.suspicion.transfer`: a trigger acts on any image; no model is retrained). A weak model relabels
  unseen images of y nearly as often as poisons, so there the relabelling says little and the transfer speaks.

The evidence is ``flip / flip_unit + relabelling / relabel_unit + transfer / transfer_unit`` (a relabelling or a
transfer below the control's counts 0: a model that learnt a trigger without its poisons keeps them at y, and a weak
model relabels unseen images of y at random); the verdict is *poisoned* when the test image leaves y once the
suspects are gone (P(y) under :data:`HOLDS`) and the evidence reaches ``verdict_threshold`` —
``verdict_threshold_perturbed`` when they carry a perturbation the test image does not (clean-label poisons are
images of y: no model relabels them, and the flip alone speaks) — or, when nothing but their likeness to the test
image set the suspects apart (no stamp, texture, perturbation, reproduced relabelling, transfer or fine-texture level
shared with the test image that a trigger leaves: a split always finds two groups, and behind an honest mistake a
cluster of look-alikes holds the test image up as well),
``verdict_threshold_untraced``. No ground truth is read.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

import torch

from .data.stream import take
from .influence.delta import delta_flags, delta_matrix
from .influence.ekfac import margin
from .models.training import predict_logits
from .options import option
from .seeds import seeded
from .suspicion.likeness import kin
from .suspicion.stamp import shared_energy
from .suspicion.transfer import sent_to

#: Logits of margin (the flip) and a share of images (the relabelling) worth one unit of evidence each.
FLIP_UNIT, RELABEL_UNIT = 8.0, 0.25
#: The most of a label's images the suspects may hold: removing more removes the label itself, and the test image
#: then leaves it whatever held it up; and the control is drawn from the rest.
MAX_SHARE = 1 / 2
#: A relabelling (the refined rule's group, kept because its model sends them to one class) is a trigger's trace when
#: the verdict's own model, retrained without them, labels at least this share more of them otherwise than of its
#: random control: dirty-label poisons go back whole, where a cluster of look-alikes of another class (no trigger)
#: goes back only in part, and a weak model relabels unseen images of y at random (docs/decisions/0001-verdict.md).
REPRODUCED = 0.9
#: A share of the images of other labels sent to y (beyond the control's signal) worth one unit of evidence; and the
#: transfer that is a trigger's trace (an honest mistake's suspects send at most about 0.3 more than the control:
#: docs/decisions/0001-verdict.md).
TRANSFER_UNIT, TRANSFERS = 0.2, 0.4
#: A model holds the test image up when it gives it its label y at least this probability (a margin of y ≥ 0); a weak
#: model can keep y on top below it, the rest spread over the other classes.
HOLDS = 0.5
#: What each trace (:func:`trace_of`) says of the suspects, in the analyst's words; and what none says.
TRACES = {
    "stamp": "they carry pixels they share with the test image and almost no other image has (a stamp)",
    "texture": "they share a fine texture with the test image (a pattern blended in)",
    "perturbed": "they carry a perturbation the test image does not (clean-label poisons)",
    "relabelled": "a model without them sends them to one other class (dirty-label poisons)",
    "transfer": "what they share sends images of other labels to its label (a trigger acts on any image)",
    "texture level": "they share an unusual fine-texture level with the test image (a warp resamples every pixel)",
}
UNTRACED = "only their likeness to the test image sets them apart, so the bar is higher"
#: A fine-texture level the suspects share with the test image is a trigger's trace from this many robust standard
#: deviations of their label's images (:func:`~deltainf.suspicion.stamp.shared_energy`).
LEVEL = 1.5


@dataclass(frozen=True)
class VerdictOptions:
    verdict_threshold: float = option(2.5, "the evidence of poisoning (flip in units of 8 logits of margin, plus "
                                           "relabelling in units of a quarter of the suspects, plus transfer in units "
                                           "of a fifth of the images of other labels sent to the test image's label, "
                                           "each beyond a random control of the same size) at which the verdict says "
                                           "poisoned when the suspects carry a trace of a trigger (a stamp or texture "
                                           "shared with the test image, a perturbation it does not carry, a label a "
                                           "model without them does not learn, a shared signal that sends other "
                                           "images to that label)",
                                      kind="positive")
    verdict_threshold_untraced: float = option(5.0, "the evidence of poisoning at which the verdict says poisoned when "
                                                    "nothing but their likeness to the test image set the suspects "
                                                    "apart (no stamp, texture, perturbation, relabelling, transfer "
                                                    "or fine-texture level a trigger leaves)",
                                               kind="positive")
    verdict_threshold_perturbed: float = option(0.5, "the evidence of poisoning at which the verdict says poisoned "
                                                     "when the suspects carry a perturbation the test image does not "
                                                     "(clean-label poisons keep their labels, so the flip speaks "
                                                     "alone: 0.5 is 4 logits of margin beyond the random control)",
                                                kind="positive")
    despite_verdict: bool = option(False, "flag and unlearn even when the verdict finds no evidence of poisoning "
                                          "(otherwise the suspect set is then empty and nothing is unlearned)")


@dataclass
class Verdict:
    """Whether there is evidence of poisoning behind the test image, how strong, and what it rests on."""

    poisoned: bool
    score: float                      # the evidence, in units (see the module); compare with ``threshold``
    threshold: float
    reason: str                       # one sentence, in the analyst's words
    parts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def suspects(scores: np.ndarray, tau: float, k: int, like: np.ndarray, labels: np.ndarray, y: int,
             kin_quantile: float) -> np.ndarray:
    """The images of y whose influence collapses (the τ/k rule with τ raised to 0 when it is lower) and their kin
    (:func:`~deltainf.suspicion.likeness.kin`): every image of y that may hold up the test image's label — at most
    ``MAX_SHARE`` of the images of y, those whose influence falls furthest on average (mean Δ)."""
    delta = delta_matrix(scores)
    collapsed = delta_flags(delta, max(tau, 0.0), k)
    return at_most_share(collapsed | kin(collapsed, like, labels, y, kin_quantile), delta, labels, y)


def at_most_share(found: np.ndarray, delta: np.ndarray, labels: np.ndarray, y: int) -> np.ndarray:
    """The images of y in ``found``, at most ``MAX_SHARE`` of the images of y: those whose influence falls furthest
    on average (mean Δ over the copies)."""
    found = np.asarray(found, bool) & (labels == y)
    most = int(MAX_SHARE * (labels == y).sum())
    if found.sum() > most:
        idx = np.flatnonzero(found)
        found = np.zeros_like(found)
        found[idx[np.argsort(delta[:, idx].mean(axis=0), kind="stable")[:most]]] = True
    return found


def control(suspected: np.ndarray, labels: np.ndarray, y: int, seed: int,
            among: np.ndarray | None = None) -> np.ndarray:
    """As many images of y as ``suspected`` holds (or all there are), drawn at random (seeded) from the others
    ``among`` (default: all)."""
    out = np.zeros_like(suspected)
    pool = np.flatnonzero((labels == y) & ~suspected & (True if among is None else among))
    size = min(int(suspected.sum()), len(pool))
    out[seeded(seed, "verdict control").choice(pool, size, replace=False)] = True
    return out


def judge(suspected: np.ndarray, labels: np.ndarray, y: int, seed: int, margin_before: float,
          without: Callable[[np.ndarray], tuple[float, np.ndarray]], threshold: float | Callable[[dict], float],
          among: np.ndarray | None = None, sends: Callable[[np.ndarray], float] | None = None) -> Verdict:
    """The verdict on the ``suspected`` images of y. ``without(removed) -> (the test image's margin of y, the labels
    of the ``removed`` images)`` under a model retrained without ``removed``; ``margin_before``: the test image's
    margin of y under the model investigated (logit of y minus the log-sum-exp of the others); ``among``: the
    images the control may be drawn from (default: every image of y); ``sends(group) -> share``: the share of images
    of other labels sent to y with the group's shared signal added (:func:`~deltainf.suspicion.transfer.sent_to`;
    None: no transfer part); ``threshold``: the bar, or a function of the parts giving it."""
    n, n_y = int(suspected.sum()), int((labels == y).sum())
    if n == 0:
        return Verdict(False, 0.0, threshold({}) if callable(threshold) else threshold,
                       "no training image of its label collapses: nothing holds it up",
                       {"n_suspects": 0, "n_label": n_y})
    ctrl = control(suspected, labels, y, seed, among)
    m_s, lab_s = without(suspected)
    m_c, lab_c = without(ctrl)
    relabel_s, relabel_c = float(np.mean(lab_s != y)), float(np.mean(lab_c != y))
    flip, relabel = m_c - m_s, relabel_s - relabel_c
    score = flip / FLIP_UNIT + max(relabel, 0.0) / RELABEL_UNIT
    leaves = m_s < 0  # P(y) < HOLDS
    parts = {"n_suspects": n, "n_control": int(ctrl.sum()), "n_label": n_y, "margin_before": round(margin_before, 3),
             "margin_without_suspects": round(m_s, 3), "margin_without_control": round(m_c, 3),
             "flip": round(flip, 3), "relabelled_suspects": round(relabel_s, 3),
             "relabelled_control": round(relabel_c, 3), "relabelling": round(relabel, 3)}
    said = (f"without its {n} suspects the test image {'leaves' if leaves else 'keeps'} its label (margin "
            f"{margin_before:+.1f} → {m_s:+.1f}; {m_c:+.1f} without {int(ctrl.sum())} other images of it at random), "
            f"and that model labels {relabel_s:.0%} of them otherwise ({relabel_c:.0%} of the random ones)")
    transfer = 0.0
    if sends is not None:
        sent_s, sent_c = sends(suspected), sends(ctrl)
        transfer = sent_s - sent_c
        score += max(transfer, 0.0) / TRANSFER_UNIT
        parts.update(sent_by_suspects=round(sent_s, 3), sent_by_control=round(sent_c, 3), transfer=round(transfer, 3))
        said += (f"; their shared signal added to images of other labels sends {sent_s:.0%} of them to it "
                 f"({sent_c:.0%} with the random ones')")
    threshold = threshold(parts) if callable(threshold) else threshold
    poisoned = bool(score >= threshold and leaves)
    if poisoned:
        return Verdict(True, round(score, 3), threshold, f"a group of its label's images holds it up: {said}", parts)
    why = ("its label's images hold it up no more than any as many of them do" if leaves
           else "it is no one group's doing")
    return Verdict(False, round(score, 3), threshold, f"{why}: {said}", parts)


def query_margin(source, module) -> float:
    """The test image's margin of y under ``module``: the logit of y minus the log-sum-exp of the others
    (``source``: an investigation or its unlearning stage, which hold the query and the device)."""
    logits = predict_logits(module, source.query.image[None], source.device)
    return float(margin(logits, torch.tensor([source.query.label]))[0])


def _without(unlearning, removed_before: np.ndarray) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    def without(removed):
        module = unlearning.retrained_without(removed_before | removed)
        idx = torch.as_tensor(np.flatnonzero(removed))
        labelled = predict_logits(module, take(unlearning.data.x_train, idx), unlearning.device).argmax(1).numpy()
        return query_margin(unlearning, module), labelled
    return without


def verdict_of(inv) -> Verdict:
    """The verdict of the investigation ``inv``: the images of y its refined Δ-Influence flags (what would be
    accused; :func:`at_most_share`) put to models retrained by its recipe (exact unlearning; each cached)."""
    labels, y, c = inv.data.y_train.numpy(), inv.query.label, inv.config
    t = inv.timings
    unlearning = t.seconds.get("unlearn_s", 0.0)
    with t.timed("verdict_s"), inv.reporter.within("verdict"):
        refined = inv.detect("delta_refined")
        suspected = at_most_share(refined.flagged, delta_matrix(inv.scores("full")), labels, y)
        module = inv.model.module
        level = shared_energy(inv.data.x_train, inv.query.image, suspected, labels, y)
        sends = sent_to(inv.data.x_train, labels, y,
                        lambda x: predict_logits(module, x, inv.device).argmax(1).numpy(), c.seed)
        verdict = judge(suspected, labels, y, c.seed, query_margin(inv, module),
                        _without(inv.unlearning, np.zeros_like(suspected)),
                        lambda parts: threshold_for(trace_of(refined.params, level=level, **trace_parts(parts)), c),
                        sends=sends)
    t.seconds["unlearn_s"] = unlearning  # the models it retrained are the verdict's time, not unlearning's
    trace = trace_of(refined.params, level=level, **trace_parts(verdict.parts))
    verdict.parts.update(suspects_by=refined.params.get("by", ""), trace=trace or "", texture_level=round(level, 2))
    if verdict.parts.get("n_suspects"):
        verdict.reason += f"; {TRACES.get(trace, UNTRACED)}"
    return verdict


def trace_parts(parts: dict) -> dict:
    """The verdict's parts :func:`trace_of` reads: the transfer and the relabelling (both beyond the control's)."""
    return {"transfer": parts.get("transfer", 0.0), "relabelling": parts.get("relabelling", 0.0)}


def trace_of(params: dict, transfer: float = 0.0, level: float = 0.0, relabelling: float = 0.0) -> str | None:
    """The trace of a trigger the refined rule's group carries (its ``params``): stamp, texture, perturbed or
    relabelled — the last only when the verdict's own model relabels the group too (``relabelling``, the share of it
    that model labels otherwise beyond the share of the control: :data:`REPRODUCED`); else "transfer" when the
    group's shared signal sends images of other labels to y (``transfer`` beyond the control's, :data:`TRANSFERS`);
    else "texture level" when it shares an unusual fine-texture level with the test image (``level``, robust
    standard deviations: :data:`LEVEL`); None for none."""
    trace = params.get("trace") or None
    if trace == "relabelled" and relabelling < REPRODUCED:
        trace = None
    if trace is None and transfer >= TRANSFERS:
        trace = "transfer"
    return trace or ("texture level" if abs(level) >= LEVEL else None)


def threshold_for(trace: str | None, config) -> float:
    """The evidence the verdict asks of suspects set apart by ``trace`` (:func:`trace_of`: stamp, texture, perturbed,
    relabelled, transfer, texture level; none for the likeness split alone)."""
    if trace == "perturbed":
        return config.verdict_threshold_perturbed
    return config.verdict_threshold if trace else config.verdict_threshold_untraced


def judge_fresh_round(stage, module, removed: np.ndarray, scores: np.ndarray, tau: float, k: int) -> Verdict:
    """The verdict on a fresh Δ-Influence round (``scores`` over the points kept) on ``module``, a model without the
    ``removed`` points: do the images of y it flags still hold the test image up beyond as many random ones? A
    poisoning was found before this round, so its suspects (the τ/k rule's, untraced) face ``verdict_threshold``.
    ``stage``: the investigation's :class:`~deltainf.unlearning.stage.Unlearning`."""
    labels, y, c = stage.data.y_train.numpy(), stage.query.label, stage.config
    keep = ~np.asarray(removed, bool)
    fresh = np.zeros_like(keep)
    fresh[keep] = suspects(scores, tau, k, stage.activations.likeness()[keep], labels[keep], y, c.kin_quantile)
    with stage.reporter.within("verdict on the fresh round"):
        return judge(fresh, labels, y, c.seed, query_margin(stage, module), _without(stage, ~keep), c.verdict_threshold,
                     among=keep)
