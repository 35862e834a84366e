"""Datasets: MNIST / Fashion-MNIST from a folder of IDX files or from keras.datasets.

Images leave this module as uint8 arrays of shape [N, 28, 28] (0 = black, 255 = white)
and labels as int64 [N]; scaling to [-1, 1] happens in the training code.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

DATASETS = ("mnist", "fashion_mnist")
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["t-shirt", "trouser", "pullover", "dress", "coat",
                      "sandal", "shirt", "sneaker", "bag", "ankle-boot"],
}
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}


class DataError(Exception):
    """A dataset file is missing, truncated or not what it claims to be."""


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one gzipped IDX file; kind is 'images' ([N, 28, 28] uint8) or 'labels' ([N])."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected the standard IDX file "
                        f"{path.name})")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None
    header = 16 if kind == "images" else 8
    if len(raw) < header:
        raise DataError(f"{path}: truncated: {len(raw)} bytes, shorter than the IDX header")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != _IDX_MAGIC[kind]:
        raise DataError(f"{path}: not an IDX {kind} file (magic {magic:#010x}, "
                        f"expected {_IDX_MAGIC[kind]:#010x})")
    shape = (count,)
    if kind == "images":
        rows, cols = struct.unpack(">II", raw[8:16])
        if (rows, cols) != (28, 28):
            raise DataError(f"{path}: images are {rows}x{cols}, expected 28x28")
        shape = (count, 28, 28)
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: truncated or padded: {len(raw) - header} data bytes, "
                        f"header promises {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load ('train' or 'test') images and labels from a folder of the four IDX .gz files."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data folder not found")
    images = read_idx(data_dir / IDX_FILES[(split, "images")], "images")
    labels = read_idx(data_dir / IDX_FILES[(split, "labels")], "labels")
    if len(images) != len(labels):
        raise DataError(f"{data_dir}: {split} has {len(images)} images but "
                        f"{len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{data_dir / IDX_FILES[(split, 'labels')]}: label "
                        f"{labels.max()} out of range 0-9")
    return images, labels.astype(np.int64)


def load_keras(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load through keras.datasets (downloads once into ~/.keras/datasets)."""
    import keras

    module = {"mnist": keras.datasets.mnist,
              "fashion_mnist": keras.datasets.fashion_mnist}[dataset]
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as e:  # network or cache failures surface as many types
        raise DataError(f"keras.datasets.{dataset}: could not load ({e}); "
                        f"pass --data DIR with the four IDX .gz files instead") from None
    if split == "train":
        return x_train, y_train.astype(np.int64)
    return x_test, y_test.astype(np.int64)


def load(dataset: str, split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] uint8 and labels [N] int64 of one split."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if data_dir is not None:
        return load_split(Path(data_dir), split)
    return load_keras(dataset, split)


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 28, 28, 1] in [-1, 1], as the generator's tanh."""
    return (images.astype(np.float32)[..., None] / 127.5) - 1.0
