import io

import numpy as np
import pytest
import torch
from PIL import Image

from deltainf.data import balanced_subset, load_dataset
from deltainf.data.imagefolder import load_imagefolder
from deltainf.data.images import read_image
from deltainf.errors import DataError


def test_digits_is_offline_rgb_16px_and_seeded():
    a = load_dataset("digits", None, seed=0)
    b = load_dataset("digits", None, seed=0)
    c = load_dataset("digits", None, seed=1)
    assert a.x_train.dtype == torch.uint8 and a.x_train.shape[1:] == (3, 16, 16)
    assert len(a.y_train) + len(a.y_test) == 1797 and a.num_classes == 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)  # another split
    # tinted: the three channels differ, so colour transforms change the image
    assert (a.x_train[:, 0].float() - a.x_train[:, 1].float()).abs().mean() > 5
    assert np.bincount(a.y_test.numpy()).min() >= 30  # stratified 80/20 split


def test_balanced_subset_counts_and_determinism():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = balanced_subset(y, 10, seed=3)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10
    assert np.bincount(y[idx].numpy()).tolist() == [5, 3, 2]
    assert torch.equal(idx, balanced_subset(y, 10, seed=3))


def _tree(root, classes=("cat", "dog"), n=3, size=20):
    for split in ("train", "test"):
        for i, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True)
            for j in range(n):
                Image.new("RGB", (size + j, size), (40 * i, 80, 120)).save(d / f"{j}.png")
    return root


def test_imagefolder_reads_and_resizes(tmp_path):
    data = load_imagefolder(_tree(tmp_path), image_size=16)
    assert data.classes == ["cat", "dog"]
    assert data.x_train.shape == (6, 3, 16, 16) and data.y_test.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("breakage, needle", [
    (lambda r: None, "does not exist"),
    (lambda r: (r / "train").mkdir(parents=True), "no test/ folder"),
    (lambda r: [(r / s).mkdir(parents=True) for s in ("train", "test")], "no class folders"),
])
def test_imagefolder_layout_errors(tmp_path, breakage, needle):
    root = tmp_path / "data"
    breakage(root)
    with pytest.raises(DataError, match=needle):
        load_imagefolder(root, 16)


def test_broken_image_is_named(tmp_path):
    root = _tree(tmp_path)
    (root / "train" / "cat" / "zz.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"train/cat/zz\.png is not a readable image"):  # split and class too
        load_imagefolder(root, 16)


def test_read_image_from_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(buf, format="PNG")
    buf.seek(0)
    x = read_image(buf, image_size=16)
    assert x.shape == (3, 16, 16) and int(x[0].min()) == 255 and int(x[1].max()) == 0
    with pytest.raises(DataError):
        read_image(io.BytesIO(b"\x89PNG garbage"), 16)


def test_cifar_offline_without_data_says_where_to_put_it(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(DataError, match="extract it into"):
        load_dataset("cifar10", str(tmp_path), seed=0)


def test_subset_larger_than_the_data_says_so():
    with pytest.warns(UserWarning, match="more than the 1,438 training images"):
        data = load_dataset("digits", None, 0, n_train=10**6)
    assert len(data.y_train) == 1438
