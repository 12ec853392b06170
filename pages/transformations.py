"""Transformations: the T copies of the test image, each with one augmentation and a random label."""
import streamlit as st

from deltainf.errors import DeltaInfError
from deltainf.figures.experiment import query_captions
from deltainf.figures.images import thumbnails
from deltainf.influence.queries import MODES
from ui import prerequisites as pre
from ui.state import config, set_config

st.title("Transformations")
st.caption("Each copy of the test image gets one augmentation drawn at random (flip, colour jitter, affine, "
           "elastic, blur, invert, channel switch) and a random label different from the predicted one. "
           "Influence of a poison collapses on such copies; a clean point's does not.")

instance, exp = pre.require_trained("queries")
cfg = config()


def change(**fields) -> None:
    try:
        new = config().replace(**fields)
        if new.k is not None and new.k >= new.transforms:
            new = new.replace(k=new.transforms - 1)
    except DeltaInfError as exc:
        st.session_state.transform_error = str(exc)
    else:
        st.session_state.transform_error = None
        set_config(new)


c1, c2, c3 = st.columns([1, 2, 1])
c1.number_input("T (copies)", min_value=1, max_value=500, value=cfg.transforms, step=5, key="T_input",
                on_change=lambda: change(transforms=int(st.session_state.T_input)),
                help="The paper's code uses T = 50; smaller T needs a larger k.")
c2.segmented_control("Mode", MODES, default=cfg.mode, key="mode_input", selection_mode="single",
                     on_change=lambda: change(mode=st.session_state.mode_input or cfg.mode),
                     help="full: new image and random label; label-only: random label on the unchanged image; "
                          "image-only: transformed image keeping the predicted label (ablations).")
current = cfg.transform_seed
c3.number_input("Seed of the draws", min_value=0, value=cfg.seed if current is None else current, step=1,
                key="transform_seed_input",
                on_change=lambda: change(transform_seed=int(st.session_state.transform_seed_input)),
                help="Draw another set of copies (augmentations and labels); the model stays the same.")
if st.session_state.get("transform_error"):
    st.error(st.session_state.transform_error)

q = exp.investigation.queries()  # drawn in the background by require_trained("queries"); read from the cache here
captions = query_captions(q, exp.data.classes)
thumbs = thumbnails(q.images, 80)
st.markdown(f"**T = {q.T}** copies in mode **{cfg.mode}** of the test image (first, with its predicted label).")
with st.container(key="transform_grid"):
    st.image(thumbs, caption=captions, width=80)
pre.page_link("influence", "Next: influence of every training point on each copy")
