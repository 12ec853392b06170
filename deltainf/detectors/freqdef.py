"""The frequency defence (Zeng et al., 2021), a baseline the paper compares against.

Synthetic triggered copies of clean images from Zeng et al.'s five families (white block,
random-colour noise block, Gaussian noise, random shadow, blend with another clean image — the
recipe of their detector and of the paper's code), per-channel 2-D DCT log-magnitude spectra, a
logistic regression telling clean from triggered; training images it calls triggered are flagged.
Like Zeng et al.'s detector it learns from data the defender trusts to be clean — here the held-out
split's images (labels unused; ``freqdef_reference = test``). Learning from the training set
itself (cross-fitted: fitted on one half, applied to the other) is the alternative; the poisons
among the "clean" examples then blunt it. On natural images (CIFAR-10) it behaves as Zeng et al.
report — it finds patches, misses the smooth trigger, and flags many clean images; on the built-in
digits, whose backgrounds are a flat black, anything added to an image stands out in the spectrum
and it finds both triggers. Linear algebra and the classifier come from scipy and scikit-learn.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..options import option
from ..seeds import seeded
from . import Detection, DetectorInput, register


@dataclass(frozen=True)
class FreqDefSettings:
    freqdef_threshold: float = option(0.5, "FreqDef: flag when P(triggered) exceeds this", kind="probability")
    freqdef_max_fit: int = option(2000, "FreqDef: at most this many clean images fit the classifier", low=10)
    freqdef_copies: int = option(2, "FreqDef: synthetic triggered copies per clean image", low=1)
    freqdef_reference: str = option("test", "FreqDef learns from: test (the held-out split, trusted clean) or "
                                    "train (the training set, cross-fitted)", choices=("test", "train"))


def dct_log_spectrum(x_uint8: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-channel 2-D DCT log-magnitude spectra, flattened: (N, C·H·W) float32."""
    from scipy.fft import dctn

    x = np.asarray(x_uint8, dtype=np.float32) / 255.0
    spec = dctn(x, axes=(-2, -1), norm="ortho")
    return np.log(np.abs(spec) + 1e-3).reshape(len(x), -1).astype(np.float32)


#: Zeng et al.'s synthetic trigger families (their detector's training recipe, as in the paper's code).
SYNTHETIC_FAMILIES = ("white_block", "noise_block", "gaussian_noise", "shadow", "blend")


def _corner_block(out: np.ndarray, block: np.ndarray, rng: np.random.Generator) -> None:
    """Paste ``block`` (C, bh, bw) into one image (C, H, W) at a random corner, a random margin in."""
    _, h, w = out.shape
    bh, bw = block.shape[1:]
    m = int(rng.integers(0, max(1, round(6 * h / 32))))
    r = (m, h - m - bh)[int(rng.integers(2))]
    q = (m, w - m - bw)[int(rng.integers(2))]
    out[:, max(r, 0):max(r, 0) + bh, max(q, 0):max(q, 0) + bw] = block


def _shadow(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two random 5-gon shadows in the lower half, darkened to half (albumentations' RandomShadow)."""
    from PIL import Image, ImageDraw

    _, h, w = img.shape
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 3))):
        pts = np.c_[rng.uniform(0, w, 5), rng.uniform(h / 2, h, 5)]
        draw.polygon([tuple(p) for p in pts], fill=1)
    dark = np.asarray(mask, dtype=bool)
    out = img.copy()
    out[:, dark] *= 0.5
    return out


def synthetic_triggers(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Triggered copies of uint8 images (N, C, H, W), each from one of Zeng et al.'s five families, sized
    for 32 px and scaled to H: a white block or a random-colour noise block (2–7 px a side) at a corner,
    Gaussian noise (mean 25, variance 10–70 in 0–255 units), a random shadow, or a blend with another of
    the clean images (+ 0.3 · other, clipped)."""
    clean = x.astype(np.float32) / 255.0
    out = clean.copy()
    n, c, h, w = x.shape
    hi = max(3, round(8 * h / 32))
    for i in range(n):
        family = SYNTHETIC_FAMILIES[int(rng.integers(len(SYNTHETIC_FAMILIES)))]
        if family in ("white_block", "noise_block"):
            bh, bw = int(rng.integers(2, hi)), int(rng.integers(2, hi))
            block = np.ones((c, bh, bw), np.float32) if family == "white_block" else rng.random((c, bh, bw))
            _corner_block(out[i], block, rng)
        elif family == "gaussian_noise":
            out[i] += (25 + np.sqrt(rng.uniform(10, 70)) * rng.standard_normal((c, h, w))) / 255.0
        elif family == "shadow":
            out[i] = _shadow(out[i], rng)
        else:
            out[i] += 0.3 * clean[int(rng.integers(n))]
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def _fit_spectrum_classifier(x_clean: np.ndarray, rng: np.random.Generator, copies: int):
    """Logistic regression on DCT log-spectra: ``x_clean`` (label 0) vs ``copies`` synthetic triggered
    copies of each (label 1), classes weighted equally."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clean = dct_log_spectrum(x_clean)
    fake = dct_log_spectrum(synthetic_triggers(np.concatenate([x_clean] * copies), rng))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))
    return clf.fit(np.concatenate([clean, fake]), np.r_[np.zeros(len(clean)), np.ones(len(fake))])


def _synthetic_auroc(clf, x_clean: np.ndarray, rng: np.random.Generator) -> float:
    """How well ``clf`` tells held-out clean images from synthetic triggered copies of them."""
    from sklearn.metrics import roc_auc_score

    p = clf.predict_proba(np.concatenate([dct_log_spectrum(x_clean),
                                          dct_log_spectrum(synthetic_triggers(x_clean, rng))]))[:, 1]
    return float(roc_auc_score(np.r_[np.zeros(len(x_clean)), np.ones(len(x_clean))], p))


def frequency_detector_scores(x_uint8: np.ndarray, seed: int, reference: np.ndarray | None = None,
                              max_fit: int = 2000, copies: int = 2) -> tuple[np.ndarray, dict]:
    """P(triggered) for every image of ``x_uint8`` from a DCT-spectrum classifier trained on clean images
    vs synthetic triggered copies of them.

    ``reference``: trusted clean images to train on (Zeng et al.'s setting; 80 % to fit, 20 % to
    measure the synthetic AUROC). Without one the images themselves serve, 2-fold cross-fitted (a
    classifier fitted on one half scores the other), so a poison is never scored by a classifier
    that was told it is clean — though poisons in the fitting half still blunt it.
    """
    rng = seeded(seed, "freqdef folds")
    n = len(x_uint8)
    if reference is not None and len(reference) >= 10:
        order = rng.permutation(len(reference))
        n_check = max(2, len(order) // 5)
        fit, check = reference[order[n_check:][:max_fit]], reference[order[:n_check][:max_fit]]
        clf = _fit_spectrum_classifier(fit, rng, copies)
        prob = clf.predict_proba(dct_log_spectrum(x_uint8))[:, 1]
        return prob, {"reference": "held-out clean images", "n_reference": len(fit),
                      "synthetic_auroc": round(_synthetic_auroc(clf, check, rng), 4)}
    halves = np.array_split(rng.permutation(n), 2)
    prob = np.zeros(n)
    aucs = []
    for fit_half, apply_half in ((halves[0], halves[1]), (halves[1], halves[0])):
        clf = _fit_spectrum_classifier(x_uint8[rng.permutation(fit_half)[:max_fit]], rng, copies)
        prob[apply_half] = clf.predict_proba(dct_log_spectrum(x_uint8[apply_half]))[:, 1]
        aucs.append(_synthetic_auroc(clf, x_uint8[rng.permutation(apply_half)[:max_fit]], rng))
    return prob, {"reference": "training set, 2-fold cross-fitted", "n_reference": int(min(len(halves[0]), max_fit)),
                  "synthetic_auroc": round(float(np.mean(aucs)), 4)}


@register("freqdef", label="Frequency defence", order=12, settings=FreqDefSettings, images=True, reference=True)
def freqdef(inputs: DetectorInput, s: FreqDefSettings) -> Detection:
    """Frequency defence (Zeng et al.): a DCT-spectrum classifier of synthetic triggers, applied to the training set.

    It learns from clean images trusted by the defender (the held-out split) and synthetic triggered
    copies of them, from Zeng et al.'s five trigger families."""
    reference = inputs.reference.numpy() if s.freqdef_reference == "test" and inputs.reference is not None else None
    prob, info = frequency_detector_scores(inputs.images.numpy(), inputs.seed, reference, s.freqdef_max_fit,
                                           s.freqdef_copies)
    return Detection("freqdef", prob > s.freqdef_threshold, prob, {
        "threshold": s.freqdef_threshold, "classifier": "LogisticRegression on per-channel DCT log-magnitude",
        "copies": s.freqdef_copies, **info})
