"""What the Experiment, Test image and Transformations pages show: each attack's trigger, the poisons beside
clean images of their true class, class probabilities of one image, the copies' captions."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from ..attacks import ATTACKS
from ..models.training import predict_logits
from .images import thumb_scale, upscale
from .style import CLEAN, POISON, bar, base_layout, figure


def poison_strip(exp, n: int = 8) -> dict:
    """Poisoned training images beside clean training images of the class they really show.

    Works for dirty-label attacks (BadNet: a victim-class image with the trigger, relabelled) and
    clean-label ones (the label is kept, the image perturbed) alike: the true class is read from the
    unpoisoned data. Returns the two uint8 batches, their captions and the true class.
    """
    p = exp.poisoned
    idx = p.poison_idx.numpy()[:n]
    given = p.data.y_train.numpy()
    true = exp.data.y_train.numpy()  # the labels before poisoning
    classes = p.data.classes
    shown = int(np.bincount(true[idx]).argmax()) if len(idx) else int(p.victim)
    clean = np.flatnonzero((given == shown) & (true == shown) & ~exp.is_poison)[:n]
    return {
        "poisons": p.data.x_train[idx],
        "poison_captions": [f"#{i}: {classes[true[i]]}, labelled {classes[given[i]]}" if true[i] != given[i]
                            else f"#{i}: {classes[given[i]]} (perturbed)" for i in idx],
        "clean": p.data.x_train[clean],
        "clean_captions": [f"#{i}: {classes[shown]}" for i in clean],
        "true_class": classes[shown],
    }


def attack_preview(attack: str, config, sample, dataset: str | None = None) -> tuple[list[np.ndarray], list[str]]:
    """A cheap picture of ``attack``'s trigger before anything is trained, drawn on one uint8 image
    ``sample`` (3, H, W) with the configured trigger settings, as on the data source ``dataset`` (else the configured
    one): (enlarged images, captions)."""
    entry = ATTACKS[attack]
    x = torch.as_tensor(sample)
    shown, captions = entry().preview(x, entry.settings_from(config), config.seed, dataset or config.dataset)
    s = thumb_scale(x.shape[-1])
    return [upscale(im, s) for im in [x] + shown], ["clean"] + captions


def trigger_picture(exp) -> tuple[list[np.ndarray], list[str]]:
    """This experiment's actual trigger, as its attack draws it: (enlarged images, captions)."""
    images, captions = ATTACKS[exp.config.attack]().picture(exp.data, exp.poisoned)
    s = thumb_scale(exp.data.x_train.shape[-1])
    return [upscale(im, s) for im in images], captions


def experiment_facts(exp) -> dict:
    """Counts and classes for the Experiment page (needs the poisoned data, not the model)."""
    p = exp.poisoned
    return {"n_train": int(len(p.data.y_train)), "n_test": int(len(p.data.y_test)),
            "n_poison": int(len(p.poison_idx)), "victim": p.data.classes[p.victim],
            "target": p.data.classes[p.target], "image_shape": tuple(p.data.x_train.shape[1:]),
            "n_trigger_test": int(len(p.x_trigger_test))}


def class_probabilities(model, image, device) -> np.ndarray:
    """Softmax over the classes for one uint8 (3, H, W) image."""
    logits = predict_logits(model, image[None], device)
    return torch.softmax(logits.float(), dim=1)[0].numpy()


def probability_figure(probs: np.ndarray, classes: list[str], target: int | None = None,
                       title: str = "Class probabilities", compare: np.ndarray | None = None,
                       names: tuple[str, str] = ("before", "after")) -> go.Figure:
    """Bars of class probabilities (optionally a second set beside them); the target class is marked."""
    labels = [f"{c} (target)" if i == target else str(c) for i, c in enumerate(classes)]
    if compare is None:
        colours = [POISON if i == int(np.argmax(probs)) else CLEAN for i in range(len(probs))]
        data = [bar(labels, probs, "probability", colours, "class %{x}<br>p = %{y:.3f}", opacity=1.0)]
    else:
        data = [bar(labels, probs, names[0], POISON, names[0] + ": class %{x}, p = %{y:.3f}", opacity=1.0),
                bar(labels, compare, names[1], CLEAN, names[1] + ": class %{x}, p = %{y:.3f}", opacity=1.0)]
    layout = base_layout(title, "class", "probability", height=300, barmode="group")
    layout["xaxis"]["type"] = "category"
    layout["yaxis"]["range"] = [0, 1.02]
    return figure(data, layout)


def query_captions(queries, classes: list[str]) -> list[str]:
    """"t: augmentation · random label c" (image-only copies keep the label: "· label c") for every row of a
    :class:`~deltainf.influence.queries.Queries`."""
    kind = "label" if queries.mode == "image-only" else "random label"
    out = []
    for t, (name, label) in enumerate(zip(queries.names, queries.labels.tolist())):
        out.append(f"original · label {classes[label]}" if t == 0 else f"{t}: {name} · {kind} {classes[label]}")
    return out
