"""Loading a verified ONNX model and generating images with it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from . import _card, _latents, _onnxfile, _providers, _registry
from ._card import CARD_KEY  # noqa: F401  (export and the tests import it from here)
from ._card import class_key as _class_key
from ._errors import IntegrityError, ModelError, UsageError


def read_card(path: str | os.PathLike) -> dict:
    """The model card stored in an ONNX file's metadata, without starting a session: its
    seal checked (IntegrityError if any byte of the file changed since export) and its
    fields validated (ModelError)."""
    path = Path(path)
    return _card.read(path, _card.read_file(path))


def _signature(io_args) -> dict:
    return {a.name: {"type": a.type, "shape": [d if isinstance(d, int) else None
                                               for d in a.shape]} for a in io_args}


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _check_graph(path: Path, card: dict, actual: dict) -> None:
    """The session's inputs/outputs (what the graph declares) against the card."""
    def mismatch(what: str):
        raise IntegrityError(f"{path}: the graph does not match its card: {what}")

    if card["kind"] == "generator":
        names = card["input_names"]
        z = actual["inputs"].get(names["z"])
        if z is None or z["shape"] != [None, card["latent_dim"]]:
            mismatch(f"input {names['z']!r} is {json.dumps(z)}, the card says latent_dim "
                     f"{card['latent_dim']}")
        others = sorted(set(actual["inputs"]) - {names["z"]})
        if others != ([names["label"]] if card["conditional"] else []):
            mismatch(f"inputs besides {names['z']!r}: {others}, the card says conditional "
                     f"{str(card['conditional']).lower()}")
        types = [o["type"] for o in actual["outputs"].values()]
        if types != ["tensor(uint8)"]:
            mismatch(f"outputs of types {types}, the card says one tensor(uint8) output")
    expected = {k: card[k] for k in ("inputs", "outputs")}
    if actual != expected:
        mismatch(f"inputs/outputs {json.dumps(actual)}, the card says "
                 f"{json.dumps(expected)}")


def open_session(path: Path, kind: str, device: str = "auto", threads: int | None = None):
    """(onnxruntime session, card) of a verified ganlite model of the given kind."""
    import onnxruntime as ort

    path = Path(path)
    model_bytes = _card.read_file(path)
    card = _card.read(path, model_bytes)   # the seal, then the schema: before onnxruntime
    if card["kind"] != kind:
        raise ModelError(f"{path} is a {card['kind']} model, expected a {kind}")
    try:
        graph = _onnxfile.graph_bytes(model_bytes)
        external = _onnxfile.uses_external_data(graph)
    except ValueError:
        raise ModelError(f"{path} is not a valid ONNX model (no graph)") from None
    if external:
        raise ModelError(f"{path} refers to external data files; ganlite loads "
                         f"self-contained models only")

    providers = _providers.providers_for(device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    try:
        # From bytes, not the path: nothing beside the file is ever opened.
        session = ort.InferenceSession(model_bytes, options, providers=providers)
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise ModelError(f"{path}: onnxruntime cannot load it ({_first_line(e)})") from None
    _providers.check_session(device, providers, session.get_providers())
    _check_graph(path, card, {"inputs": _signature(session.get_inputs()),
                              "outputs": _signature(session.get_outputs())})
    return session, card


def run_checked(path: Path, session, outputs: list[str], feeds: dict) -> list:
    """session.run, with onnxruntime's errors as ModelError."""
    try:
        return session.run(outputs, feeds)
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise ModelError(f"{path}: onnxruntime failed running the model "
                         f"({_first_line(e)})") from None


class Batch(NamedTuple):
    """Images start .. start + len(images) - 1 of a run: uint8 [b, 28, 28], labels [b]."""
    start: int
    images: np.ndarray
    labels: np.ndarray | None


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{name} must be {bound}, got {value}")
    return int(value)


class Generator:
    """A loaded ganlite generator. Safe to share between threads: it holds no state that
    generation changes, and onnxruntime sessions may be run from several threads."""

    def __init__(self, path: str | os.PathLike, device: str = "auto",
                 threads: int | None = None):
        self.path = Path(path)
        self.session, self.card = open_session(self.path, "generator", device, threads)
        self._input_z = self.card["input_names"]["z"]
        self._input_label = self.card["input_names"].get("label")
        self._output = next(iter(self.card["outputs"]))
        # A first batch of 2 before anyone writes anything: a graph that returns the wrong
        # number, type or size of images is refused at load, not after a manifest is out.
        z, y = _latents.draw(0, 0, 2, self.latent_dim,
                             self.num_classes if self.conditional else 0)
        self._run(z, y)

    name = property(lambda self: self.card["name"])
    latent_dim = property(lambda self: int(self.card["latent_dim"]))
    num_classes = property(lambda self: int(self.card.get("num_classes", 0)))
    conditional = property(lambda self: bool(self.card.get("conditional")))
    class_names = property(lambda self: list(self.card.get("class_names", [])))
    providers = property(lambda self: self.session.get_providers())

    def __repr__(self):
        return f"<Generator {self.name!r} latent_dim={self.latent_dim} {self.providers[0]}>"

    def class_index(self, name: str) -> int:
        """The class number of a class name from the card ("sneaker", "Ankle boot",
        "ankle_boot" and "ankle-boot" are the same class)."""
        if not self.conditional:
            raise UsageError(f"model {self.name!r} is unconditional: it has no classes "
                             f"to choose from")
        known = [_class_key(c) for c in self.class_names]
        key = _class_key(str(name))
        if key not in known:
            raise UsageError(f"class {name!r} is not a class of model {self.name!r}; "
                             f"choose from {', '.join(self.class_names)}")
        return known.index(key)

    def _resolve_labels(self, labels, n: int):
        """Labels as given (a class number or name, or one per image) -> None, one int, or
        int64 [n]: names mapped to class numbers, length and range checked once per run."""
        if labels is None:
            return None
        if not self.conditional:
            raise UsageError(f"model {self.name!r} is unconditional: it cannot generate a "
                             f"chosen class (labels/--digit need a conditional model)")
        array = np.asarray(labels)
        if array.dtype.kind in "UO":
            array = np.vectorize(self.class_index, otypes=[np.int64])(array)
        if array.ndim > 1 or (array.ndim == 1 and len(array) != n):
            raise UsageError(f"labels must be one class or one per image ({n}), "
                             f"got shape {array.shape}")
        if array.dtype.kind not in "iu":
            raise UsageError(f"labels must be integers, got {array.dtype}")
        bad = array[(array < 0) | (array >= self.num_classes)]
        if bad.size:
            raise UsageError(f"class {int(bad.flat[0])} out of range: this model has classes "
                             f"0-{self.num_classes - 1}")
        return int(array) if array.ndim == 0 else array.astype(np.int64)

    @staticmethod
    def _slice_labels(labels, start: int, count: int) -> np.ndarray:
        """int64 [count] labels of images start .. start + count - 1 of resolved labels."""
        if np.ndim(labels) == 0:
            return np.full(count, labels, np.int64)
        return labels[start:start + count]

    def decode(self, z: np.ndarray, labels=None) -> np.ndarray:
        """Images of explicit latents z float32 [b, latent_dim] (labels int [b] for
        conditional models) as uint8 [b, 28, 28]."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise UsageError(f"z must be [batch, {self.latent_dim}], got {list(z.shape)}")
        labels = self._resolve_labels(labels, len(z))  # raises for unconditional models
        if self._input_label:
            if labels is None:
                raise UsageError(f"model {self.name!r} is conditional: give labels")
            labels = self._slice_labels(labels, 0, len(z))
        return self._run(z, labels)

    def _run(self, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        """The one place the session runs: images uint8 [b, 28, 28] of latents z [b, ...]
        (and labels int64 [b]), checked before anyone uses them; else ModelError."""
        feeds: dict = {self._input_z: z}
        if self._input_label:
            feeds[self._input_label] = labels
        images = run_checked(self.path, self.session, [self._output], feeds)[0]
        b = len(z)
        if (not isinstance(images, np.ndarray) or images.dtype != np.uint8
                or images.shape != (b, 28, 28)):
            what = (f"{images.dtype} {list(images.shape)}" if isinstance(images, np.ndarray)
                    else type(images).__name__)
            raise ModelError(f"{self.path}: the model returned {what} for a batch of {b}; "
                             f"expected uint8 [{b}, 28, 28]")
        return images

    def check_args(self, n, seed, labels=None, start: int = 0, batch_size: int = 256):
        """Validate generation arguments (UsageError naming the bad one); return
        (n, seed, start, batch_size, labels): ints, and labels resolved (None, one class
        number, or int64 [n])."""
        n = _check_int("n", n, 1)
        seed = _check_int("seed", seed, 0, _latents.MAX_SEED)
        start = _check_int("start", start, 0, n)
        batch_size = _check_int("batch_size", batch_size, 1)
        return n, seed, start, batch_size, self._resolve_labels(labels, n)

    def batches(self, n: int, seed: int = 0, *, labels: int | Sequence[int] | None = None,
                start: int = 0, batch_size: int = 256) -> Iterator[Batch]:
        """Generate images start .. n - 1 in batches; image i depends only on (model, seed, i).

        labels (conditional models): None draws a random class per image; an int (or a
        class name such as "sneaker") gives every image that class; a sequence of n ints
        or names gives image i the class labels[i].
        """
        n, seed, start, batch_size, labels = self.check_args(n, seed, labels, start,
                                                             batch_size)
        for lo in range(start, n, batch_size):
            count = min(batch_size, n - lo)
            z, drawn = _latents.draw(seed, lo, count, self.latent_dim,
                                     self.num_classes if self.conditional else 0)
            y = drawn if labels is None else self._slice_labels(labels, lo, count)
            yield Batch(lo, self._run(z, y), y)

    def generate(self, n: int, seed: int = 0, *, labels=None, batch_size: int = 256):
        """n images as uint8 [n, 28, 28] (0 = black, 255 = white)."""
        return np.concatenate([b.images for b in self.batches(
            n, seed, labels=labels, batch_size=batch_size)])


def load(model: str | os.PathLike | None = None, device: str = "auto",
         threads: int | None = None) -> Generator:
    """Load a generator: a built-in name (see list_models), a path to an .onnx file, or
    None for the default model. device is 'auto', 'cpu' or 'cuda'."""
    return Generator(_registry.resolve(model), device=device, threads=threads)
