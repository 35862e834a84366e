"""The datasets ganlite knows (names, class names, bundled classifiers) and the one reader
of their IDX files (numpy only; training, tests and benchmarks use it).

    from ganlite import datasets
    datasets.DATASETS["fashion_mnist"].class_names[7]       # 'sneaker'
    images, labels = datasets.read_split("data/mnist", "test", "mnist")

IDX files are read defensively: at most the bytes their header declares (+1 to notice
padding) are ever decompressed, so a gzip bomb costs no more than an honest file, and every
problem is one line naming the file.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ._errors import GanliteError, UsageError, describe
from ._files import as_path

__all__ = [
    "DATASETS",
    "IDX_FILES",
    "MAX_IDX_ITEMS",
    "SPLITS",
    "Dataset",
    "DatasetError",
    "get",
    "read_idx",
    "read_split",
]


@dataclass(frozen=True)
class Dataset:
    """A dataset of 28x28 grayscale images in classes.

    Attributes:
        name: its name in cards, run configurations and `--dataset`.
        class_names: the name of each class, by class number.
        classifier: the built-in classifier model that judges images of it.
        score_name: what its classifier score is called in reports.
    """
    name: str
    class_names: tuple[str, ...]
    classifier: str
    score_name: str

    @property
    def num_classes(self) -> int:
        """How many classes (len(class_names))."""
        return len(self.class_names)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("mnist", tuple(str(d) for d in range(10)), "mnist-classifier", "MNIST score"),
    Dataset("fashion_mnist", ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal",
                              "shirt", "sneaker", "bag", "ankle-boot"),
            "fashion-classifier", "Fashion score"),
)}
SPLITS = ("train", "test")
# The standard file names of a folder of IDX files (MNIST's, which Fashion-MNIST shares).
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}
# Items one IDX file may declare: 784 MB of 28x28 images (MNIST has 60,000).
MAX_IDX_ITEMS = 1_000_000
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_HEADER = {"images": 16, "labels": 8}


class DatasetError(GanliteError):
    """A dataset file or folder is missing, unreadable, truncated or not what it claims to
    be; the message names it."""


def get(name: str) -> Dataset:
    """The dataset called `name`.

    Raises:
        UsageError: no dataset has that name (the message lists the known ones).
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise UsageError(f"unknown dataset {describe(name)}; choose one of "
                         f"{', '.join(DATASETS)}")
    return DATASETS[name]


def read_idx(path: str | os.PathLike, kind: str) -> np.ndarray:
    """Read one gzipped IDX file of 28x28 images or of labels.

    Args:
        path: the .gz file.
        kind: "images" (magic 0x803, [N, 28, 28]) or "labels" (magic 0x801, [N]).

    Returns:
        uint8 [N, 28, 28] images (0 = black, 255 = white) or uint8 [N] labels.

    Raises:
        UsageError: `kind` is neither "images" nor "labels", or `path` is not a path.
        DatasetError: the file is missing, unreadable, not gzip, not an IDX file of that
            kind, not 28x28, declares more than MAX_IDX_ITEMS items, or holds fewer or more
            bytes than its header declares.
    """
    if not isinstance(kind, str) or kind not in _MAGIC:
        raise UsageError(f"kind must be 'images' or 'labels', got {describe(kind)}")
    path = as_path(path, "an IDX file")
    header_size = _HEADER[kind]
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise DatasetError(f"{path}: truncated: {len(header)} bytes, shorter than "
                                   f"the IDX header")
            magic, count = struct.unpack(">II", header[:8])
            if magic != _MAGIC[kind]:
                raise DatasetError(f"{path}: not an IDX {kind} file (magic {magic:#010x}, "
                                   f"expected {_MAGIC[kind]:#010x})")
            if count > MAX_IDX_ITEMS:
                raise DatasetError(f"{path}: declares {count:,} {kind}, more than the limit "
                                   f"of {MAX_IDX_ITEMS:,}")
            shape: tuple[int, ...] = (count,)
            if kind == "images":
                rows, cols = struct.unpack(">II", header[8:16])
                if (rows, cols) != (28, 28):
                    raise DatasetError(f"{path}: images are {rows}x{cols}, expected 28x28")
                shape = (count, 28, 28)
            expected = int(np.prod(shape))
            # One byte more than declared: enough to tell a padded file, never a bomb.
            data = f.read(expected + 1)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found (expected the standard IDX file "
                           f"{path.name})") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected an IDX .gz file") from None
    except gzip.BadGzipFile as e:
        raise DatasetError(f"{path}: not a readable gzip file ({e})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read "
                           f"({e.strerror or type(e).__name__})") from None
    except (EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: not a readable gzip file (truncated or corrupt: "
                           f"{e or type(e).__name__})") from None
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "padded"
        got = f"{len(data)}" if len(data) < expected else f"more than {expected}"
        raise DatasetError(f"{path}: {what}: {got} data bytes, header promises {expected}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


def read_split(folder: str | os.PathLike, split: str,
               dataset: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split from a folder of the four standard IDX .gz files
    (IDX_FILES).

    Args:
        folder: the folder.
        split: "train" or "test".
        dataset: a name of DATASETS: labels are checked against its classes (None: any
            label 0-255 is accepted).

    Returns:
        (images uint8 [N, 28, 28], labels int64 [N]).

    Raises:
        UsageError: unknown split or dataset, or `folder` is not a path.
        DatasetError: the folder or a file is missing or bad (see read_idx), the counts
            of images and labels differ, or a label is not a class of the dataset.
    """
    if not isinstance(split, str) or split not in SPLITS:
        raise UsageError(f"split must be one of {', '.join(SPLITS)}, got {describe(split)}")
    classes = get(dataset).num_classes if dataset is not None else None
    folder = as_path(folder, "a data folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: data folder not found")
    images = read_idx(folder / IDX_FILES[(split, "images")], "images")
    labels_path = folder / IDX_FILES[(split, "labels")]
    labels = read_idx(labels_path, "labels")
    if len(images) != len(labels):
        raise DatasetError(f"{folder}: {split} has {len(images)} images but "
                           f"{len(labels)} labels")
    if classes is not None and labels.size and int(labels.max()) >= classes:
        raise DatasetError(f"{labels_path}: label {int(labels.max())} out of range "
                           f"0-{classes - 1} (dataset {dataset})")
    return images, labels.astype(np.int64)
