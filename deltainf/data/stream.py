"""Training images read from disk a batch at a time: an ImageFolder decoded once, by worker processes, into one
uint8 file in the cache folder, so that memory does not grow with the number of images.

:class:`DiskImages` stands in for the uint8 tensor (N, 3, H, W) the engine holds otherwise: indexing it reads
those rows (``pread``: the pages read are the kernel's file cache, not the process's memory) and returns a tensor;
:meth:`DiskImages.take` is a lazy subset (the points kept by unlearning, a class-balanced subset); rows written to
it (poisons) stay in memory beside the file. :func:`take` and :func:`chunks` treat both kinds alike.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..progress import ProgressFn, silent
from .images import read_image

CHUNK = 1024  # images per read when a whole set is walked through (statistics, fingerprints, predictions)


class DiskImages:
    """uint8 images (N, 3, H, W) in a raw file, rows ``rows`` of it (all when None), with rows written since kept
    in memory (``overlay``: file row → image)."""

    dtype = torch.uint8

    def __init__(self, path: Path, shape: tuple[int, ...], rows: np.ndarray | None = None,
                 overlay: dict[int, torch.Tensor] | None = None):
        self.path, self.file_shape = Path(path), tuple(shape)
        self.rows = rows
        self.overlay = dict(overlay or {})
        self._fd: tuple[int, int] | None = None  # (pid, descriptor): a worker process opens its own

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.file_shape[1:]))

    def __len__(self) -> int:
        return self.file_shape[0] if self.rows is None else len(self.rows)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def _file_rows(self, key) -> np.ndarray:
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        positions = np.arange(len(self))[key]
        return positions if self.rows is None else self.rows[positions]

    def _read(self, file_rows: np.ndarray) -> np.ndarray:
        row_bytes = int(np.prod(self.file_shape[1:]))
        out = np.empty((len(file_rows), *self.file_shape[1:]), np.uint8)
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        order = np.argsort(file_rows, kind="stable")
        ordered = file_rows[order]
        runs = np.split(np.arange(len(ordered)), np.flatnonzero(np.diff(ordered) != 1) + 1)
        for run in runs if len(ordered) else []:  # consecutive rows in one read
            buf = os.pread(self._fd[1], len(run) * row_bytes, int(ordered[run[0]]) * row_bytes)
            out[order[run]] = np.frombuffer(buf, np.uint8).reshape(len(run), *self.file_shape[1:])
        for i, r in enumerate(file_rows):
            if int(r) in self.overlay:
                out[i] = self.overlay[int(r)].numpy()
        return out

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.dim() == 0):
            return torch.from_numpy(self._read(self._file_rows([int(key)]))[0])
        return torch.from_numpy(self._read(self._file_rows(key)))

    def __setitem__(self, key, images: torch.Tensor) -> None:
        rows = self._file_rows([int(key)] if isinstance(key, (int, np.integer)) else key)
        images = torch.as_tensor(images, dtype=torch.uint8).reshape(len(rows), *self.file_shape[1:])
        for r, image in zip(rows.tolist(), images):
            self.overlay[r] = image.clone()

    def clone(self) -> DiskImages:
        """The same images; rows written to the clone leave this one as it is."""
        return DiskImages(self.path, self.file_shape, self.rows, self.overlay)

    def take(self, idx) -> DiskImages:
        """The images ``idx`` (positions, or a bool mask), not read yet."""
        return DiskImages(self.path, self.file_shape, self._file_rows(idx), self.overlay)

    def numpy(self) -> np.ndarray:
        """Every image at once, in memory (for a baseline that reads them all together)."""
        return self[:].numpy()

    def __getstate__(self):  # a worker process opens the file itself
        return {**self.__dict__, "_fd": None}


def take(x, idx):
    """``x[idx]`` for a tensor; a lazy subset for :class:`DiskImages`."""
    return x.take(idx) if isinstance(x, DiskImages) else x[torch.as_tensor(idx) if isinstance(idx, np.ndarray) else idx]


def chunks(x, size: int = CHUNK):
    """``x`` a slice of ``size`` images at a time (tensors)."""
    for start in range(0, len(x), size):
        yield x[start:start + size]


class StreamedDataset(torch.utils.data.Dataset):
    """(image as float in [0, 1], label) pairs read from :class:`DiskImages`; a DataLoader's batch in one read."""

    def __init__(self, images: DiskImages, labels: torch.Tensor):
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[int(i)].float().div(255), self.labels[i]

    def __getitems__(self, idx: list[int]):
        x = self.images[np.asarray(idx)].float().div(255)
        return list(zip(x, self.labels[idx]))


def _decode(job: tuple[list[str], int, str, int, int]) -> None:
    files, image_size, out, first, total = job
    fd = os.open(out, os.O_WRONLY)
    try:
        row_bytes = 3 * image_size * image_size
        block = np.stack([read_image(f, image_size).numpy() for f in files])
        os.pwrite(fd, block.tobytes(), first * row_bytes)
    finally:
        os.close(fd)


def folder_key(files: list[Path], image_size: int) -> str:
    """What the decoded file depends on: every image's path, size and modification time, and the image size."""
    h = hashlib.sha256(str(image_size).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decoded(files: list[Path], image_size: int, cache: Path, progress: ProgressFn = silent,
            workers: int | None = None) -> DiskImages:
    """The images ``files`` (resized to ``image_size``) as :class:`DiskImages`, decoded once by worker processes
    into ``cache`` and reused while no file changes. A broken image is refused (naming it) and nothing is kept."""
    key = folder_key(files, image_size)
    path, done = cache / f"{key}.u8", cache / f"{key}.json"
    shape = (len(files), 3, image_size, image_size)
    if done.is_file() and path.is_file() and path.stat().st_size == int(np.prod(shape)):
        return DiskImages(path, shape)
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"{key}.partial-{os.getpid()}"
    with open(partial, "wb") as f:
        f.truncate(int(np.prod(shape)))
    per_job = 256
    jobs = [([str(f) for f in files[s:s + per_job]], image_size, str(partial), s, len(files))
            for s in range(0, len(files), per_job)]
    try:
        workers = workers or min(len(os.sched_getaffinity(0)), 8)
        progress("decode images", 0, len(jobs))
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for i, _ in enumerate(pool.map(_decode, jobs), 1):
                    progress("decode images", i, len(jobs))
        else:
            for i, job in enumerate(jobs, 1):
                _decode(job)
                progress("decode images", i, len(jobs))
        os.replace(partial, path)
        done.write_text(json.dumps({"shape": shape, "image_size": image_size}))
    finally:
        partial.unlink(missing_ok=True)
    return DiskImages(path, shape)
