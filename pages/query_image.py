"""Test image: the known poisoned test image x and the label y the model gives it."""
import io

import streamlit as st

from deltainf.errors import DeltaInfError
from deltainf.figures import experiment as figures
from deltainf.figures.images import thumb_scale, thumbnails, upscale
from ui import prerequisites as pre
from ui.sidebar import stop
from ui.state import config, set_config
from ui.uploads import Upload, digest
from ui.verdict import headline

MAX_IMAGE_MB = 4
GALLERY = 24

st.title("Test image")
instance, exp = pre.require_trained()
if exp.planted is None:  # no planted attack, no gallery: the analyst's own test image
    from ui import start_case

    st.caption("Δ-Influence starts from one test image your model gets wrong: the one you uploaded, with the label "
               "y the model gives it (or the one you named).")
    start_case.results()
    headline(instance, exp, start=False)
    st.caption("To investigate another test image, upload it on the **Experiment** page (Investigate a model): your "
               "model and weights are kept.")
    stop()
st.caption("Δ-Influence starts from one test image that is known to be poisoned: a triggered image the model "
           "sends to the attacker's target class. Pick one from the gallery, by index, or upload your own.")
p = exp.planted
classes = p.data.classes
query = st.session_state.query


def use_index(i: int) -> None:
    st.session_state.query = None
    set_config(config().replace(test_index=int(i)))


left, right = st.columns([1, 2])
with left:
    image = exp.query_image
    what = f"your image {query.name}" if query else f"triggered test image #{exp.test_index}"
    st.image(upscale(image, thumb_scale(image.shape[-1], 192)), caption=what, width=192)
probs = figures.class_probabilities(exp.model, image, exp.device)
pred = int(probs.argmax())
with right:
    verdict = ("the trigger works: this is a poisoned test image" if pred == p.target
               else "not the target class: influence collapse may not apply to this image")
    with st.container(key="prediction"):
        truth = "" if query else f"; true class **{classes[p.victim]}**"
        st.markdown(f"Predicted **{classes[pred]}** (p = {probs[pred]:.2f}); target class **{classes[p.target]}**"
                    f"{truth} — {verdict}.")
    st.plotly_chart(figures.probability_figure(probs, classes, p.target), key="probabilities")
headline(instance, exp, start=False)

cands = exp.poisoned_test_candidates
n = len(p.x_trigger_test)
st.subheader(f"Triggered test images sent to the target ({len(cands)} of {n})")
st.caption(f"Class-{classes[p.victim]} test images with the trigger that the model labels {classes[p.target]}"
           + (f"; the first {GALLERY} are shown, any is reachable by index below." if len(cands) > GALLERY else "."))
thumbs = thumbnails(p.x_trigger_test[cands[:GALLERY]], 64)
per_row = 12
for start in range(0, len(thumbs), per_row):
    cols = st.columns(per_row)
    for col, i, th in zip(cols, cands[start:start + per_row], thumbs[start:start + per_row]):
        current = query is None and int(i) == exp.test_index
        col.image(th, caption=f"#{i}" + (" ✓" if current else ""), width=64)
        col.button("Use", key=f"pick_{i}", on_click=use_index, args=(int(i),), disabled=current,
                   type="primary" if current else "secondary")

c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
index = c1.number_input(f"Or by index (0–{n - 1})", min_value=0, max_value=max(0, n - 1),
                        value=int(exp.test_index) if query is None else 0, step=1, key="index_input")
c2.button("Use this index", key="use_index", on_click=use_index, args=(int(index),))

with st.expander("Upload your own test image", expanded=query is not None):
    st.caption(f"PNG or JPEG, at most {MAX_IMAGE_MB} MB; it is resized and centre-cropped to the model's "
               f"{p.data.x_train.shape[-1]}×{p.data.x_train.shape[-1]} pixels. Its label y is what the model predicts.")
    up = st.file_uploader("Test image", key="query_upload")  # any file: a refusal is a message here, not an icon
    if up is not None and st.session_state.get("query_seen") != (up.file_id, up.name, up.size):
        st.session_state.query_seen = (up.file_id, up.name, up.size)
        blob = up.getvalue()
        if len(blob) > MAX_IMAGE_MB * 1e6:
            st.session_state.query_msg = f"{up.name} is {len(blob) / 1e6:.1f} MB; at most {MAX_IMAGE_MB} MB are accepted."
        else:
            from deltainf.data.images import read_image

            source = io.BytesIO(blob)
            source.name = up.name  # so the message names the file
            try:
                tensor = read_image(source, image_size=int(p.data.x_train.shape[-1]))
            except DeltaInfError as exc:
                st.session_state.query_msg = f"Not used: {exc}."
            else:
                st.session_state.query = Upload(up.name, tensor, digest(blob))
                st.session_state.query_msg = None
                st.rerun()
    if st.session_state.get("query_msg"):
        st.error(st.session_state.query_msg + " The current test image is unchanged.", icon=":material/error:")
    if query is not None and st.button("Back to the triggered test images", key="forget_query"):
        st.session_state.query = None
        st.rerun()

pre.page_link("transforms", "Next: its transformed copies")
