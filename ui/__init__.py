"""The app's shared helpers (not pages): session state (``state.py``), background jobs with typed keys
(``jobs.py``), what a page needs before it can draw (``prerequisites.py``), the sidebar (``sidebar.py``) and
the figures each page draws, built once per experiment and shared by sessions (``figures.py``)."""

#: Page name → file, for st.navigation and page links.
PAGE_FILES = {
    "experiment": "pages/experiment.py",
    "query": "pages/query_image.py",
    "transforms": "pages/transformations.py",
    "influence": "pages/influence.py",
    "unlearn": "pages/unlearn.py",
    "compare": "pages/compare.py",
}
