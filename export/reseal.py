"""Sealing models exported before model_sha256, in place: bytes only (ganlite.modelfile),
no onnx and no TensorFlow, so it runs in the runtime environment too."""
from __future__ import annotations

import json
from pathlib import Path

from ganlite import IntegrityError, ModelError
from ganlite import modelfile as mf
from ganlite.files import atomic_write_all


def reseal(path: Path) -> str:
    """Seal an exported model in place with model_sha256 (whole file, card included),
    graph and every other byte outside the card kept; its NAME.json copy of the card, if
    any, is rewritten to match. Old cards must still match their graph_sha256; sealed
    ones their model_sha256. Returns the new model_sha256.

    Raises:
        IntegrityError: the model was modified since export (its hash does not match).
        ModelError: not a model with a card, or its NAME.json differs from the card.
        OutputError: the files cannot be written (nothing is replaced).
    """
    data = mf.read_model_bytes(path)
    card = mf.stored_card(data, path)
    if mf.HASH_KEY in card:
        mf.check_seal(data, path)
    elif mf.graph_sha256(data) != card.get(mf.LEGACY_HASH_KEY):
        raise IntegrityError(f"{path}: graph SHA-256 does not match its card; refusing to "
                             f"seal a modified model")
    sealed = mf.seal(data, card)
    new_card = mf.verified_card(sealed, path)     # seal and schema, as the runtime checks
    files = {path: sealed}
    copy = path.with_suffix(".json")
    if copy.exists():
        strip = (mf.HASH_KEY, mf.LEGACY_HASH_KEY)
        try:
            old = json.loads(copy.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            raise ModelError(f"{copy} is not a readable JSON card") from None
        if not isinstance(old, dict) or \
                {k: v for k, v in old.items() if k not in strip} != \
                {k: v for k, v in card.items() if k not in strip}:
            raise ModelError(f"{copy} differs from the card inside {path}")
        # Key order as before, the new hash in place of the old one.
        text = {(mf.HASH_KEY if k == mf.LEGACY_HASH_KEY else k): v for k, v in old.items()}
        text[mf.HASH_KEY] = new_card[mf.HASH_KEY]
        files[copy] = json.dumps(text, indent=2).encode()
    atomic_write_all(files)
    return new_card[mf.HASH_KEY]
