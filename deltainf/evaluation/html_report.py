"""The investigation of a user's case as one self-contained HTML file (images and plotly inlined: it opens
offline): the test image and its copies, Δ and drop counts at the τ/k used, the flagged images with their
paths, and each unlearning method's effect."""
from __future__ import annotations

import html

import numpy as np

from ..figures.experiment import probability_figure, query_captions
from ..figures.images import png_data_uri, thumb_scale, upscale
from ..figures.influence import DeltaView, count_histogram, delta_histogram, flagged_order
from ..figures.verdict import verdict_figure
from ..suspicion.suspects import SuspectSet
from .case_report import suspect_set

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
.grid{display:flex;flex-wrap:wrap;gap:10px}.cell{width:110px;font-size:11px;text-align:center;word-break:break-all}
.cell img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.note{color:#555;font-size:13px}.verdict{font-size:1.1rem;padding:.6rem 1rem;border-radius:6px}
.poisoned{background:#fde8dc;border:1px solid #D55E00}.unproven{background:#e3eef8;border:1px solid #0072B2}
.row{display:flex;gap:20px;align-items:flex-start}.row>div:last-child{flex:1}"""
MAX_SHOWN = 200


def render(case, report: dict, suspects: SuspectSet | None = None) -> str:
    """The report as HTML text (``report`` is :func:`~deltainf.evaluation.case_report.investigate`'s): its
    ``suspects`` (default :func:`~deltainf.evaluation.case_report.suspect_set`, what the CLI writes and unlearns)
    with the analyst's marks."""
    inv, data, q = case.investigation, case.data, report["query"]
    if suspects is None:
        suspects = suspect_set(case)
    parts = [f"<h1>Δ-Influence investigation of {_e(report['data']['root'])}</h1>",
             f"<p class=note>{report['data']['n_train']} training images in {len(data.classes)} classes; model "
             f"{_e(report['model']['spec'])} ({_e(report['model']['weights'])})"
             + (f"; clean accuracy {report['model']['clean_acc']:.3f} on test/" if report['model']['clean_acc']
                is not None else "; no test/ folder") + ".</p>"]
    v = report["verdict"]
    accused = v["poisoned"] or report["config"]["despite_verdict"]
    parts.append("<h2>The verdict</h2>"
                 f"<p class='verdict {'poisoned' if v['poisoned'] else 'unproven'}'><b>"
                 f"{'Poisoned' if v['poisoned'] else 'No evidence of poisoning'}</b> — evidence {v['score']:.1f} "
                 f"(threshold {v['threshold']:g}): {_e(v['reason'])}.</p><div>{{fig0}}</div>"
                 + ("" if accused else "<p class=note>Nothing is accused or unlearned: the flags below are an "
                                       "exploration of influence collapse, not a suspect set.</p>")
                 + ("<p class=note>Unlearned all the same, at the analyst's choice: an exploration, not an "
                    "accusation the evidence supports.</p>" if accused and not v["poisoned"] else ""))
    image = case.query.image
    probs = case.probabilities()
    figures = [verdict_figure(v, data.classes[q["label"]]),
               probability_figure(probs, data.classes, None, "The test image: class probabilities")]
    parts.append("<h2>The test image</h2><div class=row>"
                 f"<div class=cell><img src='{png_data_uri(upscale(image, thumb_scale(image.shape[-1])))}'>"
                 f"<br>{_e(q['path'] or 'uploaded')}</div><div>{{fig1}}</div></div>"
                 f"<p>Predicted <b>{_e(q['predicted_name'])}</b> (p = {q['probability']:.2f}); investigated with the "
                 f"label y = <b>{_e(q['label_name'])}</b>.</p>")
    queries = inv.queries()
    parts.append(f"<h2>Its {queries.T} transformed copies</h2><p class=note>Each copy: one augmentation drawn at "
                 "random, and a random label other than y (after the arrow).</p>"
                 + _grid(queries.images[1:], query_captions(queries, data.classes)[1:]))
    name = next((n for n, r in report["detectors"].items() if "tau" in r), None)  # the first with a τ/k rule
    det = report["detectors"].get(name, {})
    if "tau" in det:
        view = DeltaView.build(inv.scores(det["mode"]), case.known_poisons, query_captions(queries, data.classes)[1:],
                               data.y_train.numpy())
        tau, k = det["tau"], det["k"]
        figures += [delta_histogram(view, 0, tau, k), count_histogram(view, tau, k)]
        n_rule = int(view.flags(tau, k).sum())
        members = suspects.members if accused and suspects is not None else inv.detect(name).flagged
        by = suspects.flagged_by if accused and suspects is not None else name
        rule_note = "" if n_rule == int(members.sum()) else (
            f" The histograms show the τ/k rule, which flags {n_rule}; {_e(by)} flags {int(members.sum())} "
            f"(below{', step by step' if det.get('steps') else ''}).")
        parts.append(f"<h2>Influence collapse: τ = {tau:.4g} ({tau / view.scale:+.2f} × scale), k = {k}"
                     f"{' (suggested from Δ)' if det.get('suggested') else ''}</h2>"
                     "<p class=note>Δ[t, i] = score(copy t, i) − score(test image, i). A training image is flagged when "
                     f"at least T − k = {view.T - k} of its {view.T} Δ fall below τ.{rule_note}</p>"
                     "<div>{fig2}</div><div>{fig3}</div>")
        marks = suspects.marks if suspects is not None else {}
        counts, mean = view.counts(tau), view.mean_rel

        def captions(order):
            return [f"{data.train_paths[i]} · {data.classes[int(data.y_train[i])]} · {counts[i]} drops · mean Δ "
                    f"{mean[i]:+.3g}×scale" + (f" · {marks[int(i)]}" if int(i) in marks else "")
                    for i in order[:MAX_SHOWN]]

        order = flagged_order(view, members, tau)
        more = f" (the {MAX_SHOWN} most collapsed shown)" if len(order) > MAX_SHOWN else ""
        what = "The suspect set: flagged by" if accused else "Explored (not accused):"
        review = suspects.summary() if suspects is not None else {}
        said = ", ".join(f"{review[m]} {m}" for m in ("confirmed", "dismissed", "added") if review.get(m))
        parts.append(f"<h2>{what} {_e(by)}: {len(order)} training images{more}</h2>"
                     + (f"<p class=note>The analyst's review: {said}. Unlearning removes the set but the dismissed "
                        f"images ({review['n_removed']} removed).</p>" if said and accused else "")
                     + _grid(data.x_train[order[:MAX_SHOWN]], captions(order)))
        kept = np.array([i for i, m in marks.items() if m == "dismissed"], int)
        if accused and len(kept):
            parts.append("<h3>Dismissed by the analyst: kept in the training set</h3>"
                         + _grid(data.x_train[kept[:MAX_SHOWN]], captions(kept)))
        if det.get("steps"):
            parts.append(f"<h3>{_e(name)}, step by step</h3><table><tr><th>step</th><th>images</th><th>what</th></tr>"
                         + "".join(f"<tr><td>{_e(s['step'])}</td><td>{'' if s['count'] is None else s['count']}"
                                   f"</td><td>{_e(s['what'])}</td></tr>" for s in det["steps"]) + "</table>")
    others = {n: r for n, r in report["detectors"].items() if n != name}
    if others:
        parts.append("<h2>Other detectors</h2><table><tr><th>detector</th><th>flagged</th></tr>"
                     + "".join(f"<tr><td>{_e(n)}</td><td>{r['n_flagged']}</td></tr>" for n, r in others.items())
                     + "</table>")
    if report["unlearn"]:
        rows = "".join(
            f"<tr><td>{_e(m.upper())}</td><td>{r['removed']}</td><td>{r['rounds']}</td>"
            f"<td>{_e(r['query_predicted_name'])} ({r['query_probability']:.2f})</td>"
            f"<td>{r['query_label_probability']:.3f}</td><td>{_acc(r.get('clean_acc'))}</td>"
            f"<td>{_e(r['starts_from'])}</td></tr>" for m, r in report["unlearn"].items())
        parts.append("<h2>Unlearning</h2><table><tr><th>method</th><th>removed</th><th>rounds</th><th>test image "
                     "predicted</th><th>P(y)</th><th>clean accuracy</th><th>starts from</th></tr>"
                     f"<tr><td>before</td><td>0</td><td></td><td>{_e(q['predicted_name'])} ({q['probability']:.2f})"
                     f"</td><td>{q['label_probability']:.3f}</td><td>{_acc(report['model']['clean_acc'])}</td><td>"
                     f"your model</td></tr>{rows}</table>")
    body = "\n".join(parts)
    for i, fig in enumerate(figures):
        body = body.replace("{fig%d}" % i, fig.to_html(full_html=False, include_plotlyjs=i == 0,
                                                       config={"displayModeBar": False}))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Δ-Influence report</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _grid(images, captions) -> str:
    s = thumb_scale(images.shape[-1]) if len(images) else 1
    return "<div class=grid>" + "".join(f"<div class=cell><img src='{png_data_uri(upscale(im, s))}'><br>{_e(c)}</div>"
                                        for im, c in zip(images, captions)) + "</div>"


def _acc(value) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def _e(text) -> str:
    return html.escape(str(text))
