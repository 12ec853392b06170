"""The Experiment page's first start: run an experiment (data, attack and model; Train runs or loads the
poisoned model), and what the poisons look like."""
import dataclasses

import streamlit as st

from deltainf.attacks import ATTACKS
from deltainf.data import SOURCES, check_source
from deltainf.errors import DeltaInfError
from deltainf.models import ARCHITECTURES

from . import figures, prerequisites as pre
from .access import allowed_path
from .sidebar import device_text
from .state import experiment, option, runtime, set_config, train_key, use_experiment
from .uploads import Upload, digest
from .words import app_words, refused

MAX_WEIGHTS_MB = 200


def _opt(value):
    """Empty number inputs mean "the dataset's default"."""
    return None if value is None else int(value)


def label(name: str) -> str:
    return option(name)["label"]


def explain(name: str) -> str:
    text = option(name)["help"]
    return text[0].upper() + text[1:] + "."


def form() -> None:
    """The experiment's options, Train, the attacks' previews and the weights upload."""
    cfg = st.session_state.config
    # Outside the form: the fields below follow them (a form's widgets do not rerun until it is submitted).
    h1, h2, _ = st.columns(3)
    dataset = h1.selectbox(label("dataset"), list(SOURCES), index=list(SOURCES).index(cfg.dataset),
                           format_func=lambda n: SOURCES[n].label, key="dataset",
                           help="\n".join(f"- **{e.label}**: {e.help}" for e in SOURCES.entries()))
    attack = h2.selectbox(label("attack"), list(ATTACKS), index=list(ATTACKS).index(cfg.attack), key="attack",
                          format_func=lambda n: ATTACKS[n].label,
                          help="\n".join(f"- **{e.label}**: {e.help}" for e in ATTACKS.entries()))
    source = SOURCES[dataset].attrs
    settings = {f.name for name, kind in ATTACKS.settings_types() if name == attack for f in dataclasses.fields(kind)}
    with st.form("experiment_form", border=True):
        c1, c2, c3 = st.columns(3)
        with c1:
            st.markdown("**Data**")
            data_root = st.text_input(label("data_root"), value=cfg.data_root or "", key="data_root",
                                      disabled=bool(source.get("builtin")), help=explain("data_root"))
            n_train = st.number_input(label("n_train") + " (empty: all)", value=cfg.n_train, min_value=10, step=100,
                                      key="n_train", help=explain("n_train"))
            image_size = st.number_input(label("image_size"), value=cfg.image_size, min_value=8, step=8,
                                         key="image_size", disabled=not source.get("resized"),
                                         help=explain("image_size"))
        with c2:
            st.markdown("**Attack**")
            v1, v2 = st.columns(2)
            victim = v1.number_input(label("victim"), value=cfg.victim, min_value=0, step=1, key="victim",
                                     placeholder="seeded", help=explain("victim"))
            target = v2.number_input(label("target"), value=cfg.target, min_value=0, step=1, key="target",
                                     placeholder="seeded", help=explain("target"))
            p1, p2 = st.columns(2)
            poison_count = p1.number_input(label("poison_count"), value=cfg.poison_count, min_value=0, step=5,
                                           key="poison_count", placeholder="≈3.5 %", help=explain("poison_count"))
            trigger_size = p2.number_input(label("trigger_size"), value=cfg.trigger_size, min_value=1, step=1,
                                           key="trigger_size", placeholder="auto", help=explain("trigger_size"),
                                           disabled="trigger_size" not in settings)
            t1, t2 = st.columns([2, 3])  # "bottom-right" needs the room
            patterns, corners = option("trigger_pattern")["choices"], option("trigger_corner")["choices"]
            pattern = t1.selectbox(label("trigger_pattern"), patterns, index=patterns.index(cfg.trigger_pattern),
                                   key="trigger_pattern", help=explain("trigger_pattern"),
                                   disabled="trigger_pattern" not in settings)
            corner = t2.selectbox(label("trigger_corner"), corners, index=corners.index(cfg.trigger_corner),
                                  key="trigger_corner", help=explain("trigger_corner"),
                                  disabled="trigger_corner" not in settings)
        with c3:
            st.markdown("**Model**")
            model = st.selectbox(label("model"), list(ARCHITECTURES), index=list(ARCHITECTURES).index(cfg.model),
                                 key="model", format_func=lambda n: ARCHITECTURES[n].label,
                                 help="\n".join(f"- **{e.label}**: {e.help}" for e in ARCHITECTURES.entries()))
            epochs = st.number_input(label("epochs"), value=cfg.epochs, min_value=1, step=1, key="epochs",
                                     placeholder="default", help=explain("epochs"))
            seed = st.number_input(label("seed"), value=cfg.seed, min_value=0, step=1, key="seed", help=explain("seed"))
            devices = option("device")["choices"]
            device = st.selectbox(label("device"), devices, index=devices.index(cfg.device), key="device",
                                  help=explain("device"))
        submitted = st.form_submit_button("Train", type="primary", key="train", icon=":material/play_arrow:")

    with st.expander("What each attack's trigger looks like", expanded=runtime().jobs.get(train_key()) is None):
        st.caption("Drawn on a built-in digit with the trigger settings above; the real frequency pattern and "
                   "Witches' Brew perturbations are optimised when you train (shown below afterwards).")
        settings = tuple((f.name, getattr(cfg, f.name)) for _, s in ATTACKS.settings_types() for f in dataclasses.fields(s))
        previews = figures.attack_previews(tuple(ATTACKS), settings, cfg.seed, cfg.dataset)
        for col, (name, (images, captions)) in zip(st.columns(len(previews)), previews.items()):
            with col:
                st.markdown(f"**{name}**" + (" · chosen" if name == cfg.attack else ""))
                st.image(images, caption=captions, width=84)
                st.caption(ATTACKS[name].blurb)

    if submitted:
        try:
            root = None if source.get("builtin") else data_root.strip() or None
            new = cfg.replace(dataset=dataset, data_root=root, n_train=_opt(n_train),
                              image_size=int(image_size), attack=attack, victim=_opt(victim), target=_opt(target),
                              poison_count=_opt(poison_count), trigger_size=_opt(trigger_size), trigger_pattern=pattern,
                              trigger_corner=corner, model=model, epochs=_opt(epochs), seed=int(seed), device=device)
            if new.data_root:  # a typed path reads the server's files
                allowed_path(new.data_root, "Data folder")
            check_source(new.dataset, new.data_root)  # the folder's layout, before anything is dropped
            experiment(new)  # checks the device and the cache folder before anything changes
        except DeltaInfError as exc:
            refused(f"{app_words(str(exc)).rstrip('.')}. Nothing changed: the current experiment and its "
                    "results stay.")
        else:
            use_experiment()
            set_config(new)
            pre.train_job(*experiment())
            st.rerun()  # the sidebar and the result below show the new experiment

    with st.expander("Use your own weights instead of training", expanded=st.session_state.weights is not None):
        st.caption("Weights for the chosen architecture and data (same number of classes and image size): a "
                   "safetensors file, or a PyTorch state dict (read with `weights_only=True`, never unpickled). "
                   "After a successful check, **Train** evaluates them instead of training.")
        up = st.file_uploader("Weights file", key="weights_upload")
        if up is not None and st.session_state.get("weights_seen") != (up.file_id, up.name, up.size):
            st.session_state.weights_seen = (up.file_id, up.name, up.size)
            blob = up.getvalue()
            if len(blob) > MAX_WEIGHTS_MB * 1e6:
                st.session_state.weights_msg = ("error", f"{up.name} is {len(blob) / 1e6:.0f} MB; at most "
                                                         f"{MAX_WEIGHTS_MB} MB are accepted. The experiment is unchanged.")
            else:
                upload = Upload(up.name, blob, digest(blob))
                st.session_state.weights_check = (pre.check_weights(upload), upload)
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
                pre.progress_panel(check, f"Checking {upload.name}…")
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


def results() -> None:
    """The current experiment's trained model: its figures, its trigger and its poisons."""
    job = runtime().jobs.get(train_key())
    if job is None:
        st.info("Press **Train** to train this experiment's model (or load it from the cache).")
        return
    result = pre.await_job(job, what="Training in the background…")
    instance, exp = pre.require_trained("model")

    m = result["metrics"]
    facts = figures.experiment_facts(instance, exp)
    cols = st.columns(4)
    cols[0].metric("Clean accuracy", f"{m['clean_acc']:.3f}", help="On the clean test set.")
    cols[1].metric("Poison success", f"{m['poison_success']:.2f}",
                   help="Share of triggered test images the model sends to the attacker's class.")
    cols[2].metric("Poisons", f"{facts['n_poison']} / {facts['n_train']}", help="Poisoned / all training images.")
    cols[3].metric("Attack", f"{facts['victim']} → {facts['target']}", help="Victim class → target class.")
    t = result["timings"].get("train_s", 0.0)
    st.caption(f"Model {'loaded from the cache' if result['cached'].get('train_s') else 'trained'} in {t:.1f} s on "
               f"{device_text(exp.config.device)}; the whole wait, from pressing Train (data, attack and any queue "
               f"included): {job.waited:.1f} s.")

    st.subheader("The trigger")
    images, captions = figures.trigger_picture(instance, exp)
    with st.container(key="trigger_picture"):
        if images:
            st.image(images, caption=captions, width=110)
        else:
            st.info("No poisons in this experiment (poison count 0): there is no trigger to show.")

    st.subheader("Poisoned training images beside clean ones of their true class")
    strip = figures.poison_strip(instance, exp)
    st.caption(f"Top: poisoned training images, as the model saw them. Bottom: clean training images of class "
               f"{strip['true_class']}, what the poisons really show. Enlarged without smoothing so a trigger stays sharp.")
    with st.container(key="poison_strip"):
        st.image(strip["poisons"], caption=strip["poison_captions"], width=96)
        st.image(strip["clean"], caption=strip["clean_captions"], width=96)
    pre.page_link("query", "Next: pick the poisoned test image")
