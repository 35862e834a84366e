"""Optimizing a generator exported before export/optimize.py, in place: the same weights,
the graph rewritten, checked against the Keras model that travels with it (NAME.keras),
resealed, and its NAME.json and NAME.png grid rewritten to match.

    python -m export optimize artifacts/mnist-cdcgan.onnx

A new export (`python -m export model`) optimizes by itself; this is for the models
already shipped, whose run folders are not kept.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ganlite import ModelError
from ganlite import modelfile as mf
from ganlite.files import atomic_write_all
from ganlite.latents import draw

from .card import card_json, finish
from .errors import ExportError
from .model import _grid_png, _load_keras
from .optimize import optimize
from .parity import generator_parity

PARITY_SEED = 20261128      # the latents export/convert.py checks parity on
PARITY_SAMPLES = 1000


def is_optimized(card: dict) -> bool:
    """Whether the card says its graph went through export/optimize.py."""
    parity = card.get("parity")
    return isinstance(parity, dict) and str(parity.get("graph", "")).startswith("optimized")


def optimize_file(path: Path, keras_path: Path | None = None) -> dict:
    """Rewrite the sealed generator at `path` with export/optimize.py; returns its new card.

    Parity is checked against the Keras model `keras_path` (default NAME.keras beside the
    file), as an export checks it: 1e-4 on the float image, 1 gray level on uint8.

    Raises:
        IntegrityError / ModelError: the file is not a sealed, valid ganlite model.
        ExportError: not a generator, already optimized, no Keras model beside it, or
            Keras cannot load it; ParityError (a subclass) beyond the bounds.
        OutputError: the files cannot be written (nothing is replaced).
    """
    import onnx

    data = mf.read_model_bytes(path)
    card = mf.verified_card(data, path)
    if card.get("kind") != "generator":
        raise ExportError(f"{path}: a {card.get('kind')} model; only generators are optimized")
    if is_optimized(card):
        raise ExportError(f"{path}: already optimized (its card's parity says so)")
    keras_path = keras_path or path.with_suffix(".keras")
    if not keras_path.is_file():
        raise ExportError(f"{keras_path} not found: the parity check needs the Keras model "
                          f"the ONNX file was exported from")
    model = _load_keras(keras_path)

    conditional = bool(card["conditional"])
    z, labels = draw(PARITY_SEED, 0, PARITY_SAMPLES, int(card["latent_dim"]),
                     int(card["num_classes"]) if conditional else 0)
    feeds = {"z": z, **({"label": labels} if conditional else {})}
    keras_inputs = [z, labels.astype(np.int32)] if conditional else z
    keras_float = np.asarray(model.predict(keras_inputs, batch_size=500, verbose=0))[..., 0]

    original = onnx.load_from_string(data)
    try:
        converted = generator_parity(original, feeds, keras_float)
    except ExportError as e:
        raise ModelError(f"{path}: the shipped graph does not match {keras_path} ({e})") \
            from None
    optimized = optimize(original)
    parity = generator_parity(optimized, feeds, keras_float)
    parity["graph"] = "optimized (export/optimize.py)"
    parity["converted_graph"] = {k: converted[k] for k in
                                 ("max_abs_float", "max_gray_levels", "pixels_differing")}
    card = {k: v for k, v in card.items() if k != mf.HASH_KEY}
    card["parity"] = parity
    card["optimize_command"] = f"python -m export optimize {path}"
    new = finish(optimized, card, path)
    atomic_write_all({path: new, path.with_suffix(".json"): card_json(card),
                      path.with_suffix(".png"): _grid_png(new, card)})
    return card

