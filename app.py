"""Δ-Influence workbench: ``streamlit run app.py``.

The router only: it sets up the session's experiment, the pages and the sidebar. Every page is a thin file
in ``pages/`` over the same cached :class:`deltainf.Experiment` the CLI uses; their shared helpers are in
``ui/``.
"""
from pathlib import Path

import streamlit as st

from deltainf.errors import DeltaInfError
from ui import PAGE_FILES
from ui.sidebar import begin_page, end_page
from ui.state import init_state, keep_controls
from ui.words import app_words

st.set_page_config(page_title="Δ-Influence workbench", page_icon=":material/biotech:", layout="wide")
css = Path(__file__).resolve().parent / "assets" / "app.css"
if css.exists():
    st.html(f"<style>{css.read_text()}</style>")
init_state()
keep_controls()

page = st.navigation([
    st.Page(PAGE_FILES["experiment"], title="Experiment", icon=":material/science:", default=True),
    st.Page(PAGE_FILES["query"], title="Test image", icon=":material/image_search:"),
    st.Page(PAGE_FILES["transforms"], title="Transformations", icon=":material/transform:"),
    st.Page(PAGE_FILES["influence"], title="Influence", icon=":material/insights:"),
    st.Page(PAGE_FILES["unlearn"], title="Unlearn", icon=":material/healing:"),
    st.Page(PAGE_FILES["compare"], title="Compare", icon=":material/leaderboard:"),
])
begin_page(page.title)
try:
    page.run()
except DeltaInfError as exc:  # a problem the user can fix (missing data, bad index…): one clear line
    st.error(app_words(str(exc)))
end_page()  # the sidebar, drawn last so it tells what the page found (pages that stop draw it first)
