"""Δ-Influence workbench: ``streamlit run app.py``.

The router only: it sets up the session's experiment, the pages and the sidebar. Every page is a
thin file in ``pages/`` over the same cached :class:`deltainf.Pipeline` the CLI uses.
"""
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # so pages can import the shared helpers however the app is started
    sys.path.insert(0, str(ROOT))

from deltainf.errors import DeltaInfError  # noqa: E402
from pages import _ui as ui  # noqa: E402

st.set_page_config(page_title="Δ-Influence workbench", page_icon=":material/biotech:", layout="wide")
css = ROOT / "assets" / "app.css"
if css.exists():
    st.html(f"<style>{css.read_text()}</style>")
ui.init_state()

page = st.navigation([
    st.Page(ui.PAGE_FILES["experiment"], title="Experiment", icon=":material/science:", default=True),
    st.Page(ui.PAGE_FILES["query"], title="Test image", icon=":material/image_search:"),
    st.Page(ui.PAGE_FILES["transforms"], title="Transformations", icon=":material/transform:"),
    st.Page(ui.PAGE_FILES["influence"], title="Influence", icon=":material/insights:"),
    st.Page(ui.PAGE_FILES["unlearn"], title="Unlearn", icon=":material/healing:"),
    st.Page(ui.PAGE_FILES["compare"], title="Compare", icon=":material/leaderboard:"),
])
ui.begin_page(page.title)
try:
    page.run()
except DeltaInfError as exc:  # a problem the user can fix (missing data, bad index…): one clear line
    st.error(str(exc))
ui.end_page()  # the sidebar, drawn last so it tells what the page found (pages that stop draw it first)
