"""ImageFolder training images read from disk a batch at a time (``--stream on``): the same images, fingerprints,
training, scores and flagged set as the in-memory path, and a decoded file reused until a file changes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from case.poisoned_folder import write_case
from deltainf import Config
from deltainf.data import load_dataset
from deltainf.data.imagefolder import load_imagefolder
from deltainf.suspicion.stamp import matches
from deltainf.data.stream import DiskImages, StreamedDataset, take
from deltainf.errors import DataError
from deltainf.experiment import Experiment
from deltainf.models import channel_stats
from deltainf.store import Store, array_fingerprint
from deltainf.store.checkpoints import weights_to_bytes


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """400 digits (and 100 test images) as PNG files in train/<class>/ and test/<class>/."""
    d = load_dataset("digits", None, seed=0)
    root = tmp_path_factory.mktemp("digits-folder") / "data"
    write_case(root, d.x_train[:400].numpy(), d.y_train[:400].numpy(), d.x_test[:100].numpy(),
               d.y_test[:100].numpy(), d.classes, victim=3, target=7, n_poison=0)
    return root


def test_disk_images_read_as_the_tensor(folder, tmp_path):
    held = load_imagefolder(folder, 16)
    disk = load_imagefolder(folder, 16, stream_to=tmp_path)
    x = disk.x_train
    assert isinstance(x, DiskImages) and x.shape == held.x_train.shape and len(x) == 400
    assert torch.equal(x[:], held.x_train) and torch.equal(x[7], held.x_train[7])
    rows = torch.tensor([9, 2, 2, 399, 0])  # out of order, repeated: as a rebalanced retraining draws them
    assert torch.equal(x[rows], held.x_train[rows])
    mask = held.y_train == 3
    assert torch.equal(x[mask], held.x_train[mask]) and torch.equal(take(x, mask)[1:4], held.x_train[mask][1:4])
    query = held.x_test[0]  # the refined detector's stamp reads the images a slice at a time
    assert np.array_equal(*(np.concatenate(list(matches(images, query, 8))) for images in (x, held.x_train)))
    assert disk.y_train.tolist() == held.y_train.tolist() and disk.train_paths == held.train_paths
    assert array_fingerprint(x, disk.y_train) == array_fingerprint(held.x_train, held.y_train)
    exact, fast = channel_stats(x), channel_stats(held.x_train)  # summed exactly from disk; float32 in memory
    assert all(torch.allclose(a, b, rtol=1e-5) for a, b in zip(exact, fast))
    poisoned = x.clone()  # an attack writes its poisons into a copy: the file and the original stay as they were
    poisoned[torch.tensor([4, 5])] = torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)
    assert int(poisoned[4].min()) == 255 and torch.equal(x[4], held.x_train[4])
    assert array_fingerprint(poisoned) != array_fingerprint(x)
    batch = StreamedDataset(x, held.y_train).__getitems__([3, 1])
    assert torch.equal(batch[0][0], held.x_train[3].float() / 255) and int(batch[1][1]) == int(held.y_train[1])


def test_decoded_once_and_again_when_a_file_changes(folder, tmp_path):
    cache = tmp_path / "images"
    first = load_imagefolder(folder, 16, stream_to=cache).x_train
    stamp = first.path.stat().st_mtime_ns
    assert load_imagefolder(folder, 16, stream_to=cache).x_train.path == first.path
    assert first.path.stat().st_mtime_ns == stamp  # reused, not decoded again
    victim = sorted((folder / "train").rglob("*.png"))[0]
    saved = victim.read_bytes()
    try:
        victim.write_bytes(b"not an image")
        with pytest.raises(DataError, match=victim.name):
            load_imagefolder(folder, 16, stream_to=cache)
        assert not list(cache.glob("*.partial-*"))  # nothing half-written is left
    finally:
        victim.write_bytes(saved)


def test_stream_auto_reads_large_folders_from_disk(folder, monkeypatch):
    from deltainf import config

    assert not config.streams("auto", folder) and config.streams("on", folder) and not config.streams("off", folder)
    monkeypatch.setattr(config, "STREAM_ABOVE", 399)  # the folder holds 400 training images
    assert config.streams("auto", folder) and not config.streams("auto", folder / "nowhere")
    assert not config.streams("on", folder, source="digits")  # a built-in source has nothing to stream


@pytest.mark.slow
def test_streamed_run_gives_the_in_memory_scores_and_flags(folder, tmp_path):
    """One BadNet run through the folder in memory, and streamed (a separate cache) with the same model's weights:
    the same model key, influence scores and flagged set; and the recipe trains the same weights from either."""
    def run(stream, **kw):
        cache = tmp_path / stream
        cfg = Config(dataset="imagefolder", data_root=str(folder), image_size=16, seed=0, transforms=8, epochs=4,
                     stream=stream, cache_dir=str(cache))
        return Experiment(cfg, store=Store(cache), **kw)

    held = run("off")
    disk = run("on", weights=weights_to_bytes(held.model))
    assert isinstance(disk.poisoned.data.x_train, DiskImages) and isinstance(held.poisoned.data.x_train, torch.Tensor)
    assert array_fingerprint(disk.poisoned.data.x_train) == array_fingerprint(held.poisoned.data.x_train)
    held_scores, disk_scores = held.investigation.scores(), disk.investigation.scores()
    np.testing.assert_allclose(disk_scores, held_scores, rtol=1e-5, atol=1e-6 * np.abs(held_scores).max())
    held_flags = held.investigation.detect("delta_influence").flagged
    assert np.array_equal(disk.investigation.detect("delta_influence").flagged, held_flags) and held_flags.any()
    y = held.poisoned.data.y_train
    a = held.recipe.train(held.poisoned.data.x_train, y, epochs=1)
    b = held.recipe.train(disk.poisoned.data.x_train, y, epochs=1)
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
