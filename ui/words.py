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
