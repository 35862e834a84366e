"""Judging generated digits with the bundled classifier (no dataset, no TensorFlow).

- FCD: Frechet distance between the classifier's feature-layer statistics of the samples
  and of the 10,000 test digits (the FID recipe, MNIST classifier in place of Inception).
- MNIST score: exp(E_x KL(p(y|x) || p(y))), TF-GAN's classifier score; 10 is perfect.
- Class shares and mean confidence (max softmax probability).
- Precision / recall of Kynkaanniemi et al. 2019 with k-NN (k=3) balls in feature space.
FCD is biased upwards at small n: compare figures only at equal sample counts.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _registry
from ._errors import ModelError, UsageError, describe
from ._model import MAX_BATCH_SIZE, Generator, _check_int, open_session, run_checked
from .datasets import DATASETS
from .latents import check_truncation
from .metrics import classifier_score, coverage, frechet_distance, knn_radii

# dataset -> its bundled classifier (defined once, in ganlite.datasets)
CLASSIFIERS = {name: d.classifier for name, d in DATASETS.items()}
# Samples held in memory for one evaluation (images, features and k-NN distances grow
# with it; 1,000,000 takes about 1.5 GB). FCD needs 10,000 to compare models.
MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class EvaluationReport:
    """What the bundled classifier of a dataset says of a set of images.

    Attributes:
        n: images judged.
        fcd: Frechet distance of the classifier's features to the test set's (lower is
            better; biased upwards at small n: compare at equal n).
        classifier_score: exp(E KL(p(y|x) || p(y))) with the dataset's classifier ("MNIST
            score" for MNIST); at most the number of classes.
        class_share: float [classes], share of images classified as each class; sums to 1.
        mean_confidence: mean of the highest class probability.
        precision: share of images within the k-NN balls of real test images (k=3).
        recall: share of real test images within the k-NN balls of the images.
        source: what was judged ("model NAME (seed S)", "folder DIR", "images").
        dataset: whose classifier judged ("mnist", "fashion_mnist").
        label_accuracy: conditional models: float [classes], per class the share of
            images asked for as that class that the classifier assigns to it; else None.
    """
    n: int
    fcd: float
    classifier_score: float
    class_share: np.ndarray
    mean_confidence: float
    precision: float
    recall: float
    source: str = ""
    dataset: str = "mnist"
    label_accuracy: np.ndarray | None = None

    def to_dict(self) -> dict:
        """The report as JSON-ready values (floats rounded to 4 places)."""
        d = dataclasses.asdict(self)
        d["class_share"] = [round(float(s), 4) for s in self.class_share]
        d["min_class_share"] = round(float(self.class_share.min()), 4)
        d["max_class_share"] = round(float(self.class_share.max()), 4)
        if self.label_accuracy is not None:
            d["label_accuracy"] = [round(float(a), 4) for a in self.label_accuracy]
            d["min_label_accuracy"] = round(float(self.label_accuracy.min()), 4)
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

    @property
    def score_name(self) -> str:
        known = DATASETS.get(self.dataset)
        return known.score_name if known else f"{self.dataset} score"

    def table(self) -> str:
        shares = "  ".join(f"{k}:{s:5.1%}" for k, s in enumerate(self.class_share))
        rows = [("source", self.source), ("samples", f"{self.n}"),
                ("FCD", f"{self.fcd:.3f}"), (self.score_name, f"{self.classifier_score:.3f}"),
                ("mean confidence", f"{self.mean_confidence:.4f}"),
                ("precision (k=3)", f"{self.precision:.4f}"),
                ("recall (k=3)", f"{self.recall:.4f}"),
                ("class share", f"min {self.class_share.min():.1%}  "
                                f"max {self.class_share.max():.1%}"),
                ("", shares)]
        if self.label_accuracy is not None:
            worst = int(self.label_accuracy.argmin())
            rows += [("on-label", f"min {self.label_accuracy.min():.1%} (class {worst})  "
                                  f"mean {self.label_accuracy.mean():.1%}"),
                     ("", "  ".join(f"{k}:{a:5.1%}"
                                    for k, a in enumerate(self.label_accuracy)))]
        return "\n".join(f"{k:<16} {v}" for k, v in rows)


class Evaluator:
    """A dataset's bundled classifier and its reference statistics on the test set."""

    def __init__(self, dataset: str = "mnist", device: str = "auto",
                 classifier: str | Path | None = None):
        """Load the classifier that judges images of `dataset`.

        Args:
            dataset: "mnist" or "fashion_mnist" (see CLASSIFIERS).
            device: "auto", "cpu" or "cuda".
            classifier: instead of the dataset's: a classifier's name or .onnx path, with
                its reference statistics (.npz) beside it.

        Raises:
            UsageError: no bundled classifier for `dataset`.
            ModelError: the classifier or its statistics cannot be used.
        """
        if classifier is None:
            if not isinstance(dataset, str) or dataset not in CLASSIFIERS:
                raise UsageError(f"no bundled classifier for dataset {describe(dataset)}; "
                                 f"available: {', '.join(CLASSIFIERS)}")
            classifier = CLASSIFIERS[dataset]
        path = _registry.resolve(classifier)
        self.path = path
        self.session, self.card = open_session(path, "classifier", device)
        ref_path = path.with_suffix(".npz")
        if not ref_path.is_file():
            raise ModelError(f"reference statistics {ref_path} missing beside {path}")
        with np.load(ref_path) as ref:
            self.mu, self.sigma = ref["mu"], ref["sigma"]
            self.real_features, self.real_radii = ref["features"], ref["radii"]
            self.k = int(ref["k"])
        self.dataset = self.card.get("dataset", dataset)

    def classify(self, images: np.ndarray, batch_size: int = 1000,
                 progress: Callable[[int], None] | None = None):
        """(probs [n, classes], features [n, d]) of uint8 [n, 28, 28] images."""
        probs, feats = [], []
        for lo in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[lo:lo + batch_size], np.uint8)
            p, f = self._run(batch)
            probs.append(p)
            feats.append(f)
            if progress:
                progress(len(batch))
        return np.concatenate(probs), np.concatenate(feats)

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The one place the session runs: (probs float32 [b, classes] finite in [0, 1],
        features float32 [b, d] finite) of uint8 [b, 28, 28], checked; else ModelError."""
        p, f = run_checked(self.path, self.session, ["probs", "features"], {"image": batch})
        b = len(batch)
        classes = self.card["num_classes"]
        width = self.card["outputs"]["features"]["shape"][1]
        for name, value, shape, bounded in (("probs", p, (b, classes), True),
                                            ("features", f, (b, width), False)):
            if (not isinstance(value, np.ndarray) or value.dtype != np.float32
                    or value.shape != shape):
                what = (f"{value.dtype} {list(value.shape)}" if isinstance(value, np.ndarray)
                        else type(value).__name__)
                raise ModelError(f"{self.path}: the classifier returned {name} {what} for a "
                                 f"batch of {b}; expected float32 {list(shape)}")
            ok = np.isfinite(value) & ((value >= 0) & (value <= 1) if bounded else True)
            if not ok.all():
                expected = "finite and in [0, 1]" if bounded else "finite"
                raise ModelError(f"{self.path}: the classifier returned {name} with the "
                                 f"value {value[~ok].flat[0]} for a batch of {b}; expected "
                                 f"values {expected}")
        return p, f

    def evaluate_images(self, images: np.ndarray, source: str = "images",
                        progress: Callable[[int], None] | None = None,
                        batch_size: int = 1000) -> EvaluationReport:
        """Judge uint8 [n, 28, 28] images (2 <= n <= MAX_SAMPLES).

        Args:
            images: the images, 0 = black, 255 = white.
            source: what the report says they are.
            progress: called with k as each k images are classified.
            batch_size: images per onnxruntime call.

        Raises:
            UsageError: not uint8 [n, 28, 28], or n out of range.
            ModelError: the classifier returned something malformed.
        """
        images = _check_images(images)
        batch_size = _check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        probs, feats = self.classify(images, batch_size=batch_size, progress=progress)
        feats64 = feats.astype(np.float64)
        mu, sigma = feats64.mean(axis=0), np.cov(feats64, rowvar=False)
        fake_radii = knn_radii(feats, min(self.k, len(feats) - 1))
        share = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)
        return EvaluationReport(
            n=len(images),
            fcd=frechet_distance(mu, sigma, self.mu, self.sigma),
            classifier_score=classifier_score(probs.astype(np.float64)),
            class_share=share,
            mean_confidence=float(probs.max(axis=1).mean()),
            precision=coverage(feats, self.real_features, self.real_radii),
            recall=coverage(self.real_features, feats, fake_radii),
            source=source, dataset=self.dataset)

    def evaluate_generator(self, generator: Generator, n: int = 10_000, seed: int = 0,
                           progress: Callable[[int], None] | None = None,
                           batch_size: int = 1000,
                           truncation: float | None = None) -> EvaluationReport:
        """Judge n samples of a generator (seed `seed`); for a conditional model also the
        on-label rate of each class (n // classes samples of each label).

        Args:
            generator: the model to judge.
            n: samples, 2 <= n <= MAX_SAMPLES.
            seed: seed of the samples (the on-label pass uses the same seed per label).
            progress: called with k as each k images are done (progress_total in all).
            batch_size: images per onnxruntime call.
            truncation: None (off) or psi: the truncation trick, as in Generator.batches;
                applied to every sample, the on-label pass included.

        Raises:
            UsageError: n, batch_size or truncation out of range.
            ModelError: the generator or classifier returned something malformed.
        """
        n = _check_int("n", n, 2, MAX_SAMPLES)
        truncation = check_truncation(truncation)
        images = np.empty((n, 28, 28), np.uint8)
        for batch in generator.batches(n, seed, batch_size=batch_size, truncation=truncation):
            images[batch.start:batch.start + len(batch.images)] = batch.images
            if progress:
                progress(len(batch.images))
        psi = "" if truncation is None else f", truncation {truncation:g}"
        report = self.evaluate_images(
            images, source=f"model {generator.name} (seed {seed}{psi})", progress=progress,
            batch_size=batch_size)
        if generator.conditional:
            report = dataclasses.replace(report, label_accuracy=self.label_accuracy(
                generator, _per_class(generator, n), seed, batch_size, progress,
                truncation=truncation))
        return report

    @staticmethod
    def progress_total(generator: Generator, n: int) -> int:
        """How many progress units evaluate_generator reports: n generated, n classified,
        and for conditional models n // classes per class for the on-label accuracy."""
        extra = _per_class(generator, n) * generator.num_classes if generator.conditional else 0
        return 2 * n + extra

    def label_accuracy(self, generator: Generator, per_class: int = 1000, seed: int = 0,
                       batch_size: int = 1000,
                       progress: Callable[[int], None] | None = None,
                       truncation: float | None = None) -> np.ndarray:
        """[classes]: for each class c, the share of `per_class` images generated with
        label c (and `truncation`) that the classifier assigns to c (conditional models)."""
        accuracy = np.empty(generator.num_classes)
        for label in range(generator.num_classes):
            images = generator.generate(per_class, seed, labels=label, batch_size=batch_size,
                                        truncation=truncation)
            probs, _ = self.classify(images)
            if progress:
                progress(len(images))
            accuracy[label] = float((probs.argmax(axis=1) == label).mean())
        return accuracy


def _check_images(images: object) -> np.ndarray:
    """uint8 [n, 28, 28] with 2 <= n <= MAX_SAMPLES, or UsageError."""
    if not isinstance(images, np.ndarray):
        raise UsageError(f"images must be a uint8 [n, 28, 28] array, got {describe(images)}")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise UsageError(f"images must be uint8 [n, 28, 28], got {images.dtype} "
                         f"{list(images.shape)}")
    if not 2 <= len(images) <= MAX_SAMPLES:
        raise UsageError(f"evaluation takes 2 to {MAX_SAMPLES:,} images, got {len(images):,}")
    return images


def _per_class(generator: Generator, n: int) -> int:
    return max(n // generator.num_classes, 1)


def evaluate(model: str | os.PathLike | Generator | None = None, *,
             images: np.ndarray | str | os.PathLike | None = None, n: int = 10_000,
             seed: int = 0, device: str = "auto",
             progress: Callable[[int], None] | None = None, dataset: str | None = None,
             batch_size: int = 1000, truncation: float | None = None) -> EvaluationReport:
    """Evaluate a generator, or images.

    Args:
        model: a built-in name, a path, a loaded Generator, or None (the default model);
            it is judged by the classifier of its card's dataset.
        images: instead of a model: a uint8 [n, 28, 28] array or a folder of 28x28 PNGs
            (see load_png_folder).
        n: samples to generate (models only).
        seed: seed of the samples (models only).
        device: "auto", "cpu" or "cuda".
        progress: called with k as each k images are done.
        dataset: with images: whose classifier judges them ("mnist", the default, or
            "fashion_mnist"). Not with a model.
        batch_size: images per onnxruntime call.
        truncation: models only: None (off) or psi, the truncation trick applied to every
            sample (see Generator.batches).

    Returns:
        An EvaluationReport.

    Raises:
        UsageError: a bad argument (dataset given with a model, unknown dataset, ...).
        ImageInputError: an image folder holds something that is not a 28x28 PNG.
        ModelError: a model or classifier cannot be used.
    """
    from ._images import load_png_folder

    if images is not None:
        if model is not None:
            raise UsageError("give a model or images to evaluate, not both")
        if truncation is not None:
            raise UsageError("truncation goes with a model; images are judged as they are")
        source = "images"
        if not isinstance(images, np.ndarray):
            source = f"folder {images}"
            images = load_png_folder(images)
        _check_images(images)
        return Evaluator(dataset or "mnist", device=device).evaluate_images(
            images, source, progress, batch_size=batch_size)
    if dataset is not None:
        raise UsageError("dataset goes with images; a model is judged by the classifier "
                         "of its card's dataset")
    from ._model import load

    generator = model if isinstance(model, Generator) else load(model, device=device)
    evaluator = Evaluator(generator.card.get("dataset", "mnist"), device=device)
    return evaluator.evaluate_generator(generator, n, seed, progress, batch_size=batch_size,
                                        truncation=truncation)
