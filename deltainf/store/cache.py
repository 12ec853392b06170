"""Content-addressed, crash-safe storage for every heavy stage.

Entries live in a diskcache store as safetensors bytes (never pickles) whose metadata repeats
the key that produced them; an entry that fails to decode or carries another key is dropped and
recomputed, never served. kronfluence's own factor folders live beside it under ``kronfluence/``.
A per-key file lock makes concurrent callers (two app sessions, app + CLI) compute a stage once.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import struct
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.stream import DiskImages, chunks
from ..errors import CacheError

#: Bump when a stage's algorithm changes so old entries are no longer matched.
CODE_VERSION = "2"


def content_key(kind: str, *parts) -> str:
    """A stable hash of ``kind`` and JSON-able ``parts`` (configs, upstream keys, fingerprints)."""
    blob = json.dumps([CODE_VERSION, kind, *parts], sort_keys=True, default=str).encode()
    return f"{kind}-{hashlib.sha256(blob).hexdigest()[:24]}"


def array_fingerprint(*arrays) -> str:
    """Hash of raw array contents (numpy, torch, or images read from disk a slice at a time: the same images hash
    alike however they are held)."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, DiskImages):
            h.update(b"uint8" + str(tuple(a.shape)).encode())
            for part in chunks(a):
                h.update(np.ascontiguousarray(part.numpy()).tobytes())
            continue
        a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:24]


@dataclass
class Entry:
    arrays: dict[str, np.ndarray]
    meta: dict


def encode(key: str, arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                metadata={"key": key, "meta": json.dumps(meta)})


def decode(blob: bytes) -> tuple[str, dict[str, np.ndarray], dict]:
    """Inverse of :func:`encode`; raises ValueError on anything malformed."""
    from safetensors.numpy import load

    if len(blob) < 8:
        raise ValueError("truncated entry")
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    info = header.get("__metadata__") or {}
    return info["key"], load(blob), json.loads(info["meta"])


class Store:
    """The cache folder: ``store/`` (diskcache), ``kronfluence/`` (factor folders), ``locks/``."""

    def __init__(self, root: Path | str):
        import diskcache

        self.root = Path(root).expanduser()
        try:
            for sub in ("store", "kronfluence", "locks"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            probe = self.root / "locks" / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise CacheError(f"cache folder {self.root} is not writable ({exc.strerror}); "
                             f"pass --cache-dir PATH or set DELTAINF_CACHE_DIR") from None
        #: Set when a damaged database was set aside on opening; a line for the user.
        self.notice: str | None = None
        store = self.root / "store"

        def open_store():
            return diskcache.Cache(str(store), size_limit=2**34, eviction_policy="least-recently-used")

        try:
            try:
                self.cache = open_store()
            except sqlite3.OperationalError:
                raise  # locked, read-only, out of space: not damage, so nothing is moved
            except sqlite3.DatabaseError as exc:
                with self.lock("store-repair"):  # two processes finding it damaged repair it once
                    try:
                        self.cache = open_store()
                    except sqlite3.OperationalError:
                        raise
                    except sqlite3.DatabaseError:
                        aside = self.root / f"store.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
                        store.rename(aside)
                        self.cache = open_store()
                        self.notice = (f"the cache database in {store} was damaged ({exc}); it was moved to "
                                       f"{aside.name} and a new one started (kronfluence factors stay in use)")
                        warnings.warn(self.notice)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CacheError(f"cache database in {store} cannot be opened ({exc}); "
                             f"pass another --cache-dir (kronfluence factors in this one stay usable)") from None

    @property
    def kron_root(self) -> Path:
        return self.root / "kronfluence"

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or None (missing, damaged or mismatched entries are dropped)."""
        try:
            blob = self.cache.get(key)
        except (sqlite3.DatabaseError, OSError) as exc:
            warnings.warn(f"cache read failed for {key} ({exc}); recomputing")
            return None
        if blob is None:
            return None
        try:
            stored_key, arrays, meta = decode(bytes(blob))
            if stored_key != key:
                raise ValueError(f"entry carries key {stored_key}")
        except Exception as exc:  # any damage means: do not trust it
            warnings.warn(f"cache entry {key} is damaged ({type(exc).__name__}); recomputing")
            self.cache.delete(key)
            return None
        return Entry(arrays, meta)

    def put(self, key: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Store an entry atomically (a killed writer leaves no entry behind)."""
        try:
            self.cache.set(key, encode(key, arrays, meta))
        except (sqlite3.DatabaseError, OSError) as exc:
            warnings.warn(f"could not write cache entry {key} ({exc}); results are kept in memory only")

    def get_or_make(self, key: str, make: Callable[[], tuple[dict, dict]]) -> tuple[Entry, bool]:
        """(entry, came from the cache): the entry under ``key``, or ``make()`` = (arrays, meta) computed once
        under the key's lock (another process may be computing it) and stored."""
        entry = self.get(key)
        if entry is None:
            with self.lock(key):
                entry = self.get(key)  # someone else may have finished meanwhile
                if entry is None:
                    arrays, meta = make()
                    self.put(key, arrays, meta)
                    return Entry(arrays, meta), False
        return entry, True

    def __contains__(self, key: str) -> bool:
        try:
            return key in self.cache
        except sqlite3.DatabaseError:
            return False

    @contextmanager
    def lock(self, key: str):
        """Hold an inter-process lock on ``key`` (released if the holder dies)."""
        from filelock import FileLock

        with FileLock(str(self.root / "locks" / f"{key}.lock")):
            yield

    def summary(self) -> dict:
        """What is cached: entries by stage kind and bytes on disk."""
        kinds: dict[str, int] = {}
        for key in self.cache.iterkeys():
            kind = str(key).rsplit("-", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        factors = sum(1 for p in (self.kron_root / "deltainf").glob("factors_*") if ".partial-" not in p.name) \
            if (self.kron_root / "deltainf").is_dir() else 0
        return {"entries": kinds, "factors": factors, "bytes": int(self.cache.volume()), "root": str(self.root)}
