"""Write docs/reference.md from the registries and the option sections, so the tables cannot drift from the code:
``python docs/make_reference.py`` (a test fails when the committed file differs from what this writes)."""
from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).with_name("reference.md")


def cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def default(f) -> str:
    value = f.default
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def entries_table(registry, title: str, flag_name: str, own_settings) -> list[str]:
    from deltainf.options import flag

    lines = [f"## {title} (`{flag_name}`)", "", "| name | what it does | its settings (default) |", "| --- | --- | --- |"]
    for e in registry.entries():
        fields = own_settings(e) if e.settings is not None else []
        settings = "<br>".join(f"`{flag(f.name)}` ({cell(default(f))})" for f in fields) or "—"
        lines.append(f"| `{e.name}` | {cell(e.help)} | {settings} |")
    return lines + [""]


def options_table(title: str, sections) -> list[str]:
    from deltainf.config import own_fields
    from deltainf.options import flag

    lines = [f"## Options of `{title}`", ""]
    for heading, _, fields in own_fields(sections):
        shown = [f for f in fields if f.metadata.get("cli", True)]
        if not shown:
            continue
        lines += [f"### {heading}", "", "| flag | default | what it sets |", "| --- | --- | --- |"]
        lines += [f"| `{flag(f.name)}` | {cell(default(f))} | {cell(f.metadata.get('help', ''))} |" for f in shown]
        lines.append("")
    return lines


def reference() -> str:
    """The whole of docs/reference.md."""
    from deltainf.attacks import ATTACKS
    from deltainf.config import CASE_SECTIONS, SECTIONS, own_fields
    from deltainf.data import SOURCES
    from deltainf.detectors import DETECTORS
    from deltainf.suspicion import SuspicionOptions
    from deltainf.unlearning import UNLEARNERS

    def own(e):  # a detector's settings without those it shares (listed once, under the options)
        return list(own_fields([("shared", SuspicionOptions), (e.name, e.settings)]))[1][2]

    lines = ["# Reference", "",
             "Generated from the registries' help text and settings by `python docs/make_reference.py`; do not edit "
             "by hand. Every setting is a flag of `deltainf run` (and, for detectors and unlearning methods, of "
             "`deltainf investigate`) and a field of `Config`.", ""]
    lines += entries_table(SOURCES, "Data sources", "--dataset", own)
    lines += entries_table(ATTACKS, "Attacks", "--attack", own)
    lines += entries_table(DETECTORS, "Detectors", "--detectors", own)
    lines += entries_table(UNLEARNERS, "Unlearning methods", "--unlearn", own)
    lines += options_table("deltainf run", SECTIONS)
    lines += options_table("deltainf investigate", CASE_SECTIONS)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(reference())
    print(f"wrote {OUT}")
