"""The engine's messages in the app's own words: a command-line flag becomes the name of the field that sets it."""
from __future__ import annotations

import re

from .state import option_labels

FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: [A-Z]+\b)?")


def app_words(message: str) -> str:
    """``message`` with each ``--flag`` (and its ``PATH``-like placeholder) named by the app's field for it."""
    labels = option_labels()

    def field(m: re.Match) -> str:
        label = labels.get(m.group(1).replace("-", "_"))
        return f"the **{label}** field" if label else m.group(0)

    return FLAG.sub(field, message)


def refused(message: str) -> None:
    """A refusal where the eye is: under the button that caused it, and as a notice in view however the page is
    scrolled (a form's button may sit at the bottom edge of a 1280×720 window)."""
    import streamlit as st

    st.error(message, icon=":material/error:")
    st.toast(message, icon=":material/error:")
