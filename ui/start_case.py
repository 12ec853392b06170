"""The Experiment page's second start: investigate a model of the user's own — a folder on the server, a model
spec, weights and the misbehaving test image. The new investigation replaces the session's current one only
once it has loaded (the folder read, the weights fitted, the test image predicted); until then, and when it
fails, everything stays as it was."""
from __future__ import annotations

import io

import streamlit as st

from deltainf.config import CaseConfig
from deltainf.data.images import read_image
from deltainf.errors import DeltaInfError
from deltainf.figures.experiment import probability_figure
from deltainf.figures.images import thumb_scale, upscale
from deltainf.models import ARCHITECTURES
from deltainf.models.spec import INPUT_NORMS, torchvision_names

from . import prerequisites as pre
from .access import CODE_ENV, allowed_path, check_model_spec, model_code_allowed
from .state import adopt_case, experiment, option, runtime, train_key
from .uploads import Upload, digest
from .words import app_words, refused

KINDS = ("built-in or torchvision", "your own code")
TRAIN_NEW = "Train a new model on the folder (a full training run with the engine's recipe)"
MAX_WEIGHTS_MB = 500
MAX_IMAGE_MB = 4


@st.cache_data(show_spinner=False)
def model_choices() -> list[str]:
    return list(ARCHITECTURES) + [f"torchvision:{n}" for n in torchvision_names()]


def form() -> None:
    """The investigation's inputs, and Investigate. The model kind chooses which model fields show; the weights and
    the test image of the current investigation are kept until others are uploaded, and a new model is trained only
    when the analyst ticks it."""
    ss = st.session_state
    old = ss.case
    kept_weights, kept_query = ss.get("case_weights"), ss.get("case_query")
    choices = model_choices()
    own = st.radio("Model", KINDS, key="case_model_kind", horizontal=True,
                   index=1 if old and old.model not in choices else 0,
                   help="A built-in or torchvision architecture (built with the folder's number of classes), or your "
                        "own code: a callable taking num_classes and returning an nn.Module.") == KINDS[1]
    with st.form("case_form", border=True):
        c1, c2 = st.columns(2)
        with c1:
            root = st.text_input(option("data_root")["label"], value=old.data_root if old else "", key="case_root",
                                 placeholder="/path/to/folder (train/<class>/…, test/<class>/…)",
                                 help=option("data_root")["help"].capitalize() + ". A folder on this server, under "
                                 "the roots its starter allowed.")
            spec = old.model if old else "cnn"
            if own:
                spec = st.text_input("Model code", value=spec if spec not in choices else "", key="case_code",
                                     placeholder="/path/to/model.py:build  or  package.module:build",
                                     help="A callable taking num_classes and returning an nn.Module. This RUNS that "
                                          f"code on the server: allowed only when the server was started with "
                                          f"{CODE_ENV}=1" + ("" if model_code_allowed() else " (it was not)") + ".")
            else:
                spec = st.selectbox(option("model")["label"], choices, key="case_model",
                                    index=choices.index(spec) if spec in choices else 0,
                                    help="Built with the folder's number of classes; torchvision's weights only "
                                         "from your upload.")
            a, b = st.columns(2)
            size = a.number_input(option("image_size")["label"], value=old.image_size if old else 32, min_value=8,
                                  step=8, key="case_image_size", help=option("image_size")["help"].capitalize() + ".")
            norm = b.selectbox(option("input_norm")["label"], INPUT_NORMS, key="case_input_norm",
                               index=INPUT_NORMS.index(old.input_norm) if old else 0,
                               help=option("input_norm")["help"].capitalize() + ".")
        with c2:
            kept = kept_weights.name if kept_weights else "the model trained on the folder" if old else None
            weights = st.file_uploader(option("weights")["label"] + (f" (kept: {kept})" if kept else ""),
                                       key="case_weights_upload",
                                       help="Safetensors, or a state dict read with weights_only=True: never "
                                            "unpickled. Kept for the next investigation until you upload others.")
            train_new = st.checkbox(TRAIN_NEW, key="case_train_new",
                                    help="Without weights there is no model of yours to investigate: the engine trains "
                                         "one on the folder (its recipe, seeded), which takes a full training run.")
            query = st.file_uploader(option("query")["label"] + (f" (kept: {kept_query.name})" if kept_query else ""),
                                     key="case_query_upload",
                                     help="The test image your model gets wrong in a suspicious way. Kept for the "
                                          "next investigation until you upload another.")
            label = st.text_input(option("query_label")["label"], value=(old.query_label or "") if old else "",
                                  key="case_query_label", placeholder="the model's prediction",
                                  help=option("query_label")["help"].capitalize() + ".")
        submitted = st.form_submit_button("Investigate", type="primary", key="investigate", icon=":material/search:")
    if submitted:
        _start(root, spec.strip(), size, norm, weights, query, label, train_new)
    _pending()


def _start(root, spec, size, norm, weights_file, query_file, label, train_new: bool) -> None:
    """Check the inputs, then load the investigation in the background (it is adopted by :func:`_pending`)."""
    ss = st.session_state
    try:
        if not root.strip():
            raise DeltaInfError("Data folder: give the folder that holds train/<class>/<images>")
        if not spec:
            raise DeltaInfError("Model code: give path/to/file.py:callable or package.module:callable")
        kept_query = ss.get("case_query")
        if query_file is None and kept_query is None:
            raise DeltaInfError("Test image: upload the image your model gets wrong")
        folder = allowed_path(root, "Data folder")
        check_model_spec(spec, "Model")
        query = _image(query_file, int(size)) if query_file is not None else _kept_query(kept_query, int(size))
        weights = ss.get("case_weights")
        if weights_file is not None:
            blob = weights_file.getvalue()
            if len(blob) > MAX_WEIGHTS_MB * 1e6:
                raise DeltaInfError(f"Weights: {weights_file.name} is {len(blob) / 1e6:.0f} MB; at most "
                                    f"{MAX_WEIGHTS_MB} MB are accepted")
            weights = Upload(weights_file.name, blob, digest(blob))
        elif train_new:
            weights = None
        elif weights is None and ss.case is None:  # (a model trained on the folder before is kept: it is cached)
            raise DeltaInfError("Weights: upload your model's weights, or tick \"" + TRAIN_NEW + "\"")
        base = ss.config
        cfg = CaseConfig(data_root=str(folder), model=spec, weights=weights.name if weights else None, query=query.name,
                         query_label=label.strip() or None, image_size=int(size), input_norm=norm, seed=base.seed,
                         device=base.device, cache_dir=base.cache_dir)
        instance, case = experiment(cfg, weights, query)
    except DeltaInfError as exc:
        ss.case_pending = None
        refused(f"{app_words(str(exc)).rstrip('.')}. {_unchanged()}")
        return
    key = train_key(cfg, weights, query)
    pre.train_job(instance, case, key)
    ss.case_pending = (cfg, weights, query, key)


def _kept_query(kept: Upload, size: int) -> Upload:
    """The current investigation's test image, when it was read at ``size``."""
    if kept.data.shape[-1] != size:
        raise DeltaInfError(f"Test image: {kept.name} was read at {kept.data.shape[-1]}×{kept.data.shape[-1]}; "
                            f"upload it again to read it at {size}×{size}")
    return kept


def _image(upload, size: int) -> Upload:
    """The uploaded test image, decoded and resized like the training images (with a notice when it was)."""
    from PIL import Image

    blob = upload.getvalue()
    if len(blob) > MAX_IMAGE_MB * 1e6:
        raise DeltaInfError(f"Test image: {upload.name} is {len(blob) / 1e6:.1f} MB; at most {MAX_IMAGE_MB} MB")
    source = io.BytesIO(blob)
    source.name = upload.name
    image = read_image(source, size)
    with Image.open(io.BytesIO(blob)) as im:
        w, h = im.size
    st.session_state.case_notice = (f"The test image is {w}×{h}: it was resized and centre-cropped to {size}×{size} "
                                    f"like the training images." if (w, h) != (size, size) else None)
    return Upload(upload.name, image, digest(blob))


def _unchanged() -> str:
    return "The current " + ("investigation" if st.session_state.kind == "case" else "experiment") + " is unchanged."


def _pending() -> None:
    """Adopt the investigation once it loaded; show its progress meanwhile, its error when it failed."""
    ss = st.session_state
    pending = ss.get("case_pending")
    if not pending:
        return
    cfg, weights, query, key = pending
    job = runtime().jobs.get(key)
    if job is None:
        ss.case_pending = None
        return
    if not job.finished.wait(0.6):
        pre.progress_panel(job, "Loading your folder and model…")
        return
    ss.case_pending = None
    if job.error:
        refused(f"Not loaded: {job.error.rstrip('.')}. {_unchanged()}")
        return
    adopt_case(cfg, weights, query)
    st.rerun()


def results() -> None:
    """The investigation's folder, model and test image."""
    instance, case = pre.require_trained("model")
    m = runtime().jobs[train_key()].result["metrics"]
    d = case.data
    cols = st.columns(4)
    cols[0].metric("Training images", f"{len(d.y_train):,}", help=f"In {len(d.classes)} classes.")
    cols[1].metric("Test images", f"{len(d.y_test):,}" if len(d.y_test) else "none",
                   help="test/ is optional; with it, clean accuracy is measured.")
    cols[2].metric("Clean accuracy", f"{m['clean_acc']:.3f}" if m["clean_acc"] is not None else "—")
    cols[3].metric("Test image", d.classes[m["predicted"]], help=f"The model's prediction (p = {m['probability']:.2f}).")
    if st.session_state.get("case_notice"):
        st.info(st.session_state.case_notice)
    if m["skipped"]:
        st.caption(f"{m['skipped']} file(s) in the class folders are not images and were skipped "
                   f"(e.g. {d.skipped[0]}).")
    weights = st.session_state.case_weights
    st.caption(f"Model `{case.config.model}` · "
               + (f"weights {weights.name}" if weights else "trained on the folder with the engine's recipe")
               + f" · classes: {', '.join(d.classes[:12])}{' …' if len(d.classes) > 12 else ''}")
    left, right = st.columns([1, 2])
    image = case.query_image
    with left:
        st.image(upscale(image, thumb_scale(image.shape[-1], 192)), caption=st.session_state.case_query.name,
                 width=192)
    with right, st.container(key="case_prediction"):
        y = case.query_label
        st.markdown(f"Predicted **{d.classes[m['predicted']]}** (p = {m['probability']:.2f}); investigated with "
                    f"the label y = **{d.classes[y]}**.")
        st.plotly_chart(probability_figure(case.probabilities(), d.classes, None), key="case_probabilities")
    pre.page_link("transforms", "Next: its transformed copies")
