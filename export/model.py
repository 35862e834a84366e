"""Exporting a run folder of `python -m train`: its final Keras model to a sealed ONNX
file with its card, plus NAME.json (the card), and for generators NAME.png (a sample grid),
NAME.keras and NAME-training.gif; for classifiers NAME.npz (reference statistics).

Everything is prepared in memory (the grid from the sealed bytes, through ganlite), then
written as one (ganlite.files.atomic_write_all): a failed export writes nothing.
"""
from __future__ import annotations

import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import ganlite
from ganlite.datasets import DATASETS
from ganlite.files import atomic_write_all, check_new_file, make_folder

from .card import PIXEL_FORMAT, card_json, export_versions, finish
from .config import ExportConfig
from .errors import ExportError
from .standing import standing_statistics


def export_run(config: ExportConfig) -> dict:
    """Export a finished run; return the card written.

    Raises:
        ExportError: not a run folder, unfinished, unreadable model or run.json, failed
            conversion, standing statistics asked of a classifier (or of a generator
            without BatchNorm); ParityError (a subclass) when Keras and onnxruntime
            disagree.
        OutputError: --out cannot be written (checked before any work).
    """
    info = _run_info(config.run_dir)
    kind = info.get("kind", "generator")
    if kind not in ("generator", "classifier"):
        raise ExportError(f"{config.run_dir / 'run.json'}: unknown kind {kind!r}")
    if kind == "classifier" and config.standing_stats:
        raise ExportError(f"{config.run_dir}: standing_stats (--standing-stats) applies to "
                          f"generators; this run is a classifier")
    final = config.run_dir / ("classifier.keras" if kind == "classifier"
                              else "generator.keras")
    if not final.is_file():
        raise ExportError(f"{final} not found: did the run finish?")
    make_folder(config.out.parent, "output folder")
    check_new_file(config.out, "--out")
    model = _load_keras(final)
    if kind == "classifier":
        card, files = _classifier(config, info, model)
    else:
        card, files = _generator(config, info, model, final)
    atomic_write_all(files)
    return card


def _run_info(run_dir: Path) -> dict:
    run_json = run_dir / "run.json"
    try:
        info = json.loads(run_json.read_text())
    except FileNotFoundError:
        raise ExportError(f"{run_json} not found: {run_dir} is not a run folder of "
                          f"python -m train") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or "not valid JSON"
        raise ExportError(f"{run_json} cannot be read ({reason})") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise ExportError(f"{run_json} holds no run configuration")
    return info


def _load_keras(path: Path):
    import keras

    try:
        return keras.models.load_model(path)
    except Exception as e:  # noqa: BLE001  (Keras raises many types for a bad file)
        text = str(e).strip()
        reason = (text.splitlines()[0] if text else type(e).__name__)[:200]
        raise ExportError(f"{path}: Keras cannot load it ({reason})") from None


def _config(cls, info: dict, run_dir: Path):
    """The run's validated config; a bad run.json is the run folder's fault (exit 1)."""
    from ganlite import UsageError

    try:
        return cls.from_json(info["config"], source=str(run_dir / "run.json"))
    except UsageError as e:
        raise ExportError(str(e)) from None


def _embedding_classes(model) -> int | None:
    """The number of labels a conditional Keras generator embeds (None if it has none)."""
    for layer in model.layers:
        if layer.name == "label_embedding":
            return int(layer.input_dim)
    return None


def _generator(config: ExportConfig, info: dict, model, final: Path):
    from train.config import GanConfig

    from .convert import export_generator

    run = _config(GanConfig, info, config.run_dir)
    dataset = DATASETS[run.dataset]
    if run.conditional and _embedding_classes(model) != dataset.num_classes:
        raise ExportError(f"{final}: embeds {_embedding_classes(model)} labels, dataset "
                          f"{run.dataset} has {dataset.num_classes} classes")
    standing = None
    if config.standing_stats:
        layers = standing_statistics(model, run.latent_dim, run.num_classes,
                                     config.standing_stats, run.seed)
        standing = {"samples": config.standing_stats, "seed": run.seed, "layers": layers}
        print(f"standing statistics: {layers} BatchNorm layer(s) from "
              f"{config.standing_stats:,} samples", file=sys.stderr)
    # The Keras model travels with the ONNX one, with the statistics the ONNX model has
    # (bench/speed.py compares the two): the run's file, or the recomputed model.
    keras_bytes = _keras_bytes(model) if standing else final.read_bytes()
    proto, parity = export_generator(model, run.latent_dim, run.conditional,
                                     dataset.num_classes, optimize_graph=config.optimize)
    print(f"parity: max abs {parity['max_abs_float']:.2e} on [-1, 1], "
          f"{parity['max_gray_levels']} gray level(s) on uint8", file=sys.stderr)
    out = config.out
    card = {
        "name": config.model_name, "kind": "generator",
        "summary": f"{'conditional ' if run.conditional else ''}{run.arch} GAN "
                   f"generator of {run.dataset} images",
        "dataset": run.dataset, "architecture": run.arch,
        "latent_dim": run.latent_dim, "latent_distribution": "N(0, 1)",
        "conditional": run.conditional, "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "input_names": {"z": "z", **({"label": "label"} if run.conditional else {})},
        "output_format": PIXEL_FORMAT,
        "train_steps": run.steps, "train_images": info.get("train_images"),
        "train_seconds": info.get("train_seconds"),
        "train_machine": info.get("machine"), "batch_size": run.batch_size,
        "optimizer": run.optimizer, "g_lr": run.g_lr, "d_lr": run.d_lr,
        "ema_decay": run.ema_decay, "seed": run.seed,
        "train_command": run.command(),
        "export_command": config.command(),
        "versions": {**info.get("versions", {}), **export_versions()},
        "parity": parity,
        "exported": datetime.date.today().isoformat(),
    }
    if standing is not None:
        card["standing_stats"] = standing
    data = finish(proto, card, out)
    files = {out: data, out.with_suffix(".json"): card_json(card),
             out.with_suffix(".keras"): keras_bytes,
             out.with_suffix(".png"): _grid_png(data, card)}
    film = config.run_dir / "training.gif"
    if film.exists():  # the training film travels with the model: NAME-training.gif
        files[out.with_name(f"{out.stem}-training.gif")] = film.read_bytes()
    return card, files


def _keras_bytes(model) -> bytes:
    """A Keras model's .keras file, as bytes (saved by train.saving into a scratch folder)."""
    from train.saving import save_keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        save_keras(model, path)
        return path.read_bytes()


def _grid_png(model_bytes: bytes, card: dict) -> bytes:
    """NAME.png: 100 samples of the sealed model through ganlite (seed 0); for
    conditional models one column per class, every class in turn."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(model_bytes)
        generator = ganlite.Generator(path, device="cpu")
        classes = generator.num_classes if generator.conditional else 0
        columns = classes or 10
        n = columns * (100 // columns) if columns <= 100 else columns
        labels = ganlite.LabelCycle(range(classes)) if classes else None
        images = generator.generate(n, seed=0, labels=labels)
        return ganlite.save_grid(images, Path(folder) / "grid.png", columns=columns) \
            .read_bytes()


def _classifier(config: ExportConfig, info: dict, model):
    from train.config import ClassifierConfig

    from .convert import export_classifier

    run = _config(ClassifierConfig, info, config.run_dir)
    reference = config.run_dir / "reference.npz"
    if not reference.is_file():
        raise ExportError(f"{reference} not found: did the run finish?")
    try:
        with np.load(reference) as ref:
            k = int(ref["k"])
    except (OSError, ValueError, KeyError) as e:
        raise ExportError(f"{reference}: not readable reference statistics "
                          f"({type(e).__name__})") from None
    classes, feature_dim = (int(o.shape[-1]) for o in model.outputs)
    if classes != DATASETS[run.dataset].num_classes:
        raise ExportError(f"{config.run_dir}: the classifier has {classes} classes, dataset "
                          f"{run.dataset} has {DATASETS[run.dataset].num_classes}")
    proto, parity = export_classifier(model)
    print(f"parity: probs {parity['max_abs_probs']:.2e}, features "
          f"{parity['max_abs_features']:.2e}", file=sys.stderr)
    out = config.out
    card = {
        "name": config.model_name, "kind": "classifier",
        "summary": f"{run.dataset} classifier for evaluating generators",
        "dataset": run.dataset, "architecture": run.arch,
        "test_accuracy": info.get("test_accuracy"), "num_classes": classes,
        "feature_dim": feature_dim, "input_format": PIXEL_FORMAT,
        "reference": f"{out.with_suffix('.npz').name}: feature mean, covariance, features "
                     f"and k={k} radii of the {info.get('test_images')} test images",
        "train_command": run.command(),
        "export_command": config.command(),
        "versions": {**info.get("versions", {}), **export_versions()},
        "parity": parity, "exported": datetime.date.today().isoformat(),
    }
    data = finish(proto, card, out)
    return card, {out: data, out.with_suffix(".json"): card_json(card),
                  out.with_suffix(".npz"): reference.read_bytes()}
