"""Experiment: data, attack and model; Train runs (or loads) the poisoned model; what the poisons look like."""
import streamlit as st

from deltainf.attacks import ATTACKS
from deltainf.config import CORNERS, DATASETS, DEVICES, MODELS, TRIGGER_PATTERNS
from deltainf.errors import DeltaInfError
from pages import _ui as ui

DATASET_NAMES = {"digits": "Built-in digits (scikit-learn, 16×16, offline)", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100", "imagefolder": "ImageFolder (a folder path)"}
MAX_WEIGHTS_MB = 200

st.title("Experiment")
st.caption("A model is trained on data in which a few images are poisoned. Choose the data, the attack and the "
           "model, then **Train**: it trains in the background, or loads the model when this experiment was "
           "trained before (by you, another session or the CLI).")

cfg = ui.config()


def _opt(value):
    """Empty number inputs mean "the dataset's default"."""
    return None if value is None else int(value)


with st.form("experiment_form", border=True):
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**Data**")
        dataset = st.selectbox("Dataset", DATASETS, index=DATASETS.index(cfg.dataset),
                               format_func=DATASET_NAMES.get, key="dataset")
        data_root = st.text_input("Data folder", value=cfg.data_root or "", key="data_root",
                                  help="CIFAR: where it is (or is downloaded to; default: the cache folder). "
                                       "ImageFolder: a folder with train/<class>/ and test/<class>/.")
        n_train = st.number_input("Training images (empty: all)", value=cfg.n_train, min_value=10, step=100,
                                  key="n_train", help="A seeded, class-balanced subset.")
        image_size = st.number_input("Image size (ImageFolder)", value=cfg.image_size, min_value=8, step=8,
                                     key="image_size")
    with c2:
        st.markdown("**Attack**")
        attack = st.selectbox("Attack", list(ATTACKS), index=list(ATTACKS).index(cfg.attack), key="attack")
        v1, v2 = st.columns(2)
        victim = v1.number_input("Victim class", value=cfg.victim, min_value=0, step=1, key="victim",
                                 placeholder="from seed", help="Source class; empty: drawn from the seed.")
        target = v2.number_input("Target class", value=cfg.target, min_value=0, step=1, key="target",
                                 placeholder="from seed", help="Class the trigger sends to; empty: drawn from the seed.")
        p1, p2 = st.columns(2)
        poison_count = p1.number_input("Poisons", value=cfg.poison_count, min_value=0, step=5, key="poison_count",
                                       placeholder="≈3.5 %", help="Empty: about 3.5 % of the training set.")
        trigger_size = p2.number_input("Trigger size (px)", value=cfg.trigger_size, min_value=1, step=1,
                                       key="trigger_size", placeholder="auto", help="BadNet's patch side.")
        t1, t2 = st.columns(2)
        pattern = t1.selectbox("Trigger pattern", TRIGGER_PATTERNS, index=TRIGGER_PATTERNS.index(cfg.trigger_pattern),
                               key="trigger_pattern", help="BadNet's patch.")
        corner = t2.selectbox("Trigger corner", CORNERS, index=CORNERS.index(cfg.trigger_corner), key="trigger_corner",
                              help="Where BadNet's patch goes.")
    with c3:
        st.markdown("**Model**")
        model = st.selectbox("Architecture", MODELS, index=MODELS.index(cfg.model), key="model",
                             format_func={"cnn": "small CNN (CPU-friendly)", "resnet18": "ResNet-18 (GPU)"}.get)
        epochs = st.number_input("Epochs", value=cfg.epochs, min_value=1, step=1, key="epochs", placeholder="default")
        seed = st.number_input("Seed", value=cfg.seed, min_value=0, step=1, key="seed",
                               help="Seeds the split, the poisons, training and the transformations.")
        device = st.selectbox("Device", DEVICES, index=DEVICES.index(cfg.device), key="device")
    submitted = st.form_submit_button("Train", type="primary", key="train", icon=":material/play_arrow:")

with st.expander("What each attack's trigger looks like", expanded=ui.runtime().jobs.get(ui.train_key()) is None):
    st.caption("Drawn on a built-in digit with the trigger settings above; the real frequency pattern and "
               "Witches' Brew perturbations are optimised when you train (shown below afterwards).")
    from deltainf import views

    previews = ui.attack_previews(tuple(ATTACKS), (cfg.trigger_size, cfg.trigger_pattern, cfg.trigger_corner), cfg.seed)
    for col, (name, (images, captions)) in zip(st.columns(len(previews)), previews.items()):
        with col:
            st.markdown(f"**{name}**" + (" · chosen" if name == cfg.attack else ""))
            st.image(images, caption=captions, width=64)
            st.caption(views.ATTACK_BLURBS.get(name, ""))

if submitted:
    try:
        new = cfg.replace(dataset=dataset, data_root=data_root.strip() or None, n_train=_opt(n_train),
                          image_size=int(image_size), attack=attack, victim=_opt(victim), target=_opt(target),
                          poison_count=_opt(poison_count), trigger_size=_opt(trigger_size), trigger_pattern=pattern,
                          trigger_corner=corner, model=model, epochs=_opt(epochs), seed=int(seed), device=device)
        ui.pipeline(new)  # checks the device and the cache folder before anything changes
    except DeltaInfError as exc:
        st.error(str(exc))
    else:
        ui.set_config(new)
        ui.train_job(*ui.pipeline())
        st.rerun()  # the sidebar and the result below show the new experiment

with st.expander("Use your own weights instead of training", expanded=st.session_state.weights is not None):
    st.caption("Weights for the chosen architecture and data (same number of classes and image size): a "
               "safetensors file, or a PyTorch state dict (read with `weights_only=True`, never unpickled). "
               "After a successful check, **Train** evaluates them instead of training.")
    up = st.file_uploader("Weights file", type=["safetensors", "pt", "pth", "bin"], key="weights_upload")
    if up is not None and st.session_state.get("weights_seen") != (up.file_id, up.name, up.size):
        st.session_state.weights_seen = (up.file_id, up.name, up.size)
        blob = up.getvalue()
        if len(blob) > MAX_WEIGHTS_MB * 1e6:
            st.session_state.weights_msg = ("error", f"{up.name} is {len(blob) / 1e6:.0f} MB; at most "
                                                     f"{MAX_WEIGHTS_MB} MB are accepted. The experiment is unchanged.")
        else:
            upload = ui.Upload(up.name, blob, ui.digest(blob))
            st.session_state.weights_check = (ui.check_weights(upload), upload)
            st.session_state.weights_msg = None
    pending = st.session_state.get("weights_check")
    if pending is not None:
        check, upload = pending
        if check.finished.wait(1.0):
            st.session_state.weights_check = None
            if check.error:
                st.session_state.weights_msg = ("error", f"Not used: {check.error}. The experiment is unchanged.")
            else:
                st.session_state.weights = upload
                st.session_state.weights_msg = ("success", f"{upload.name} fits this architecture. Press "
                                                           "**Train** to evaluate it.")
        else:
            ui.progress_panel(check, f"Checking {upload.name}…")
    kind, text = st.session_state.get("weights_msg") or (None, None)
    if kind == "error":
        st.error(text, icon=":material/error:")
    elif kind == "success":
        st.success(text)
    if st.session_state.weights is not None:
        if st.button(f"Forget {st.session_state.weights.name} (train instead)", key="forget_weights"):
            st.session_state.weights = None
            st.session_state.weights_msg = None
            st.rerun()

job = ui.runtime().jobs.get(ui.train_key())
if job is None:
    st.info("Press **Train** to train this experiment's model (or load it from the cache).")
    ui.stop()
result = ui.await_job(job, what="Training in the background…")
ikey, pipe = ui.require_trained("model")

m = result["metrics"]
facts = ui.experiment_facts(ikey, pipe)
cols = st.columns(4)
cols[0].metric("Clean accuracy", f"{m['clean_acc']:.3f}", help="On the clean test set.")
cols[1].metric("Poison success", f"{m['poison_success']:.2f}",
               help="Share of triggered test images the model sends to the attacker's class.")
cols[2].metric("Poisons", f"{facts['n_poison']} / {facts['n_train']}", help="Poisoned / all training images.")
cols[3].metric("Attack", f"{facts['victim']} → {facts['target']}", help="Victim class → target class.")
t = result["timings"].get("train_s", 0.0)
st.caption(f"Model {'loaded from the cache' if result['cached'].get('train_s') else 'trained'} in {t:.1f} s on "
           f"{ui.device_text(ui.config().device)}.")

st.subheader("The trigger")
images, captions = ui.trigger_picture(ikey, pipe)
with st.container(key="trigger_picture"):
    if images:
        st.image(images, caption=captions, width=110)
    else:
        st.info("No poisons in this experiment (poison count 0): there is no trigger to show.")

st.subheader("Poisoned training images beside clean ones of their true class")
strip = ui.poison_strip(ikey, pipe)
st.caption(f"Top: poisoned training images, as the model saw them. Bottom: clean training images of class "
           f"{strip['true_class']}, what the poisons really show. Enlarged without smoothing so a trigger stays sharp.")
with st.container(key="poison_strip"):
    st.image(strip["poisons"], caption=strip["poison_captions"], width=96)
    st.image(strip["clean"], caption=strip["clean_captions"], width=96)
ui.page_link("query", "Next: pick the poisoned test image")
