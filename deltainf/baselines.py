"""Baseline poison detectors the paper compares Δ-Influence against, registered as detectors.

* ``actclust`` — Activation Clustering (Chen et al., 2018): per class, the last hidden layer's
  activations of the training points carrying that label, reduced to ``ACTCLUST_DIMS`` dimensions
  (PCA; Chen et al. use ICA, but whitening every component drowns the poison direction among
  noise directions here), split by 2-means; the smaller cluster is
  flagged when the split is real: it holds at most ``ACTCLUST_MAX_FRACTION`` of the class and the
  split's silhouette score is at least ``ACTCLUST_MIN_SILHOUETTE``.
* ``specsig`` — Spectral Signatures (Tran et al., 2018): per class, centred activations, their top
  right singular vector; a point's outlier score is its squared projection on it. Tran et al.
  remove the top 1.5·ε·n of each class, with ε the poison fraction — unknown to a defender, so ε is
  fixed at ``SPECSIG_EPS`` (5 %): the top 7.5 % of every class is flagged.
* ``freqdef`` — the frequency defence (Zeng et al., 2021): synthetic triggered copies of training
  images (BadNet-like patches of random size, position and colour; random blends with noise and
  with smooth low-frequency patterns), per-channel 2-D DCT log-magnitude spectra, a logistic
  regression telling clean from triggered; training images it calls triggered are flagged. The
  detector is cross-fitted (trained on one half of the training set, applied to the other), so it
  never scores an image it was trained on as "clean".

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
# --specsig-eps, --freqdef-threshold):
ACTCLUST_DIMS = 10
ACTCLUST_MAX_FRACTION = 0.35
ACTCLUST_MIN_SILHOUETTE = 0.15
SPECSIG_EPS = 0.05
SPECSIG_MULTIPLIER = 1.5
FREQDEF_THRESHOLD = 0.5       # flag when P(triggered) exceeds this
FREQDEF_MAX_FIT = 2000        # clean images per half used to fit the classifier (as many synthetic)
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
                          min_silhouette: float = ACTCLUST_MIN_SILHOUETTE) -> tuple[np.ndarray, np.ndarray, dict]:
    """Chen et al.'s per-class 2-means split. Returns (flagged, score, per-class details).

    A point's score is its class split's silhouette times its margin towards the smaller cluster,
    (d_large − d_small) / (d_large + d_small) ∈ [−1, 1]: large for points deep in a small, well
    separated cluster, negative for points of the main cluster.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

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
        d = np.linalg.norm(z[:, None, :] - km.cluster_centers_[None], axis=2)
        margin = (d[:, 1 - small] - d[:, small]) / (d.sum(1) + 1e-12)
        real = frac <= max_fraction and sil >= min_silhouette
        score[idx] = sil * margin
        if real:
            flagged[idx[km.labels_ == small]] = True
        per_class[c] = {"small_fraction": round(frac, 4), "silhouette": round(sil, 4), "flagged": bool(real)}
    return flagged, score, per_class


@register("actclust")
def actclust(pipe) -> Detection:
    """Activation Clustering (Chen et al.) on the trained model's last hidden layer."""
    labels = pipe.poisoned.data.y_train.numpy()
    flagged, score, per_class = activation_clustering(pipeline_embeddings(pipe), labels, pipe.config.seed)
    return Detection("actclust", flagged, score, {
        "dims": ACTCLUST_DIMS, "reduction": "PCA", "max_fraction": ACTCLUST_MAX_FRACTION,
        "min_silhouette": ACTCLUST_MIN_SILHOUETTE,
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


def _smooth_noise(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    """A random pattern in [0, 1] made of the lowest few DCT frequencies."""
    from scipy.fft import idctn

    radius = int(rng.integers(2, 5))
    u, v = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coeffs = np.where((u + v) <= radius, rng.standard_normal((c, h, w)), 0.0)
    p = idctn(coeffs, axes=(1, 2), norm="ortho")
    p = p - p.min()
    return p / max(p.max(), 1e-8)


def synthetic_triggers(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Triggered copies of uint8 images (N, C, H, W): half get a BadNet-like patch (random size 2..H/4,
    position, solid colour / checker / noise), half a blend (α 0.05–0.25) with uniform noise or a
    smooth low-frequency pattern."""
    out = x.astype(np.float32) / 255.0
    n, c, h, w = x.shape
    for i in range(n):
        if rng.random() < 0.5:
            s = int(rng.integers(2, max(3, min(h, w) // 4 + 1)))
            r, q = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            kind = rng.integers(3)
            if kind == 0:
                patch = np.broadcast_to(rng.random((c, 1, 1)), (c, s, s))
            elif kind == 1:
                ii, jj = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
                patch = np.broadcast_to(((ii + jj) % 2).astype(np.float32), (c, s, s)) * rng.random((c, 1, 1))
            else:
                patch = rng.random((c, s, s))
            out[i, :, r:r + s, q:q + s] = patch
        else:
            alpha = rng.uniform(0.05, 0.25)
            other = rng.random((c, h, w)) if rng.random() < 0.5 else _smooth_noise(rng, c, h, w)
            out[i] = (1 - alpha) * out[i] + alpha * other
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def frequency_detector_scores(x_uint8: np.ndarray, seed: int, max_fit: int = FREQDEF_MAX_FIT) -> tuple[np.ndarray, dict]:
    """P(triggered) for every image, from a logistic regression on DCT log-spectra fitted on synthetic
    triggered copies vs the originals of the OTHER half of the images (2-fold cross-fitting)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng([seed, 41])
    n = len(x_uint8)
    halves = np.array_split(rng.permutation(n), 2)
    prob = np.zeros(n)
    feats = dct_log_spectrum(x_uint8)
    aucs = []
    for fit_half, apply_half in ((halves[0], halves[1]), (halves[1], halves[0])):
        fit = rng.permutation(fit_half)[:max_fit]
        # Fitted on one half, checked on synthetic copies of the other half.
        xs = dct_log_spectrum(synthetic_triggers(x_uint8[fit], rng))
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        clf.fit(np.concatenate([feats[fit], xs]), np.r_[np.zeros(len(fit)), np.ones(len(xs))])
        prob[apply_half] = clf.predict_proba(feats[apply_half])[:, 1]
        check = rng.permutation(apply_half)[:max_fit]
        xs_check = dct_log_spectrum(synthetic_triggers(x_uint8[check], rng))
        p_check = clf.predict_proba(np.concatenate([feats[check], xs_check]))[:, 1]
        aucs.append(roc_auc_score(np.r_[np.zeros(len(check)), np.ones(len(check))], p_check))
    return prob, {"synthetic_auroc": round(float(np.mean(aucs)), 4)}


@register("freqdef")
def freqdef(pipe) -> Detection:
    """Frequency defence (Zeng et al.): a DCT-spectrum classifier trained on synthetic triggers."""
    x = pipe.poisoned.data.x_train.numpy()
    prob, info = frequency_detector_scores(x, pipe.config.seed)
    return Detection("freqdef", prob > FREQDEF_THRESHOLD, prob, {
        "threshold": FREQDEF_THRESHOLD, "classifier": "LogisticRegression on per-channel DCT log-magnitude",
        "cross_fitted": True, **info})
