"""Writing a run folder's files atomically (ganlite.files under the hood): JSON records
and Keras models, so that a killed run never leaves half a file for --resume or export."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ganlite.files import atomic_write, atomic_write_bytes


def write_json(path: Path, data: dict) -> None:
    """`data` as indented JSON, atomically (raises OutputError if it cannot be written)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def save_keras(model, path: Path) -> None:
    """model.save(path), atomically. Keras insists on a path ending in .keras, so it saves
    into a private folder beside `path` first; the result is renamed into place."""
    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{path.name}.") as folder:
            staged = Path(folder) / path.name
            model.save(staged)
            os.replace(staged, tmp)
    atomic_write(path, write)
