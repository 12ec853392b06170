"""Options as dataclass fields: their help, allowed values and range live in the field's metadata, so
that validation, command-line flags and the app's labels all read one declaration.

    transforms: int = option(50, "T, the number of transformed copies of the query", low=1, metavar="T")
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import field
from typing import Any

from .errors import ConfigError

#: What ``kind`` checks beyond the type (None always passes).
KINDS = {
    "finite": ("a finite number", lambda v: math.isfinite(v)),
    "positive": ("a positive number", lambda v: v > 0 and math.isfinite(v)),
    "probability": ("a probability in (0, 1]", lambda v: 0 < v <= 1),
    "fraction": ("in [0, 1)", lambda v: 0 <= v < 1),
    "grey": ("a grey level in [0, 255]", lambda v: 0 <= v <= 255),
}


def option(default: Any, help: str, *, choices=None, low: int | None = None, kind: str | None = None,
           label: str | None = None, metavar: str | None = None, cli: bool = True) -> Any:
    """A settings field. ``choices``: allowed values (a tuple, or a registry: its names); ``low``: the
    smallest allowed integer; ``kind``: one of :data:`KINDS`; ``cli=False`` keeps it off the command line."""
    meta = {"help": help, "choices": choices, "low": low, "kind": kind, "label": label, "metavar": metavar,
            "cli": cli}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a collection default")
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The command-line spelling of an option."""
    return "--" + name.replace("_", "-")


def value_type(cls: type, name: str) -> tuple[type, bool]:
    """(the field's value type, whether it may be None) from its annotation."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return args[0], True
    return (tuple if typing.get_origin(hint) is tuple else hint), False


def check_options(obj) -> None:
    """Validate every field of the dataclass instance ``obj`` against its metadata; one readable error."""
    for f in dataclasses.fields(obj):
        meta, value = f.metadata, getattr(obj, f.name)
        if not meta or value is None:
            continue
        name = flag(f.name)
        choices = meta.get("choices")
        if choices is not None:
            allowed = tuple(choices)
            for v in (value if isinstance(value, tuple) else (value,)):
                if v not in allowed:
                    raise ConfigError(f"unknown {name} {v!r}; choose one of: {', '.join(map(str, allowed))}")
        low = meta.get("low")
        if low is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise ConfigError(f"{name} must be an integer ≥ {low}, got {value!r}")
        kind = meta.get("kind")
        if kind is not None:
            what, ok = KINDS[kind]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ConfigError(f"{name} must be {what}, got {value!r}")
