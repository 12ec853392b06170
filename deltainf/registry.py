"""Registries: the one place that names every attack, detector, unlearning method, data source and
architecture, with its help text and its settings.

An entry is a function or class registered under a name, with a settings dataclass whose fields
become :class:`~deltainf.config.Config` fields, command-line flags and part of the entry's cache key.
A registry package imports every module beside its ``__init__`` (:meth:`Registry.discover`), so
adding an entry is one new file.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """One registered attack, detector, unlearning method, data source or architecture."""

    name: str
    obj: Any                    # the registered function or class
    label: str                  # short display name (the app's choosers)
    help: str                   # a sentence or two (command-line help, tables)
    blurb: str                  # a short paragraph (the app's captions)
    settings: type | None       # frozen dataclass of the entry's own options
    order: int
    attrs: dict = field(default_factory=dict)  # what this kind of registry asks of its entries

    def __call__(self, *args, **kwargs):
        return self.obj(*args, **kwargs)

    def settings_from(self, source) -> Any:
        """The entry's settings, read from ``source`` (a Config, or anything with the same attributes)."""
        if self.settings is None:
            return None
        return self.settings(**{f.name: getattr(source, f.name) for f in dataclasses.fields(self.settings)})

    def settings_key(self, source) -> dict:
        """The settings as plain values, for cache keys."""
        s = self.settings_from(source)
        return dataclasses.asdict(s) if s is not None else {}


def _doc(obj) -> str:
    """The first paragraph of a docstring, its lines joined (a first line alone may stop mid-sentence)."""
    text = (getattr(obj, "__doc__", None) or "").strip()
    return " ".join(line.strip() for line in text.split("\n\n")[0].splitlines())


class Registry:
    """Name → :class:`Entry`, in a fixed order (``order``, then name)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, label: str | None = None, help: str | None = None, blurb: str | None = None,
                 settings: type | None = None, order: int = 100, **attrs):
        """Decorator: register a function or class as ``name``. Help and blurb default to its docstring."""
        def deco(obj):
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            para = _doc(obj)
            self._entries[name] = Entry(name, obj, label or name, help or para, blurb or para, settings, order,
                                        attrs)
            return obj
        return deco

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def discover(self, package: str, path) -> None:
        """Import every public module of ``package`` (each registers its entries)."""
        for info in pkgutil.iter_modules(path):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")

    def _sorted(self) -> list[Entry]:
        return sorted(self._entries.values(), key=lambda e: (e.order, e.name))

    def __iter__(self) -> Iterator[str]:
        return iter([e.name for e in self._sorted()])

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self)}") from None

    def entries(self) -> list[Entry]:
        return self._sorted()

    def settings_types(self) -> list[tuple[str, type]]:
        """(entry name, settings dataclass) of every entry that has settings."""
        return [(e.name, e.settings) for e in self._sorted() if e.settings is not None]
