"""Dataset loading for training (train.data.load over ganlite.datasets): the real fixture
loads; bad files get an error naming the file."""
from __future__ import annotations

import gzip
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")
from conftest import FASHION_DEBIAN, FASHION_SMALL, MNIST_SMALL  # noqa: E402

from ganlite.datasets import read_idx  # noqa: E402
from train.data import load  # noqa: E402
from train.errors import DataError  # noqa: E402

pytestmark = pytest.mark.train


def test_fixture_loads():
    images, labels = load("mnist", "train", MNIST_SMALL)
    assert images.shape == (600, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (600,) and set(labels.tolist()) == set(range(10))
    test_images, _ = load("mnist", "test", MNIST_SMALL)
    assert test_images.shape == (200, 28, 28)


@pytest.fixture
def data_copy(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(MNIST_SMALL, target)
    return target


def _rewrite(path, mutate):
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as f:
        f.write(mutate(raw))


@pytest.mark.parametrize("case,mutate,message", [
    ("missing", None, "file not found"),
    ("truncated", lambda raw: raw[:-100], "truncated"),
    ("bad magic", lambda raw: b"\x00\x00\x09\x99" + raw[4:], "not an IDX images file"),
    ("header only", lambda raw: raw[:10], "shorter than the IDX header"),
    ("not gzip", "plain", "not a readable gzip file"),
])
def test_bad_image_file_is_named(data_copy, case, mutate, message):
    path = data_copy / "train-images-idx3-ubyte.gz"
    if mutate is None:
        path.unlink()
    elif mutate == "plain":
        path.write_bytes(b"plain text")
    else:
        _rewrite(path, mutate)
    with pytest.raises(DataError, match=message) as info:
        load("mnist", "train", data_copy)
    assert str(path) in str(info.value)


def test_label_count_mismatch(data_copy):
    _rewrite(data_copy / "train-labels-idx1-ubyte.gz",
             lambda raw: raw[:4] + (599).to_bytes(4, "big") + raw[8:-1])
    with pytest.raises(DataError, match="600 images but 599 labels"):
        load("mnist", "train", data_copy)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load("mnist", "train", tmp_path / "nope")


def test_read_idx_labels_kind():
    labels = read_idx(MNIST_SMALL / "train-labels-idx1-ubyte.gz", "labels")
    assert labels.shape == (600,)


def test_fashion_fixture_loads():
    images, labels = load("fashion_mnist", "train", FASHION_SMALL)
    assert images.shape == (600, 28, 28) and set(labels.tolist()) == set(range(10))


def test_fashion_debian_package():
    """The full Fashion-MNIST as Debian ships it: 60,000 + 10,000, 6,000 / 1,000 a class."""
    if not FASHION_DEBIAN.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{FASHION_DEBIAN} missing: .ci/run installs dataset-fashion-mnist")
        pytest.skip("apt-get install -y dataset-fashion-mnist")
    images, labels = load("fashion_mnist", "train", FASHION_DEBIAN)
    assert images.shape == (60_000, 28, 28)
    assert np.bincount(labels).tolist() == [6_000] * 10
    test_images, test_labels = load("fashion_mnist", "test", FASHION_DEBIAN)
    assert test_images.shape == (10_000, 28, 28)
    assert np.bincount(test_labels).tolist() == [1_000] * 10
