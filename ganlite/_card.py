"""The model card: where it lives in an ONNX file, its schema, and its seal.

The card is JSON in the ModelProto's metadata_props under "ganlite.card". Its
"model_sha256" seals the whole file, card included:

    SHA-256( file[:start] + canonical card field without model_sha256 + file[end:] )

where file[start:end] is the top-level metadata_props field that holds the card, and the
canonical card field is that field re-encoded (shortest lengths, key then value) around
canonical_json(card). A sealed file holds its card field in exactly that canonical form
(with model_sha256 in the JSON), so no byte anywhere in the file can change without the
check failing. Pure bytes: no onnx import.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from . import _onnxfile
from ._errors import IntegrityError, ModelError

CARD_KEY = "ganlite.card"
HASH_KEY = "model_sha256"
LEGACY_HASH_KEY = "graph_sha256"     # cards before model_sha256: hashed the graph only
METADATA_FIELD = 14                  # ModelProto.metadata_props: key = 1, value = 2

KINDS = ("generator", "classifier")
MAX_TEXT = 64                        # names, class names, dataset
MAX_LATENT_DIM = 4096
MAX_CLASSES = 1000
MAX_FEATURE_DIM = 4096
IMAGE = {"type": "tensor(uint8)", "shape": [None, 28, 28]}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MISSING = object()


def canonical_json(card: dict) -> str:
    """The one serialization of a card that a sealed file may hold."""
    return json.dumps(card, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _card_field(card: dict) -> bytes:
    entry = (_onnxfile.encode_field(1, CARD_KEY.encode())
             + _onnxfile.encode_field(2, canonical_json(card).encode()))
    return _onnxfile.encode_field(METADATA_FIELD, entry)


def _find(model_bytes: bytes) -> tuple[bytes | None, int, int]:
    """(card JSON bytes or None, start, end) of the card's metadata_props field; raises
    ValueError on a malformed file or more than one card."""
    found = []
    for number, wire, value, start, end in _onnxfile.spans(model_bytes):
        if number == METADATA_FIELD and wire == 2:
            entry = {n: v for n, w, v in _onnxfile.fields(value) if w == 2}
            if entry.get(1) == CARD_KEY.encode():
                found.append((entry.get(2, b""), start, end))
    if len(found) > 1:
        raise ValueError(f"{len(found)} model cards")
    return found[0] if found else (None, len(model_bytes), len(model_bytes))


def _locate(path, model_bytes: bytes) -> tuple[dict, int, int]:
    try:
        text, start, end = _find(model_bytes)
    except ValueError as e:
        what = "it holds several model cards" if "model cards" in str(e) else \
            "truncated or corrupt"
        raise ModelError(f"{path} is not a valid ONNX model ({what})") from None
    if text is None:
        raise ModelError(f"{path} has no ganlite model card: not a model exported by "
                         f"`python -m export`")
    try:
        card = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ModelError(f"{path}: its model card is not valid JSON") from None
    if not isinstance(card, dict):
        raise ModelError(f"{path}: its model card is not a JSON object")
    return card, start, end


def _digest(model_bytes: bytes, start: int, end: int, card: dict) -> str:
    unsealed = {k: v for k, v in card.items() if k != HASH_KEY}
    view = memoryview(model_bytes)
    h = hashlib.sha256(view[:start])
    h.update(_card_field(unsealed))
    h.update(view[end:])
    return h.hexdigest()


def unverified_card(path, model_bytes: bytes) -> tuple[dict, int, int]:
    """(card, start, end) as stored, nothing checked but the file's structure."""
    return _locate(path, model_bytes)


def check_seal(path, model_bytes: bytes) -> dict:
    """The card of a file whose seal holds; IntegrityError if any byte differs from what
    was sealed, or the file was never sealed."""
    card, start, end = _locate(path, model_bytes)
    sealed = card.get(HASH_KEY)
    if sealed is None:
        if LEGACY_HASH_KEY in card:
            raise IntegrityError(f"{path} was exported by an older version of ganlite (its "
                                 f"card covers only the graph): re-export it, or reseal it "
                                 f"with `python -m export reseal`")
        raise IntegrityError(f"{path}: its model card has no {HASH_KEY}: the model was not "
                             f"sealed by `python -m export`")
    if not isinstance(sealed, str) or not _HEX64.fullmatch(sealed):
        raise IntegrityError(f"{path}: {HASH_KEY} in its card is not a SHA-256 hex digest: "
                             f"the model was modified after export")
    try:
        canonical = _card_field(card)
    except ValueError:  # NaN or infinity in the card
        canonical = None
    if canonical != model_bytes[start:end]:
        raise IntegrityError(f"{path}: its model card is not stored as sealed: the model was "
                             f"modified after export")
    if _digest(model_bytes, start, end, card) != sealed:
        raise IntegrityError(f"{path}: SHA-256 of the model does not match its card: the "
                             f"model was modified after export")
    return card


def read(path, model_bytes: bytes) -> dict:
    """The card of a sealed model, its seal checked and its fields validated."""
    return validate_card(check_seal(path, model_bytes), path)


def seal(model_bytes: bytes, card: dict | None = None) -> bytes:
    """The serialized model with its card (card, or the one it holds) stored in canonical
    form and sealed with model_sha256 over the whole file. Every other byte is kept: the
    card field stays where it was (or is appended). The card's legacy graph_sha256 is
    dropped. Raises ValueError on a malformed file or a card JSON cannot represent."""
    text, start, end = _find(model_bytes)
    if card is None:
        if text is None:
            raise ValueError("the model holds no card to seal")
        card = json.loads(text.decode("utf-8"))
    card = {k: v for k, v in card.items() if k not in (HASH_KEY, LEGACY_HASH_KEY)}
    prefix, suffix = model_bytes[:start], model_bytes[end:]
    digest = hashlib.sha256(prefix + _card_field(card) + suffix).hexdigest()
    return prefix + _card_field({**card, HASH_KEY: digest}) + suffix


# -- schema ----------------------------------------------------------------------------

def class_key(name: str) -> str:
    """Class names compare by this key: "Ankle boot", "ankle_boot", "ankle-boot" are one."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def _show(value) -> str:
    if value is _MISSING:
        return "nothing (the field is missing)"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    def __init__(self, card: dict, path):
        self.card, self.path = card, path

    def fail(self, field: str, expected: str, got) -> None:
        raise ModelError(f"{self.path}: model card field {field!r} must be {expected}, "
                         f"got {_show(got)}")

    def get(self, field: str):
        return self.card.get(field, _MISSING)

    def int(self, field: str, low: int, high: int, value=_MISSING) -> int:
        value = self.get(field) if value is _MISSING else value
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(field, f"an integer {low}-{high}", value)
        return value

    def text(self, field: str, value=_MISSING) -> str:
        value = self.get(field) if value is _MISSING else value
        if (not isinstance(value, str) or not 1 <= len(value) <= MAX_TEXT
                or not value.isprintable()):
            self.fail(field, f"a text of 1-{MAX_TEXT} printable characters", value)
        return value

    def signatures(self, field: str) -> dict:
        """inputs/outputs: {name: {"type": str, "shape": [int >= 1 or null, ...]}}."""
        value = self.get(field)
        expected = 'an object {name: {"type": "tensor(...)", "shape": [...]}}'
        if not isinstance(value, dict) or not value:
            self.fail(field, expected, value)
        for name, sig in value.items():
            if (not name or not isinstance(sig, dict) or set(sig) != {"type", "shape"}
                    or not isinstance(sig["type"], str) or not isinstance(sig["shape"], list)
                    or len(sig["shape"]) > 8
                    or any(d is not None and (isinstance(d, bool) or not isinstance(d, int)
                                              or d < 1) for d in sig["shape"])):
                self.fail(f"{field}.{name}", 'an object {"type": "tensor(...)", "shape": '
                                             '[int >= 1 or null, ...]}', sig)
        return value

    def signature(self, field: str, actual, expected: dict) -> None:
        if actual != expected:
            self.fail(field, _show(expected), actual)


def validate_card(card: dict, path) -> dict:
    """card, if every field the runtime uses has the right type and range and the fields
    agree with each other; else ModelError naming the file, the field and what was
    expected."""
    c = _Checker(card, path)
    kind = c.get("kind")
    if kind not in KINDS:
        c.fail("kind", " or ".join(map(repr, KINDS)), kind)
    c.text("name")
    if "dataset" in card:
        c.text("dataset")
    if not isinstance(c.get(HASH_KEY), str) or not _HEX64.fullmatch(c.get(HASH_KEY)):
        c.fail(HASH_KEY, "a SHA-256 of 64 lowercase hex digits", c.get(HASH_KEY))
    inputs, outputs = c.signatures("inputs"), c.signatures("outputs")
    if kind == "classifier":
        classes = c.int("num_classes", 2, MAX_CLASSES)
        c.signature("inputs", inputs, {"image": IMAGE})
        if set(outputs) != {"probs", "features"}:
            c.fail("outputs", 'the outputs "probs" and "features"', sorted(outputs))
        c.signature("outputs.probs", outputs["probs"],
                    {"type": "tensor(float)", "shape": [None, classes]})
        features = outputs["features"]
        shape = features["shape"]
        if features["type"] != "tensor(float)" or len(shape) != 2 or shape[0] is not None \
                or not isinstance(shape[1], int) or shape[1] > MAX_FEATURE_DIM:
            c.fail("outputs.features", f'{{"type": "tensor(float)", "shape": [null, d]}} with '
                                       f'd at most {MAX_FEATURE_DIM}', features)
        if "feature_dim" in card and c.get("feature_dim") != shape[1]:
            c.fail("feature_dim", f"the width of output features ({shape[1]})",
                   c.get("feature_dim"))
        return card

    latent_dim = c.int("latent_dim", 1, MAX_LATENT_DIM)
    conditional = c.get("conditional")
    if not isinstance(conditional, bool):
        c.fail("conditional", "true or false", conditional)
    if conditional or "num_classes" in card or "class_names" in card:
        classes = c.int("num_classes", 2, MAX_CLASSES)
        names = c.get("class_names")
        if not isinstance(names, list) or len(names) != classes:
            c.fail("class_names", f"a list of num_classes ({classes}) class names", names)
        keys = [class_key(c.text(f"class_names[{i}]", name)) for i, name in enumerate(names)]
        if len(set(keys)) != len(keys):
            c.fail("class_names", "distinct class names", names)
    input_names = c.get("input_names")
    wanted = {"z", "label"} if conditional else {"z"}
    if (not isinstance(input_names, dict) or set(input_names) != wanted
            or not all(isinstance(v, str) for v in input_names.values())):
        c.fail("input_names", f"an object naming the graph inputs {sorted(wanted)} "
                              f"(conditional is {str(conditional).lower()})", input_names)
    if sorted(input_names.values()) != sorted(inputs):
        c.fail("input_names", f"the names of the card's inputs {sorted(inputs)}, each once",
               input_names)
    c.signature(f"inputs.{input_names['z']}", inputs[input_names["z"]],
                {"type": "tensor(float)", "shape": [None, latent_dim]})
    if conditional:
        c.signature(f"inputs.{input_names['label']}", inputs[input_names["label"]],
                    {"type": "tensor(int64)", "shape": [None]})
    if len(outputs) != 1:
        c.fail("outputs", "one output (the images)", sorted(outputs))
    name, signature = next(iter(outputs.items()))
    c.signature(f"outputs.{name}", signature, IMAGE)
    return card


def read_file(path: Path) -> bytes:
    """The bytes of a model file; ModelError if it is missing or unreadable."""
    if not path.exists():
        raise ModelError(f"model file {path} not found")
    if not path.is_file():
        raise ModelError(f"model {path} is not a file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ModelError(f"model file {path} cannot be read ({e.strerror})") from None
