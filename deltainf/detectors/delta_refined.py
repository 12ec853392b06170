"""Δ-Influence, refined: of the points whose influence collapses, keep those that carry the test image's stamp, or
else those whose label a model trained without them does not learn.

First the stamp (:mod:`deltainf.suspicion.stamp`): pixels the candidates of the test image's label y share with the test
image and almost no other training image has — a patch trigger stamped verbatim, an additive one where the images
are flat. When the images of y fall into two well-separated groups by the share of those pixels they carry
(``stamp_separation``), the upper group is kept: a trigger is carried whole or not at all, where the likeness of
natural images is a matter of degree. A pattern mixed into the whole image (a blended trigger) leaves no pixel alike
on natural images, but its fine texture: the images of y whose texture correlates with the test image's
(:func:`~deltainf.suspicion.stamp.shared_texture`) are kept on the same condition. Clean-label poisons carry no
trigger of the test image's, but an ε-bounded perturbation raises their fine-texture energy far above a typical
image's and the (clean) test image's: that group of candidates is kept too
(:func:`~deltainf.suspicion.stamp.perturbed`). Otherwise (a smooth trigger, poisons without a perturbation) models
trained without the candidates decide.

Influence collapse also catches clean training images of the test image's label y: they supported y, and a copy
with a random label no longer needs them. The two differ in what a model trained WITHOUT them makes of them: a
clean image of y is still an image of y, while a dirty-label poison (an image of another class carrying the
trigger, labelled y) goes back to its own class once the poisons are gone. So the candidates are set aside, the
investigation's recipe trains a model on the rest (classes rebalanced, so that y is learnt even when most of it
was set aside), and a candidate stays suspected only when that model gives it another label than its own. The
ones it agrees with go back into the training set and the check runs again (``refined_rounds``): with fewer
clean images of y set aside the model learns y better and returns more of them. Poisons given back keep the
backdoor alive, and the next model gives more poisons their poisoned label: when the last round's group leaves the
test image its label, the first round's (the largest) is put to the same test. No ground truth is used.

Dirty-label poisons come from one source class (the trigger is stamped on the victim's images), so the model
sends them back to one class. When the suspects it relabels do not agree (the largest class they are sent to holds
fewer than ``refined_min_agreement`` of them), the model does not know the classes well enough for the check to
tell poisons from its own errors (a weak model on hard images relabels clean ones at random); and when it relabels
almost none (fewer than ``refined_min_share`` of the candidates), the poisons carry their own labels (clean-label:
Witches' Brew) or there are none to find. Either way the relabelling cannot decide, and the *likeness split* does:
the candidates' images of y fall into two groups by their likeness to the test image (:func:`likeness`: whether
their difference from a typical image of y points the way the test image's does) plus the model's probability of y,
split by 2-means, and the upper group is kept (:func:`likeness_split`) — the poisons share the trigger with the test
image, and so its difference; and the trigger makes the model as sure of them as of the test image, where a weak
model is unsure of many clean images of y (a model sure of every image of y shifts them all alike).

The likeness split's upper group is a first guess, sharpened by the coarse look (:mod:`deltainf.suspicion.look`):
a discriminant of the images' colours and layout at a few cells per channel, fitted between that group and the
images of y outside the candidates, scores every candidate (each by a fit made without it), and 2-means keeps the
upper group, twice, when that split is clean (``look_separation``). Poisons are images of another class, and a smooth
trigger sits in the lowest frequencies: both mark the coarse look, where the look-alikes of the test image the
likeness split also keeps have y's, and split from them less cleanly.

Whichever test decided, its group is put to the test image itself: a model retrained without it (exact unlearning)
must give the test image y less than half the probability (:data:`~deltainf.verdict.HOLDS`). A stamp or texture
whose carriers fail it is not the trigger (pixels a few clean images happen to share with the test image), and the
next test decides. When the last test's group fails it,
poisons are left among the other candidates (a smooth trigger the relabelling model learns back, likeness spread over
both groups): the τ/k rule's flags of y are added to the group, since unlearning only the group would leave the
backdoor. A group set apart by a trace a trigger
leaves (the stamp, the texture, the perturbation, the relabelling) that passes carries it in ``params["trace"]``;
the likeness split leaves none (it always finds two groups), and the verdict asks more of what it keeps.

The candidates are the τ/k rule's flags with τ raised to 0 when it is lower (the refinement removes the clean
points itself, so it starts from every point whose influence falls on T − k copies at all), and their kin
(:func:`kin`): images of y as like the test image as the candidates like it, where the poisons the τ/k rule
missed are. Each model is trained without the suspects' kin too: poisons left in the data keep the backdoor
alive, and the model would then give the suspected poisons back their poisoned label.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..influence.delta import delta_flags, delta_matrix
from ..options import option
from ..suspicion import SuspicionOptions
from ..suspicion.likeness import kin, likeness, likeness_split
from ..suspicion.look import look_split
from ..suspicion.relabel import agreement, dirty_label, relabelling_rounds
from ..suspicion.stamp import perturbed, shared_stamp, shared_texture
from ..verdict import HOLDS
from . import Detection, DetectorInput, delta_rule, register


@dataclass(frozen=True)
class RefinedSettings(SuspicionOptions):
    refined_min_agreement: float = option(0.8, "Δ refined: when the largest class the relabelled candidates are sent "
                                               "to holds fewer than this share of them (a model too weak for the "
                                               "check), the likeness split decides instead", kind="fraction")
    stamp_tolerance: int = option(8, "Δ refined: a training image matches the test image at a pixel when every "
                                     "channel is within this many grey levels (of 255) of it", kind="grey")
    stamp_enrichment: float = option(10.0, "Δ refined: a pixel belongs to the stamp when the candidates match the test "
                                           "image there at least this many times as often as the other training "
                                           "images do", kind="positive")
    stamp_separation: float = option(0.9, "Δ refined: the stamp (or the shared texture) decides when the share of its "
                                          "pixels the candidates carry (their texture's correlation with the test "
                                          "image's) splits into two groups this far apart (between-group share of the "
                                          "variance; 1: carried whole or not at all)", kind="probability")
    look_separation: float = option(0.75, "Δ refined: the coarse look sharpens the likeness split's group when its "
                                         "discriminant splits the candidates this far apart (between-group share of "
                                         "the variance); behind an honest mistake it splits them less cleanly",
                                    kind="probability")
    perturbation_z: float = option(1.5, "Δ refined: the candidates whose fine-texture energy splits above the rest "
                                        "are a perturbed group (clean-label poisons) when their least energy lies "
                                        "this many robust standard deviations above the training set's median (and "
                                        "their mean is 1.3 times the test image's)", kind="positive")


def steps(params: dict, n_flagged: int, classes: list[str]) -> list[dict]:
    """Δ refined told as steps, [{"step", "count", "what"}], from its ``params`` (a detection of ``n_flagged``
    images): the candidates, those set aside with them, the test that decided, what was kept and given back, and the
    test image's own check (``--explain``, the report, the app)."""
    def name(c) -> str:
        return classes[int(c)] if 0 <= int(c) < len(classes) else str(c)

    raised = params["candidate_tau"] != params["tau"]
    told = [{"step": "candidates", "count": params["n_candidates"],
              "what": "training images whose influence collapses: the τ/k rule" + (" with τ raised to 0" if raised
                                                                                    else "") +
                      f" (τ {params['candidate_tau']:.3g}, k {params['k']})"}]
    if params.get("n_kin"):
        told.append({"step": "their look-alikes", "count": params["n_kin"],
                      "what": "other images of the test image's label at least as like the test image as the "
                              "candidates are"})
    for what, n in (params.get("not_the_trigger") or {}).items():
        told.append({"step": f"not the trigger: the shared {what}", "count": n,
                     "what": "images of the label that carry it; a model retrained without them still gives the "
                             "test image its label, so the next test decides"})
    if "stamp_cut" in params or "texture_cut" in params or "perturbation_cut" in params:
        stamp = "stamp_cut" in params
        told.append({"step": "the shared stamp" if stamp else "the shared texture" if "texture_cut" in params
                     else "the perturbation",
                      "count": params["stamp_pixels"] if stamp else None,
                      "what": (f"pixels the candidates share with the test image and almost no other image has; "
                               f"the images carrying them split from the rest at {params['stamp_separation']:.0%} of "
                               f"the variance" if stamp else
                               f"fine texture correlated with the test image's (≥ {params['texture_cut']:.2f}), "
                               f"split at {params['texture_separation']:.0%} of the variance"
                               if "texture_cut" in params else
                               f"fine-texture energy of at least {params['perturbation_cut']:.1f} grey levels, far "
                               f"above a typical training image's and the test image's: ε-bounded perturbations "
                               f"(clean-label poisons)") +
                              " — no model trained"})
        told.append({"step": "given back", "count": params["n_dropped_as_unstamped"],
                      "what": "candidates that do not carry it"})
        if params.get("n_stamped_beyond_candidates"):
            told.append({"step": "found beyond the candidates", "count": params["n_stamped_beyond_candidates"],
                          "what": "images of the label that carry it but did not collapse"})
    elif "suspects_per_round" in params:
        rounds = " → ".join(str(n) for n in params["suspects_per_round"])
        sent = params.get("sent_to") or {}
        relabelled = sum(sent.values())
        where = ", ".join(f"{n} to {name(c)}" for c, n in sent.items())
        told.append({"step": "set aside, a model trained without them", "count": relabelled or None,
                      "what": (f"labels {relabelled} of them otherwise ({where}); still suspected per round: "
                               f"{rounds}" if relabelled else f"gives almost none another label; still suspected per "
                                                               f"round: {rounds}")})
        if "n_dropped_as_their_label" in params:
            first = " (the first round's group: the later rounds gave back poisons the test image needs)" \
                if params.get("kept_round") == 1 else ""
            told.append({"step": "given back", "count": params["n_dropped_as_their_label"],
                          "what": f"keep their own label without the others: clean images of it{first}"})
        elif "likeness_cut" in params:
            why = (f"the relabelled ones go to scattered classes (the largest holds {params['agreement']:.0%})"
                   if "agreement" in params else "the relabelling is no evidence")
            look = "look_cut" in params
            told.append({"step": "the likeness split", "count": None if look
                         else params["n_dropped_as_unlike_the_query"],
                          "what": f"{why}: the images of the label least like the test image (likeness plus the "
                                  f"model's probability of it below {params['likeness_cut']:.2f}) are "
                                  + ("set apart from the " + str(params["n_liked"]) + " most like it" if look
                                     else "given back")})
            if look:
                told.append({"step": "the coarse look", "count": params["n_dropped_as_unlike_the_query"],
                              "what": "a discriminant of the images' colours and layout at 3 × 3 cells, fitted "
                                      "between the most alike and the images of the label outside the candidates, "
                                      "scores every candidate; those below the split "
                                      f"({params['look_cut']:.2f}) are given back"})
        else:
            told.append({"step": "the τ/k rule stands", "count": None,
                          "what": "neither the relabelling nor the likeness tells the candidates apart"})
    if "p_without_kept" in params:
        widened = params.get("p_without_widened", 0.0)
        outcome = (": it still holds it up, so poisons are left — the τ/k rule's flags of that label are added "
                   f"(a model without those too gives it {widened:.2f})" if "widened_from" in params
                   else ": it still holds it up, and does without the τ/k rule's flags of that label too "
                        f"({widened:.2f}) — the group stands, though nothing found here holds the test image up alone"
                   if "p_without_widened" in params else ": under ½, the group held it up")
        told.append({"step": "the test image's check", "count": None,
                      "what": f"a model retrained without the {params.get('widened_from', n_flagged)} kept gives the "
                              f"test image its label at P = {params['p_without_kept']:.2f}{outcome}"})
    told.append({"step": "flagged", "count": n_flagged, "what": params.get("by", "")})
    return told


@register("delta_refined", label="Δ-Influence, refined", order=5, settings=RefinedSettings, modes=("full",),
          features=True, images=True, retrains=True, explain=steps,
          help="Δ-Influence refined: the images of the test image's label that carry the pixels it shares with the "
               "collapsed points and no other image has (a stamped trigger), or its fine texture (a blended one), "
               "or a perturbation it does not carry (clean-label poisons); without any, the collapsed "
               "points a model trained without them labels otherwise, or when that check cannot decide, the ones most "
               "like the test image (likeness split), sharpened by their coarse look; with the τ/k rule's flags of "
               "the test image's label when a model retrained without that group still misclassifies it and one "
               "without those too does not")
def delta_refined(inputs: DetectorInput, s: RefinedSettings) -> Detection:
    """Δ-Influence refined: of the collapsed points (τ no lower than 0) and the images of y, those carrying the stamp
    they share with the test image; without one, those a model trained without the suspects gives another label than
    their own; when that check cannot decide (a weak model, clean-label poisons), the upper group of the likeness
    split; with the τ/k rule's flags of y added when a model retrained without that group still gives the test image
    y."""
    rule = delta_rule(inputs, "full", "delta_refined")
    candidate_tau = max(rule.params["tau"], 0.0)
    candidates = delta_flags(delta_matrix(inputs.scores["full"]), candidate_tau, rule.params["k"])
    labels, y = inputs.labels, inputs.query_label
    like = likeness(inputs.features, inputs.query_features, labels, y)

    def kin_of(aside):
        return kin(aside, like, labels, y, s.kin_quantile)

    pool = candidates | kin_of(candidates)

    def holds(found: Detection) -> bool:  # a model retrained without the group still gives the test image y (P ≥ ½)
        return found.params.get("p_without_kept", 0.0) >= HOLDS

    def checked(found: Detection) -> Detection:  # P(y) of the test image under a model retrained without the group
        if inputs.query_without is not None:
            found.params["p_without_kept"] = round(inputs.query_without(found.flagged), 4)
        return found

    def confirmed(found: Detection) -> Detection:  # removing the kept group must fix the test image
        if not holds(checked(found)):
            return found
        untraced = {k: v for k, v in found.params.items() if k != "trace"}
        widened = found.flagged | (rule.flagged & (labels == y))
        p = inputs.query_without(widened) if (widened & ~found.flagged).any() else found.params["p_without_kept"]
        if p >= HOLDS:
            return Detection("delta_refined", found.flagged, found.score,
                             {**untraced, "p_without_widened": round(p, 4)})
        return Detection("delta_refined", widened, found.score, {
            **untraced, "by": f"with the τ/k rule's flags of y ({found.params['by']} left the test image y)",
            "widened_from": int(found.flagged.sum()), "p_without_widened": round(p, 4)})

    params = {**rule.params, "candidate_tau": candidate_tau, "n_candidates": int(candidates.sum()),
              "n_kin": int((pool & ~candidates).sum())}
    stamp = None if inputs.images is None or inputs.query_image is None else shared_stamp(
        inputs.images, inputs.query_image, pool & (labels == y), ~pool, s.stamp_tolerance, s.stamp_enrichment,
        inputs.seed)
    if stamp is not None:
        params.update(stamp_pixels=int(stamp.pixels.sum()), stamp_separation=round(stamp.separation, 3))
        if stamp.separation >= s.stamp_separation:
            carriers = stamp.carriers(labels, y)
            found = checked(Detection("delta_refined", carriers, np.where(labels == y, stamp.carried, -1.0), {
                **params, "by": "the stamp shared with the test image", "trace": "stamp",
                "stamp_cut": round(stamp.cut, 4),
                "stamp_at": np.argwhere(stamp.pixels).tolist(), "n_dropped_as_unstamped": int((pool & ~carriers).sum()),
                "n_stamped_beyond_candidates": int((carriers & ~pool).sum())}))
            if not holds(found):
                return found
            params["not_the_trigger"] = {"stamp": int(carriers.sum())}
    texture = None if inputs.images is None or inputs.query_image is None else shared_texture(
        inputs.images, inputs.query_image, pool & (labels == y), inputs.seed)
    if texture is not None:
        params["texture_separation"] = round(texture.separation, 3)
        if texture.separation >= s.stamp_separation:
            carriers = texture.carriers(labels, y)
            found = checked(Detection("delta_refined", carriers, np.where(labels == y, texture.carried, -1.0), {
                **params, "by": "the texture shared with the test image", "trace": "texture",
                "texture_cut": round(texture.cut, 4),
                "n_dropped_as_unstamped": int((pool & ~carriers).sum()),
                "n_stamped_beyond_candidates": int((carriers & ~pool).sum())}))
            if not holds(found):
                return found
            params["not_the_trigger"] = {**params.get("not_the_trigger", {}), "texture": int(carriers.sum())}
    noisy = None if inputs.images is None or inputs.query_image is None else perturbed(
        inputs.images, inputs.query_image, pool & (labels == y), inputs.seed, s.perturbation_z)
    if noisy is not None:
        carriers = noisy.carriers(labels, y)
        return confirmed(Detection("delta_refined", carriers, np.where(labels == y, noisy.carried, -1.0), {
            **params, "by": "a perturbation the test image does not carry", "trace": "perturbed",
            "perturbation_cut": round(noisy.cut, 3), "perturbation_separation": round(noisy.separation, 3),
            "n_dropped_as_unstamped": int((pool & ~carriers).sum()),
            "n_stamped_beyond_candidates": int((carriers & ~pool).sum())}))
    history = relabelling_rounds(pool, labels, inputs.predict_without, s.refined_rounds, kin_of)
    suspects, predicted = history[-1]
    params["suspects_per_round"] = [int(still.sum()) for still, _ in history]

    def relabelled_group(group: np.ndarray, by: str) -> Detection:
        return Detection("delta_refined", group, np.where(group, 2 + like, np.where(pool, like, -1.0)), {
            **params, "by": by, "trace": "relabelled", "n_dropped_as_their_label": int((pool & ~group).sum())})

    if dirty_label(suspects, pool, s.refined_min_share):
        sent, share = agreement(suspects, predicted)
        params.update(sent_to=sent, agreement=round(share, 3))
        if share >= s.refined_min_agreement:
            last = checked(relabelled_group(suspects, "relabelled without them"))
            first, first_predicted = history[0]
            if (holds(last) and not np.array_equal(first, suspects)
                    and dirty_label(first, pool, s.refined_min_share)):
                sent, share = agreement(first, first_predicted)
                if share >= s.refined_min_agreement and (p := inputs.query_without(first)) < HOLDS:
                    params.update(sent_to=sent, agreement=round(share, 3), p_without_kept=round(p, 4), kept_round=1)
                    return relabelled_group(first, "relabelled without them (the first round's: the later rounds "
                                                   "gave back poisons the test image needs)")
            return confirmed(last)  # its own check is cached: only a widening trains another model
        why = "the relabelled ones are sent to scattered classes"
    else:
        why = "the candidates keep their labels without them"
    kept, cut = likeness_split(like, pool & (labels == y), inputs.seed, inputs.confidence)
    if not kept.any():  # no two groups to tell apart: the τ/k rule's flags stand
        return Detection("delta_refined", rule.flagged, rule.score, {**params, "by": f"the τ/k rule ({why}, and "
                                                                                   f"their likeness does not split)"})
    params.update(likeness_cut=round(cut, 4), n_liked=int(kept.sum()))
    look = None if inputs.images is None else look_split(inputs.images, kept, pool & (labels == y),
                                                         (labels == y) & ~pool, inputs.seed)
    sharpened = look is not None and look[2] >= s.look_separation
    if look is not None:
        params["look_separation"] = round(look[2], 3)
    if sharpened:
        kept = look[0]
        params["look_cut"] = round(look[1], 3)
    by = "likeness split, sharpened by the coarse look" if sharpened else "likeness split"
    return confirmed(Detection("delta_refined", kept, np.where(pool, like, -1.0), {
        **params, "by": f"{by} ({why})", "n_dropped_as_unlike_the_query": int((pool & ~kept).sum())}))
