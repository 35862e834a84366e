"""The ganlite model file, for tools that make or repair models (export): where the card
lives, its seal, and the I/O signature the card records. Pure bytes, no onnx package.

    from ganlite import modelfile
    card["inputs"], card["outputs"] = modelfile.io_signature(session).values()
    sealed = modelfile.seal(model_bytes, card)         # card stored, model_sha256 set
    modelfile.verified_card(sealed, "NAME.onnx")       # as the runtime checks it

The card is JSON in the ONNX metadata under CARD_KEY; HASH_KEY (model_sha256) seals the
whole file, card included. Cards of older exports carry LEGACY_HASH_KEY (graph_sha256, a
hash of the graph only) instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from . import _card, _onnxfile
from ._errors import ModelError, UsageError, describe

__all__ = ["CARD_KEY", "HASH_KEY", "LEGACY_HASH_KEY", "MAX_LATENT_DIM", "MAX_TEXT",
           "check_seal", "graph_sha256", "io_signature", "read_model_bytes", "seal",
           "stored_card", "verified_card"]

CARD_KEY = _card.CARD_KEY
HASH_KEY = _card.HASH_KEY
LEGACY_HASH_KEY = _card.LEGACY_HASH_KEY
# Limits of the card schema the runtime enforces: latent_dim, and the length of a name
# (model name, class names, dataset).
MAX_LATENT_DIM = _card.MAX_LATENT_DIM
MAX_TEXT = _card.MAX_TEXT


class _Session(Protocol):
    def get_inputs(self) -> list[Any]: ...
    def get_outputs(self) -> list[Any]: ...


def _signature(io_args: list[Any]) -> dict:
    """{name: {"type": "tensor(...)", "shape": [int or None, ...]}} of onnxruntime's
    NodeArgs (symbolic dimensions become None)."""
    return {a.name: {"type": a.type, "shape": [d if isinstance(d, int) else None
                                               for d in a.shape]} for a in io_args}


def io_signature(session: _Session) -> dict[str, dict]:
    """The inputs and outputs of an onnxruntime session as a card records them.

    Args:
        session: an onnxruntime.InferenceSession (anything with get_inputs/get_outputs).

    Returns:
        {"inputs": {name: {"type": "tensor(float)", "shape": [None, 100]}, ...},
         "outputs": {...}}; symbolic dimensions are None.

    Raises:
        UsageError: `session` has no get_inputs/get_outputs.
    """
    try:
        inputs, outputs = session.get_inputs(), session.get_outputs()
    except AttributeError:
        raise UsageError(f"expected an onnxruntime session, got {describe(session)}") \
            from None
    return {"inputs": _signature(inputs), "outputs": _signature(outputs)}


def _bytes(model_bytes: object) -> bytes:
    if not isinstance(model_bytes, (bytes, bytearray)):
        raise UsageError(f"model_bytes must be bytes, got {describe(model_bytes)}")
    return bytes(model_bytes)


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a model file.

    Raises:
        UsageError: `path` is not a path.
        ModelError: the file is missing, not a file, or unreadable.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise UsageError(f"a model path must be a path, got {describe(path)}")
    return _card.read_file(Path(path))


def seal(model_bytes: bytes, card: dict) -> bytes:
    """The serialized model with `card` stored in its canonical form and sealed with
    model_sha256 over the whole file. Every other byte is kept (the card entry stays where
    it was, or is appended); the card's own hash keys are replaced.

    Args:
        model_bytes: a serialized ONNX ModelProto.
        card: the card, a JSON object (no NaN or infinity).

    Returns:
        The sealed model's bytes; its card is `card` plus model_sha256.

    Raises:
        UsageError: `card` is not a dict that JSON can represent.
        ModelError: `model_bytes` is not a well-formed ONNX file, or holds several cards.
    """
    model_bytes = _bytes(model_bytes)
    if not isinstance(card, dict):
        raise UsageError(f"card must be a dict, got {describe(card)}")
    try:
        _card.canonical_json(card)
    except (TypeError, ValueError) as e:
        raise UsageError(f"card cannot be stored as JSON ({e})") from None
    try:
        return _card.seal(model_bytes, card)
    except ValueError as e:
        raise ModelError(f"cannot seal: not a well-formed ONNX file ({e})") from None


def stored_card(model_bytes: bytes, source: str | os.PathLike = "model") -> dict:
    """The card as stored in the file, nothing checked but the file's structure.

    Args:
        model_bytes: the file's bytes.
        source: the file's name, for messages.

    Raises:
        ModelError: malformed file, no card, several cards, or a card that is not a JSON
            object.
    """
    card, _, _ = _card.unverified_card(source, _bytes(model_bytes))
    return card


def check_seal(model_bytes: bytes, source: str | os.PathLike = "model") -> dict:
    """The card of a file whose seal holds (its fields not validated).

    Raises:
        IntegrityError: a byte differs from what was sealed, or the file was never sealed
            (the message says whether it is an older export to reseal).
        ModelError: malformed file or card.
    """
    return _card.check_seal(source, _bytes(model_bytes))


def verified_card(model_bytes: bytes, source: str | os.PathLike = "model") -> dict:
    """The card exactly as the runtime accepts it: seal checked, every field the runtime
    uses validated against the schema and the card's I/O signature.

    Raises:
        IntegrityError: the seal does not hold.
        ModelError: malformed file, or a card field of the wrong type, range or
            consistency (the message names the field).
    """
    return _card.read(source, _bytes(model_bytes))


def graph_sha256(model_bytes: bytes) -> str:
    """SHA-256 (hex) of the serialized graph alone: what LEGACY_HASH_KEY of an older card
    recorded.

    Raises:
        ModelError: not a well-formed ONNX file, or no graph.
    """
    try:
        return _onnxfile.graph_sha256(_bytes(model_bytes))
    except ValueError as e:
        raise ModelError(f"not a well-formed ONNX file ({e})") from None
