"""Training the evaluation classifier and its reference statistics on the test set.

Run folder: classifier.keras (input float32 [b, 28, 28, 1] in [0, 1]; outputs probs
[b, classes] and features [b, 128]), reference.npz (test-set feature mean, covariance,
features and k-NN radii for precision/recall), run.json (config, test accuracy). Every
file is written atomically; run.json last, so a folder with run.json is a finished run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ganlite.files import atomic_write
from ganlite.metrics import knn_radii

from . import data as datasets
from .config import ClassifierConfig
from .errors import TrainError
from .saving import save_keras, write_json
from .versions import versions

KNN_K = 3


def train_classifier(config: ClassifierConfig) -> Path:
    """Train, measure test accuracy, write the run folder; return classifier.keras."""
    x_train, y_train = datasets.load(config.dataset, "train", config.data)
    x_test, y_test = datasets.load(config.dataset, "test", config.data)
    if len(x_test) <= KNN_K:
        raise TrainError(f"the test split has {len(x_test)} images: the reference "
                         f"statistics need more than {KNN_K}")

    import keras
    import tensorflow as tf

    from .models import classifier

    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    model = classifier(num_classes=config.num_classes, arch=config.arch)
    # Only the probabilities are trained; the features output rides along.
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=["sparse_categorical_crossentropy", None],
                  metrics=[["accuracy"], []])
    scale = lambda x: x.astype(np.float32)[..., None] / 255.0  # noqa: E731
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch: 1e-3 * 0.8 ** epoch)
    model.fit(scale(x_train), y_train, batch_size=config.batch_size, epochs=config.epochs,
              validation_split=0.0, callbacks=[schedule], verbose=2)
    probs, features = model.predict(scale(x_test), batch_size=1000, verbose=0)
    accuracy = float((probs.argmax(axis=1) == y_test).mean())
    print(f"test accuracy {accuracy:.4%}", file=sys.stderr)

    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainError(f"{config.out}: cannot create the run folder "
                         f"({e.strerror or type(e).__name__})") from None
    save_keras(model, config.out / "classifier.keras")
    feats64 = features.astype(np.float64)
    reference = {"mu": feats64.mean(axis=0), "sigma": np.cov(feats64, rowvar=False),
                 "features": features.astype(np.float32),
                 "radii": knn_radii(features.astype(np.float32), KNN_K), "k": KNN_K}

    def write_reference(tmp: Path) -> None:
        with open(tmp, "wb") as f:      # a file, not a path: savez would append .npz
            np.savez_compressed(f, **reference)
    atomic_write(config.out / "reference.npz", write_reference)
    write_json(config.out / "run.json", {
        "kind": "classifier", "dataset": config.dataset, "test_accuracy": accuracy,
        "test_images": len(x_test), "train_images": len(x_train),
        "config": config.to_json(), "versions": versions("tensorflow", "keras")})
    return config.out / "classifier.keras"
