"""What every exported model shares: the card stamped into the ONNX metadata, sealed and
verified as the runtime will verify it, and the versions it records. Used by the export
of a run (export/model.py) and by the int8 variants (export/int8.py)."""
from __future__ import annotations

import json
from pathlib import Path

from ganlite import modelfile

from .errors import ExportError

PIXEL_FORMAT = "uint8 [batch, 28, 28], 0 = black, 255 = white (grayscale)"
EXPORT_MODULES = ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime")


def export_versions() -> dict[str, str]:
    """Python and the converting stack's versions, for the card."""
    from train.versions import versions

    return versions(*EXPORT_MODULES)


def finish(proto, card: dict, out: Path) -> bytes:
    """Stamp `card` into the ONNX model (its I/O signature filled in from an onnxruntime
    session), check the graph, and seal it (model_sha256 over the whole file, card
    included). `card` gains the signature and the hash. The result is verified exactly
    as ganlite verifies a model before use.

    Raises:
        ExportError: onnx's checker or onnxruntime refuses the graph.
        ModelError: the card does not pass the runtime's schema (names the field).
    """
    import onnx

    session = cpu_session(proto, f"{out}: ")
    card.update(modelfile.io_signature(session))
    for key in (modelfile.HASH_KEY, modelfile.LEGACY_HASH_KEY):
        card.pop(key, None)
    proto.producer_name = "ganlite-export"
    proto.doc_string = f"{card['name']}: {card.get('summary', '')}"
    onnx.helper.set_model_props(proto, {
        modelfile.CARD_KEY: json.dumps(card),
        "Image.BitmapPixelFormat": "Gray8",
        "Image.NominalPixelRange": "NominalRange_0_255",
    })
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"{out}: onnx's checker refuses the converted graph "
                          f"({_first_line(e)})") from None
    data = modelfile.seal(proto.SerializeToString(), card)
    card[modelfile.HASH_KEY] = modelfile.verified_card(data, out)[modelfile.HASH_KEY]
    return data


def cpu_session(proto, where: str = ""):
    """An onnxruntime CPU session of a converted graph (ExportError if refused)."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(proto.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise ExportError(f"{where}onnxruntime cannot load the converted graph "
                          f"({_first_line(e)})") from None


def card_json(card: dict) -> bytes:
    """The NAME.json copy of a card."""
    return (json.dumps(card, indent=2)).encode()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]
