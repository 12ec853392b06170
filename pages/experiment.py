"""Experiment: two starts — run an experiment (the engine plants the poisons) or investigate a model of your
own (your folder, model and test image) — and what the current one holds."""
import streamlit as st

from ui import start_case, start_experiment
from ui.state import config

STARTS = {"experiment": "Run an experiment", "case": "Investigate a model"}

st.title("Experiment")
start = st.segmented_control("Start", list(STARTS), format_func=STARTS.get, key="start",
                             default=st.session_state.kind, selection_mode="single") or st.session_state.kind
if start == "experiment":
    st.caption("A model is trained on data in which a few images are poisoned. Choose the data, the attack and the "
               "model, then **Train**: it trains in the background, or loads the model when this experiment was "
               "trained before (by you, another session or the CLI).")
    start_experiment.form()
else:
    st.caption("Your image folder, your model and the one test image it gets wrong: Δ-Influence looks for the "
               "training images behind it. Nothing is known about poisons here; the next pages show what the "
               "influence scores say. The folder and model code are read on this server.")
    start_case.form()

current = st.session_state.kind
if start != current:
    st.info(f"The pages show the current {'investigation of your model' if current == 'case' else 'experiment'} "
            f"until {'Investigate' if start == 'case' else 'Train'} loads another.")
st.divider()
if current == "experiment":
    start_experiment.results()
elif config() is not None:
    start_case.results()
