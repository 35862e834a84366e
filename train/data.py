"""Datasets for training: MNIST / Fashion-MNIST from a folder of IDX files (read by
ganlite.datasets, the one IDX reader) or from keras.datasets.

Images leave this module as uint8 arrays of shape [N, 28, 28] (0 = black, 255 = white)
and labels as int64 [N], checked against the dataset's classes; scaling to [-1, 1]
(ganlite.pixels.to_unit_range) happens in the training code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ganlite.datasets import DATASETS, get, read_split

from .errors import DataError


def load_keras(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load through keras.datasets (downloads once into ~/.keras/datasets)."""
    import keras

    module = {"mnist": keras.datasets.mnist,
              "fashion_mnist": keras.datasets.fashion_mnist}[dataset]
    try:
        (x_train, y_train), (x_test, y_test) = module.load_data()
    except Exception as e:  # noqa: BLE001  (network or cache failures surface as many types)
        raise DataError(f"keras.datasets.{dataset}: could not load "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        f"pass --data DIR with the four IDX .gz files instead") from None
    if split == "train":
        return x_train, y_train.astype(np.int64)
    return x_test, y_test.astype(np.int64)


def load(dataset: str, split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] uint8 and labels [N] int64 (each a class of the dataset) of one
    split, from `data_dir` or keras.datasets.

    Raises:
        UsageError: unknown dataset or split.
        DataError: a file is missing or bad, or the download fails.
    """
    get(dataset)
    if data_dir is not None:
        return read_split(data_dir, split, dataset)
    images, labels = load_keras(dataset, split)
    classes = DATASETS[dataset].num_classes
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"keras.datasets.{dataset}: labels outside 0-{classes - 1}")
    return images, labels
