"""Figures and pictures of an investigation or experiment, as plotly figures and uint8 images — built without
streamlit, so the app's pages, the CLI's reports and the tests share them. One module per part of the
pipeline: ``experiment.py`` (data, attack, the test image), ``influence.py`` (Δ and the τ/k rule),
``unlearning.py`` (before/after, the re-check rounds, detectors side by side)."""
