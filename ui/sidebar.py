"""The sidebar: the session's experiment, running jobs, the cache and the device. It is drawn after the page
(by :func:`end_page`, or by :func:`stop` when a page stops early), so what it says about jobs is what the
page found — a job can finish or fail while the page waits on it."""
from __future__ import annotations

import streamlit as st

from deltainf.data import SOURCES
from deltainf.errors import DeltaInfError

from .jobs import VerdictJob
from .state import config, experiment, runtime, train_key, uploads, use_mode


def begin_page(page_title: str) -> None:
    """Before a page runs: remember which page the sidebar will describe."""
    st.session_state["_sidebar_for"] = page_title


def end_page() -> None:
    """Draw this run's sidebar, once."""
    page_title = st.session_state.pop("_sidebar_for", None)
    if page_title is not None:
        sidebar(page_title)


def stop() -> None:
    """``st.stop()`` after drawing the sidebar (nothing can be drawn after a stop)."""
    end_page()
    st.stop()


def sidebar(page_title: str) -> None:
    cfg = config()
    with st.sidebar:
        _experiment(page_title)
        st.markdown("#### Cache")
        try:
            s = runtime().store(cfg.cache_path).summary()
            kinds = ", ".join(f"{v} {k}" for k, v in sorted(s["entries"].items())) or "empty"
            st.caption(f"{kinds}; {s['factors']} EK-FAC factor set(s); {s['bytes'] / 1e6:.1f} MB in `{s['root']}`")
        except DeltaInfError as exc:
            st.caption(f"unavailable: {exc}")
        st.markdown("#### Device")
        st.caption(device_text(cfg.device))
        if runtime().notice:
            st.warning(runtime().notice)


def _experiment(page_title: str) -> None:
    cfg = config()
    weights, query = uploads()
    tjob = runtime().jobs.get(train_key())
    if st.session_state.kind == "case":
        st.markdown("#### Your model and data")
        lines = [f"**{cfg.data_root}** · model `{cfg.model}`"]
        if tjob is not None and tjob.ok:
            m = tjob.result["metrics"]
            acc = f"clean acc {m['clean_acc']:.3f} · " if m["clean_acc"] is not None else ""
            lines.append(f"{acc}test image predicted class {m['predicted']} (p = {m['probability']:.2f})")
        lines.append(f"weights: {'uploaded ' + weights.name if weights else 'trained here'}")
        lines.append(f"test image: uploaded {query.name}")
    else:
        st.markdown("#### Current experiment")
        source = SOURCES[cfg.dataset]
        data = f"{source.label} {cfg.data_root}" if source.attrs.get("needs_root") else source.label
        lines = [f"**{data}** · {cfg.attack} · {cfg.model} · seed {cfg.seed}"]
        if tjob is not None and tjob.ok:
            m = tjob.result["metrics"]
            lines.append(f"clean acc {m['clean_acc']:.3f} · poison success {m['poison_success']:.2f}")
        lines.append(f"weights: {'uploaded ' + weights.name if weights else 'trained here'}")
        picked = f"#{cfg.test_index}" if cfg.test_index is not None else "seeded pick"
        lines.append(f"test image: {'uploaded ' + query.name if query else picked}")
    if tjob is not None and not tjob.finished.is_set():
        lines.insert(1, "training…")
    elif tjob is not None and not tjob.ok:
        lines.insert(1, "training failed (see the Experiment page)")
    elif tjob is None:
        lines.insert(1, "not trained yet")
    use_mode(cfg.mode)  # the τ/k of the mode shown
    tau, k = st.session_state.det_tau, st.session_state.det_k
    if page_title == "Influence" and tjob is not None and tjob.ok:  # its sliders rerun only their fragment
        tk = "τ, k: set on this page"
    elif not st.session_state.get("det_chosen") and st.session_state.get("det_for") != cfg:
        tk = "τ, k: suggested from Δ on the Influence page"  # a suggestion made for another source is not this one's
    else:
        tk = "τ, k: suggested from Δ" if tau is None or k is None else f"τ = {tau:.4g} · k = {k}"
        if tau is not None and k is not None and not st.session_state.get("det_chosen"):
            tk += " (suggested)"
    lines.append(f"T = {cfg.transforms} ({cfg.mode}) · {tk}")
    if page_title != "Influence" and st.session_state.get("det_for") == cfg and "suspects" in st.session_state:
        flags, by = st.session_state.suspects  # as the Influence page left it
        lines.append(f"suspect set: {int(flags.sum())} — {by}")
    if tjob is not None and tjob.ok and (said := _verdict(experiment()[0])):
        lines.insert(1, said)
    st.markdown("  \n".join(lines))
    running = runtime().running()
    if running:
        st.markdown("#### Running")
        for job in running:
            st.caption(f"{job.label}: {job.text()}")


def _verdict(instance) -> str | None:
    """The verdict in a few words, once its job (started by the Test image, Influence or Unlearn page) is done."""
    job = runtime().jobs.get(VerdictJob(instance))
    if job is None or not job.ok:
        return None
    v = job.result
    return f"verdict: **{'POISONED' if v.poisoned else 'no evidence of poisoning'}** (evidence {v.score:.1f})"


@st.cache_data(show_spinner=False)
def device_text(name: str) -> str:
    from deltainf.device import describe, resolve_device

    try:
        return describe(resolve_device(name))
    except DeltaInfError as exc:
        return str(exc)
