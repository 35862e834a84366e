"""Training the evaluation classifier and its reference statistics on the test set.

Run folder: classifier.keras (input float32 [b, 28, 28, 1] in [0, 1]; outputs probs
[b, 10] and features [b, 128]), reference.npz (test-set feature mean, covariance,
features and k-NN radii for precision/recall), run.json (config, test accuracy).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from . import data as datasets
from .config import ClassifierConfig

KNN_K = 3


def train_classifier(config: ClassifierConfig):
    import keras
    import tensorflow as tf

    from ganlite._evaluate import knn_radii

    from .models import classifier

    x_train, y_train = datasets.load(config.dataset, "train", config.data)
    x_test, y_test = datasets.load(config.dataset, "test", config.data)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()

    model = classifier()
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

    config.out.mkdir(parents=True, exist_ok=True)
    model.save(config.out / "classifier.keras")
    feats64 = features.astype(np.float64)
    np.savez_compressed(config.out / "reference.npz",
                        mu=feats64.mean(axis=0), sigma=np.cov(feats64, rowvar=False),
                        features=features.astype(np.float32),
                        radii=knn_radii(features.astype(np.float32), KNN_K), k=KNN_K)
    (config.out / "run.json").write_text(json.dumps({
        "kind": "classifier", "dataset": config.dataset, "test_accuracy": accuracy,
        "test_images": int(len(x_test)), "train_images": int(len(x_train)),
        "config": {k: str(v) for k, v in config.__dict__.items()},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}, indent=2))
    return config.out / "classifier.keras"
