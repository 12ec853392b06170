"""Baseline poison detectors the paper compares Δ-Influence against, registered as detectors.

* ``actclust`` — Activation Clustering (Chen et al., 2018): per class, the last hidden layer's
  activations of the training points carrying that label, reduced to ``ACTCLUST_DIMS`` dimensions
  with PCA (Chen et al. use ICA; whitening every component drowned the poison direction among
  noise directions here), split by 2-means. The smaller cluster is flagged when the split is real:
  it holds at most ``ACTCLUST_MAX_FRACTION`` of the class, its silhouette is at least
  ``ACTCLUST_MIN_SILHOUETTE``, and exclusionary reclassification (Chen et al.'s strongest test)
  sends it elsewhere — k nearest neighbours among all OTHER training points' activations give at
  most ``ACTCLUST_MAX_KEEP`` of it the class's own label (Chen et al. retrain without the cluster;
  neighbours stand in for that). Silhouette alone does not separate here: clean digit classes
  split into writing styles with silhouettes as high as the poisoned class's.
* ``specsig`` — Spectral Signatures (Tran et al., 2018): per class, centred activations, their top
  right singular vector; a point's outlier score is its squared projection on it. Tran et al.
  remove the top 1.5·ε·n of each class, with ε the poison fraction — unknown to a defender, so ε is
  fixed at ``SPECSIG_EPS`` (5 %): the top 7.5 % of every class is flagged.
* ``freqdef`` — the frequency defence (Zeng et al., 2021): synthetic triggered copies of clean
  images from Zeng et al.'s five families (white block, random-colour noise block, Gaussian noise,
  random shadow, blend with another clean image — the recipe of their detector and of the paper's
  code), per-channel 2-D DCT log-magnitude spectra, a logistic regression telling clean from
  triggered; training images it calls triggered are flagged. Like Zeng et al.'s detector it learns
  from data the defender trusts to be clean — here the held-out split's images (labels unused;
  ``FREQDEF_REFERENCE``). Learning from the training set itself (cross-fitted: fitted on one half,
  applied to the other) is the alternative; the poisons among the "clean" examples then blunt it.
  On natural images (CIFAR-10) it behaves as Zeng et al. report — it finds patches, misses the
  smooth trigger, and flags many clean images; on the built-in digits, whose backgrounds are a
  flat black, anything added to an image stands out in the spectrum and it finds both triggers.

Each returns a :class:`~deltainf.detect.Detection` with a per-point score (higher = more
suspicious) and its parameters. Linear algebra and clustering come from scikit-learn/scipy.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .cache import content_key
from .detect import Detection, register

# Would-be config fields (--actclust-dims, --actclust-max-fraction, --actclust-min-silhouette,
# --actclust-max-keep, --specsig-eps, --freqdef-threshold, --freqdef-reference):
ACTCLUST_DIMS = 10
ACTCLUST_MAX_FRACTION = 0.35
ACTCLUST_MIN_SILHOUETTE = 0.10
ACTCLUST_MAX_KEEP = 0.35
ACTCLUST_NEIGHBOURS = 10
SPECSIG_EPS = 0.05
SPECSIG_MULTIPLIER = 1.5
FREQDEF_THRESHOLD = 0.5       # flag when P(triggered) exceeds this
FREQDEF_MAX_FIT = 2000        # at most this many clean images fit the classifier
FREQDEF_COPIES = 2            # synthetic triggered copies per clean image
FREQDEF_REFERENCE = "test"    # clean images to learn from: "test" (held-out split) or "train" (cross-fitted)
EMBED_BATCH = 256


# ----------------------------------------------------------------------------- activations
def _network(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(normaliser, network) of a model built by :func:`deltainf.models.build_model`."""
    if isinstance(model, nn.Sequential) and len(model) == 2:
        return model[0], model[1]
    return nn.Identity(), model


@torch.no_grad()
def embeddings(model: nn.Module, x_uint8: torch.Tensor, device: torch.device, batch_size: int = EMBED_BATCH) -> np.ndarray:
    """Last-hidden-layer activations (N, D) of uint8 images: ``SmallCNN.embed``, or the input of a
    torchvision ResNet's ``fc`` (read with a forward hook)."""
    norm, net = _network(model)
    model.to(device).eval()
    captured: list[torch.Tensor] = []
    hook = None
    if hasattr(net, "embed"):
        def forward(xb):
            return net.embed(norm(xb))
    elif isinstance(getattr(net, "fc", None), nn.Linear):
        hook = net.fc.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))

        def forward(xb):
            captured.clear()
            net(norm(xb))
            return captured[0]
    else:
        raise TypeError(f"cannot read last-layer activations of {type(net).__name__}")
    try:
        out = [forward(x_uint8[s:s + batch_size].to(device).float().div_(255)).float().cpu()
               for s in range(0, len(x_uint8), batch_size)]
    finally:
        if hook is not None:
            hook.remove()
    return torch.cat(out).flatten(1).numpy() if out else np.zeros((0, 0), np.float32)


def pipeline_embeddings(pipe) -> np.ndarray:
    """Activations of the pipeline's training set under its trained model (cached by the model key)."""
    key = content_key("activations", pipe.train_key)
    entry = pipe.store.get(key)
    if entry is not None:
        return entry.arrays["emb"]
    emb = embeddings(pipe.model, pipe.poisoned.data.x_train, pipe.device).astype(np.float32)
    pipe.store.put(key, {"emb": emb}, {})
    return emb


def _classes(labels: np.ndarray) -> list[int]:
    return [int(c) for c in np.unique(labels)]


# ----------------------------------------------------------------------------- ActClust
def activation_clustering(emb: np.ndarray, labels: np.ndarray, seed: int, dims: int = ACTCLUST_DIMS,
                          max_fraction: float = ACTCLUST_MAX_FRACTION,
                          min_silhouette: float = ACTCLUST_MIN_SILHOUETTE,
                          max_keep: float = ACTCLUST_MAX_KEEP) -> tuple[np.ndarray, np.ndarray, dict]:
    """Chen et al.'s per-class 2-means split. Returns (flagged, score, per-class details).

    A class's smaller cluster is flagged when the split is real: it holds at most ``max_fraction``
    of the class, the silhouette is at least ``min_silhouette``, and exclusionary reclassification
    says it belongs elsewhere — a k-nearest-neighbour classifier on the activations of every
    OTHER training point labels at most ``max_keep`` of the cluster with the class's own label
    (Chen et al. retrain the network without the cluster; neighbours in activation space are the
    cheap stand-in). A point's score is ``(1 − keep) · silhouette`` of its class's split times its
    margin towards the smaller cluster, (d_large − d_small) / (d_large + d_small) ∈ [−1, 1].
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score
    from sklearn.neighbors import KNeighborsClassifier

    n = len(labels)
    flagged, score = np.zeros(n, bool), np.zeros(n)
    per_class = {}
    for c in _classes(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 4:
            continue
        x = emb[idx].astype(np.float64)
        k = max(1, min(dims, len(idx) - 1, x.shape[1]))
        z = PCA(n_components=k, random_state=seed).fit_transform(x)
        km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(z)
        sizes = np.bincount(km.labels_, minlength=2)
        small = int(np.argmin(sizes))
        frac = float(sizes[small] / len(idx))
        sil = float(silhouette_score(z, km.labels_)) if sizes.min() > 0 else 0.0
        members = idx[km.labels_ == small]
        rest = np.setdiff1d(np.arange(n), members)
        keep = 1.0
        if len(members) and len(rest) >= ACTCLUST_NEIGHBOURS:
            knn = KNeighborsClassifier(ACTCLUST_NEIGHBOURS).fit(emb[rest], labels[rest])
            keep = float((knn.predict(emb[members]) == c).mean())
        d = np.linalg.norm(z[:, None, :] - km.cluster_centers_[None], axis=2)
        margin = (d[:, 1 - small] - d[:, small]) / (d.sum(1) + 1e-12)
        real = frac <= max_fraction and sil >= min_silhouette and keep <= max_keep
        score[idx] = (1 - keep) * max(sil, 0.0) * margin
        if real:
            flagged[members] = True
        per_class[c] = {"small_fraction": round(frac, 4), "silhouette": round(sil, 4), "keep": round(keep, 4),
                        "flagged": bool(real)}
    return flagged, score, per_class


@register("actclust")
def actclust(pipe) -> Detection:
    """Activation Clustering (Chen et al.) on the trained model's last hidden layer."""
    labels = pipe.poisoned.data.y_train.numpy()
    flagged, score, per_class = activation_clustering(pipeline_embeddings(pipe), labels, pipe.config.seed)
    return Detection("actclust", flagged, score, {
        "dims": ACTCLUST_DIMS, "reduction": "PCA", "max_fraction": ACTCLUST_MAX_FRACTION,
        "min_silhouette": ACTCLUST_MIN_SILHOUETTE, "max_keep": ACTCLUST_MAX_KEEP, "neighbours": ACTCLUST_NEIGHBOURS,
        "flagged_classes": [c for c, d in per_class.items() if d["flagged"]], "per_class": per_class})


# ----------------------------------------------------------------------------- SpecSig
def spectral_signatures(emb: np.ndarray, labels: np.ndarray, eps: float = SPECSIG_EPS,
                        multiplier: float = SPECSIG_MULTIPLIER) -> tuple[np.ndarray, np.ndarray, dict]:
    """Tran et al.'s outlier scores. Returns (flagged, score, per-class counts).

    The score is the squared projection on the class's top singular vector, divided by its class
    mean so that scores are comparable across classes (1 = typical).
    """
    from scipy.linalg import svd

    n = len(labels)
    flagged, score = np.zeros(n, bool), np.zeros(n)
    removed = {}
    for c in _classes(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        x = emb[idx].astype(np.float64)
        x = x - x.mean(0)
        _, _, vt = svd(x, full_matrices=False)
        s = (x @ vt[0]) ** 2
        s = s / (s.mean() + 1e-12)
        score[idx] = s
        m = min(len(idx), int(np.ceil(multiplier * eps * len(idx))))
        flagged[idx[np.argsort(-s, kind="stable")[:m]]] = True
        removed[c] = m
    return flagged, score, removed


@register("specsig")
def specsig(pipe) -> Detection:
    """Spectral Signatures (Tran et al.): flag the top 1.5·ε of every class, ε fixed (unknown to a defender)."""
    labels = pipe.poisoned.data.y_train.numpy()
    flagged, score, removed = spectral_signatures(pipeline_embeddings(pipe), labels)
    return Detection("specsig", flagged, score, {"eps": SPECSIG_EPS, "multiplier": SPECSIG_MULTIPLIER,
                                                 "removed_per_class": removed})


# ----------------------------------------------------------------------------- FreqDef
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
                              max_fit: int = FREQDEF_MAX_FIT, copies: int = FREQDEF_COPIES) -> tuple[np.ndarray, dict]:
    """P(triggered) for every image of ``x_uint8`` from a DCT-spectrum classifier trained on clean images
    vs synthetic triggered copies of them.

    ``reference``: trusted clean images to train on (Zeng et al.'s setting; 80 % to fit, 20 % to
    measure the synthetic AUROC). Without one the images themselves serve, 2-fold cross-fitted (a
    classifier fitted on one half scores the other), so a poison is never scored by a classifier
    that was told it is clean — though poisons in the fitting half still blunt it.
    """
    rng = np.random.default_rng([seed, 41])
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


@register("freqdef")
def freqdef(pipe) -> Detection:
    """Frequency defence (Zeng et al.): a DCT-spectrum classifier trained on synthetic triggers, applied to
    the training set. Trained on the held-out split's images (``FREQDEF_REFERENCE = "test"``: the
    clean data Zeng et al.'s detector is built from; their labels are never used), or on the
    training set itself, cross-fitted (``"train"``)."""
    d = pipe.poisoned.data
    reference = d.x_test.numpy() if FREQDEF_REFERENCE == "test" else None
    prob, info = frequency_detector_scores(d.x_train.numpy(), pipe.config.seed, reference)
    return Detection("freqdef", prob > FREQDEF_THRESHOLD, prob, {
        "threshold": FREQDEF_THRESHOLD, "classifier": "LogisticRegression on per-channel DCT log-magnitude",
        "copies": FREQDEF_COPIES, **info})
