"""An analyst's case, the other source of investigations: their image folder, their model (code and weights)
and one test image the model gets wrong in a suspicious way. The data is used as it is — no attack is
added — and nobody knows which training images are poisons; a list of known ones, when the analyst has
it, is used by evaluation alone.
"""
from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .config import streams
from .data import ImageData
from .data.images import read_image
from .data.imagefolder import load_imagefolder
from .detectors import explained
from .device import resolve_device
from .errors import ConfigError, DataError
from .evaluation.metrics import detection_metrics
from .investigation import Investigation, Query, TrainedModel
from .models import channel_stats
from .models.spec import Architecture, check_model, resolve
from .models.training import Recipe, accuracy, predict_logits
from .progress import ProgressFn, Reporter, Timings, silent
from .store import Store, array_fingerprint, content_key
from .store.checkpoints import cached_model, load_weights_into, state_of


class Case:
    """One investigation of a user's own data and model (see :class:`~deltainf.config.CaseConfig`).

    ``weights``/``query_image`` may be given as bytes / a decoded image (uploads in the app); otherwise
    they are read from the paths in the config.
    """

    def __init__(self, config, progress: ProgressFn = silent, store: Store | None = None,
                 weights: bytes | None = None, query_image: torch.Tensor | None = None):
        self.config = config
        self.device = resolve_device(config.device)
        self.store = store if store is not None else Store(config.cache_path)
        self.reporter = Reporter(progress)
        self.timings = Timings()
        self._weights = weights
        self._query_image = query_image

    @property
    def root(self) -> Path:
        return Path(self.config.data_root).expanduser()

    # ----------------------------------------------------------------- data, model, query
    @cached_property
    def data(self) -> ImageData:
        """The folder as it is: train/ (every image keeps its path) and, when present, test/."""
        stream_to = self.store.root / "images" if streams(self.config.stream, self.root) else None
        data = load_imagefolder(self.root, self.config.image_size, require_test=False, stream_to=stream_to,
                                progress=self.reporter)
        if data.skipped:
            warnings.warn(f"skipped {len(data.skipped)} file(s) that are not images, e.g. {data.skipped[0]}")
        return data

    @cached_property
    def architecture(self) -> Architecture:
        return resolve(self.config.model)

    @cached_property
    def recipe(self) -> Recipe:
        """The engine's recipe for the architecture (exact unlearning retrains with it), with the given options."""
        c, defaults = self.config, self.architecture.recipe
        precision = ("bf16" if self.device.type == "cuda" else "fp32") if c.precision == "auto" else c.precision
        mean, std = channel_stats(self.data.x_train)
        return Recipe(model=self.architecture.spec, num_classes=self.data.num_classes,
                      epochs=c.epochs or defaults["epochs"], lr=c.lr or defaults["lr"], batch_size=c.batch_size,
                      weight_decay=c.weight_decay, label_smoothing=c.label_smoothing, seed=c.seed, device=self.device,
                      precision=precision, mean=mean, std=std, input_norm=c.input_norm)

    def weights_blob(self) -> bytes | None:
        """The user's weights: uploaded bytes, the file ``--weights`` names, or None (train on the folder)."""
        if self._weights is None and self.config.weights:
            path = Path(self.config.weights).expanduser()
            if not path.is_file():
                raise ConfigError(f"--weights {path}: no such file")
            self._weights = path.read_bytes()
        return self._weights

    @cached_property
    def train_key(self) -> str:
        d, r = self.data, self.recipe
        data_fp = array_fingerprint(d.x_train, d.y_train, d.x_test, d.y_test)
        blob = self.weights_blob()
        if blob is not None:
            return content_key("model", "weights", array_fingerprint(np.frombuffer(blob, np.uint8)),
                               r.architecture.fingerprint, r.input_norm, data_fp)
        return content_key("model", r.key(), data_fp)

    @cached_property
    def trained(self) -> TrainedModel:
        """The user's model with their weights, or trained on the folder with the engine's recipe (cached)."""
        r, blob = self.recipe, self.weights_blob()
        what = f"the model {self.config.model}"
        check_model(r.new_model(), self.data.num_classes, self.data.image_shape, what)

        def make():
            if blob is not None:
                model = r.new_model()
                load_weights_into(self.architecture.weights_part(model, r.input_norm), blob,
                                  Path(self.config.weights or "the weights").name)
                return model.eval()
            return r.train(self.data.x_train, self.data.y_train, progress=self.reporter, stage="train")

        with self.timings.timed("train_s"):
            module, hit, _ = cached_model(self.store, self.train_key, make, r.new_model)
        self.timings.cached["train_s"] = hit
        return TrainedModel(module, self.train_key, r)

    @property
    def model(self) -> nn.Module:
        return self.trained.module

    def export_weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s weights in the layout ``--model`` builds (what ``--weights`` reads back)."""
        return state_of(self.architecture.weights_part(module, self.recipe.input_norm))

    @cached_property
    def query(self) -> Query:
        """The misbehaving test image, resized like the training images, with its label y."""
        image = self._query_image
        if image is None:
            path = Path(self.config.query).expanduser()
            if not path.is_file():
                raise ConfigError(f"--query {path}: no such file")
            image = read_image(path, self.config.image_size)
            self._note_query_size(path)
        label = self.config.query_label
        if label is None:
            label = int(predict_logits(self.model, image[None], self.device).argmax(1)[0])
        else:
            label = self.class_index(label)
        c = self.config
        return Query(image, label, c.seed if c.transform_seed is None else c.transform_seed)

    def _note_query_size(self, path: Path) -> None:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
        n = self.config.image_size
        if (w, h) != (n, n):
            warnings.warn(f"the test image is {w}×{h}: resized and centre-cropped to {n}×{n} like the training images")

    def class_index(self, label: str | int) -> int:
        """A class given by index or by name."""
        classes = self.data.classes
        text = str(label).strip()
        if text in classes:
            return classes.index(text)
        if text.isdigit() and int(text) < len(classes):
            return int(text)
        raise ConfigError(f"--query-label {label!r} is neither a class name nor an index 0..{len(classes) - 1} of "
                          f"the folder's classes ({', '.join(classes[:8])}{', …' if len(classes) > 8 else ''})")

    def probabilities(self, module: nn.Module | None = None) -> np.ndarray:
        """The class probabilities of the test image under ``module`` (default: the user's model)."""
        logits = predict_logits(module if module is not None else self.model, self.query.image[None], self.device)
        return torch.softmax(logits.float(), 1)[0].numpy()

    @cached_property
    def clean_acc(self) -> float | None:
        """Accuracy on test/, when the folder has one."""
        d = self.data
        return accuracy(self.model, d.x_test, d.y_test, self.device) if len(d.y_test) else None

    # ----------------------------------------------------------------- what every source offers the app
    kind = "case"

    @property
    def train_set(self) -> ImageData:
        return self.data

    @property
    def truth(self) -> np.ndarray | None:
        """The poisons the analyst knows of, if any (evaluation only)."""
        return self.known_poisons

    planted = None  # nobody planted an attack here: the analyst does not know whether, or how, it was poisoned

    @property
    def model_metrics(self) -> dict:
        """Clean accuracy on test/ (None without one)."""
        return {"clean_acc": self.clean_acc}

    @property
    def query_image(self) -> torch.Tensor:
        return self.query.image

    @property
    def query_label(self) -> int:
        return self.query.label

    def detect(self, name: str, tau: float | None = None, k: int | None = None):
        return self.investigation.detect(name, tau, k)

    def overview(self) -> dict:
        """What the Experiment page and the sidebar say about the user's model and test image."""
        probs = self.probabilities()
        return {"metrics": {"clean_acc": self.clean_acc, "predicted": int(probs.argmax()),
                            "probability": float(probs.max()), "label": self.query.label,
                            "skipped": len(self.data.skipped)},
                "timings": dict(self.timings.seconds), "cached": dict(self.timings.cached)}

    # ----------------------------------------------------------------- the investigation
    @cached_property
    def investigation(self) -> Investigation:
        return Investigation(self.trained, self.data, self.query, self.config, self.store, reporter=self.reporter,
                             timings=self.timings, evaluator=self if self.known_poisons is not None else None)

    @cached_property
    def known_poisons(self) -> np.ndarray | None:
        """The analyst's list of known poisons as a mask over the training set (``--known-poisons``), or None."""
        if not self.config.known_poisons:
            return None
        path = Path(self.config.known_poisons).expanduser()
        if not path.is_file():
            raise ConfigError(f"--known-poisons {path}: no such file")
        index = {p: i for i, p in enumerate(self.data.train_paths)}
        mask = np.zeros(len(index), bool)
        for n, line in enumerate(path.read_text().splitlines(), 1):
            name = line.strip().lstrip("./")
            if not name:
                continue
            if name not in index:
                raise DataError(f"--known-poisons {path.name}, line {n}: {name} is not a training image of "
                                f"{self.root} (paths are relative to it, e.g. {self.data.train_paths[0]})")
            mask[index[name]] = True
        return mask

    def evaluate_model(self, module: nn.Module, key: str) -> dict:
        return {}  # no triggered test set: poison success is unknown here

    def evaluate_removal(self, removed: np.ndarray) -> dict:
        return {"known_poisons_removed": int((removed & self.known_poisons).sum())}

    def detection_report(self, name: str) -> dict:
        """A detector's flag count and parameters, with TPR/precision against the known poisons when given."""
        det = self.investigation.detect(name)
        steps = explained(name, det, self.data.classes)
        out = {"n_flagged": int(det.flagged.sum()), **det.params, **({"steps": steps} if steps else {})}
        if self.known_poisons is not None:
            out.update(detection_metrics(det.flagged, self.known_poisons))
        return out
