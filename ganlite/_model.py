"""Loading a verified ONNX model and generating images with it."""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Union

import numpy as np

from . import _card, _latents, _onnxfile, _openvino, _providers, _registry
from ._card import CARD_KEY  # noqa: F401  (export and the tests import it from here)
from ._card import class_key as _class_key
from ._errors import IntegrityError, ModelError, UsageError, describe
from .latents import check_truncation
from .modelfile import _signature  # the one I/O signature: public as modelfile.io_signature


def read_card(model: str | os.PathLike | None = None) -> dict:
    """The model card stored in an ONNX file's metadata, without starting a session: its
    seal checked and its fields validated.

    Args:
        model: a built-in model name, a path to an .onnx file, or None (the default model).

    Raises:
        UnknownModelError: no built-in model has that name and no file that path.
        IntegrityError: a byte of the file changed since export.
        ModelError: the file is missing, unreadable, or its card is not valid.
    """
    path = _registry.resolve(model)
    return _card.read(path, _card.read_file(path))


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
    """(session, card) of a verified ganlite model of the given kind: an onnxruntime
    session, or for the OpenVINO devices an _openvino.Session that behaves like one."""
    path = Path(path)
    model_bytes = _card.read_file(path)
    card = _card.read(path, model_bytes)   # the seal, then the schema: before any runtime
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

    if _providers.check_device(device) in _providers.OPENVINO_DEVICES:
        session = _openvino_session(path, model_bytes, device, kind, threads)
    else:
        session = _onnxruntime_session(path, model_bytes, device, threads)
    _check_graph(path, card, {"inputs": _signature(session.get_inputs()),
                              "outputs": _signature(session.get_outputs())})
    return session, card


def _onnxruntime_session(path: Path, model_bytes: bytes, device: str, threads: int | None):
    import onnxruntime as ort

    providers = _providers.providers_for(device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.log_severity_level = 4   # fatal only: errors are ours to report, once
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    try:
        # From bytes, not the path: nothing beside the file is ever opened.
        session = ort.InferenceSession(model_bytes, options, providers=providers)
    except Exception as e:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise ModelError(f"{path}: onnxruntime cannot load it ({_first_line(e)})") from None
    _providers.check_session(device, providers, session.get_providers())
    return session


def _openvino_session(path: Path, model_bytes: bytes, device: str, kind: str,
                      threads: int | None) -> _openvino.Session:
    core, config = _openvino.config_for(device, kind, threads)   # DeviceError
    try:
        session = _openvino.Session(core, model_bytes, config)
    except Exception as e:  # noqa: BLE001  (OpenVINO raises its own exception types)
        raise ModelError(f"{path}: OpenVINO cannot load it ({_openvino.error_line(e)})") \
            from None
    _openvino.check_compiled(device, config, session.devices, session.precision)
    return session


@dataclass(frozen=True)
class LabelCycle:
    """Labels that repeat a list of classes: image i gets classes[i % len(classes)].

    `LabelCycle(range(10))` draws every class in turn (n/10 images each); `LabelCycle([3,
    7])` alternates 3 and 7. Classes are numbers or class names of the model's card.
    """
    classes: tuple[int | str, ...]

    def __init__(self, classes: Iterable[int | str]):
        object.__setattr__(self, "classes", tuple(classes))


# What `labels=` accepts, and what it becomes once checked against a model.
Labels = Union[int, str, Sequence[Union[int, str]], np.ndarray, LabelCycle, None]
ResolvedLabels = Union[int, tuple[int, ...], np.ndarray, None]

# generate() holds its result in memory: refuse more than this (batches() streams and
# write_images() writes to disk without a limit).
MAX_IN_MEMORY_BYTES = 4 * 2**30
# Above this, onnxruntime's buffers for one call (~0.3 MB per image for the DCGAN) exceed
# several GB without being any faster.
MAX_BATCH_SIZE = 16_384
IMAGE_BYTES = 28 * 28


def run_checked(path: Path, session, outputs: list[str], feeds: dict) -> list:
    """session.run, with the runtime's errors as ModelError (and not also logged by
    onnxruntime on stderr: the error is reported once, as one line)."""
    if isinstance(session, _openvino.Session):
        run = functools.partial(session.run, outputs, feeds)
        runtime, line = "OpenVINO", _openvino.error_line
    else:
        import onnxruntime as ort

        options = ort.RunOptions()
        options.log_severity_level = 4   # fatal only (3 is error)
        run = functools.partial(session.run, outputs, feeds, options)
        runtime, line = "onnxruntime", _first_line
    try:
        return run()
    except Exception as e:  # noqa: BLE001  (each runtime raises its own exception types)
        raise ModelError(f"{path}: {runtime} failed running the model ({line(e)})") \
            from None


class Batch(NamedTuple):
    """Images start .. start + len(images) - 1 of a run.

    Attributes:
        start: index of the first image in the run.
        images: uint8 [b, 28, 28], 0 = black, 255 = white.
        labels: int64 [b], the class of each image (None for unconditional models).
    """
    start: int
    images: np.ndarray
    labels: np.ndarray | None


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be an integer, got {describe(value)}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"{name} must be {bound}, got {value}")
    return int(value)


class Generator:
    """A loaded ganlite generator. Safe to share between threads: it holds no state that
    generation changes, and onnxruntime sessions may be run from several threads."""

    def __init__(self, model: str | os.PathLike | None = None, device: str = "auto",
                 threads: int | None = None):
        """Load a generator: a built-in name, a path to an .onnx file, or None (the
        default model); see load()."""
        if threads is not None:
            threads = _check_int("threads", threads, 1, 1024)
        self.path = _registry.resolve(model)
        self.session, self.card = open_session(self.path, "generator", device, threads)
        self._input_z = self.card["input_names"]["z"]
        self._input_label = self.card["input_names"].get("label")
        self._output = next(iter(self.card["outputs"]))

    @property
    def name(self) -> str:
        """The model's name, from its card (e.g. "mnist-cdcgan")."""
        return str(self.card["name"])

    @property
    def latent_dim(self) -> int:
        """Width of the latent z: decode() takes float32 [b, latent_dim]."""
        return int(self.card["latent_dim"])

    @property
    def conditional(self) -> bool:
        """True if the model takes a class label (labels=, --digit, --class)."""
        return bool(self.card.get("conditional"))

    @property
    def num_classes(self) -> int:
        """Number of classes of a conditional model (0 for an unconditional one)."""
        return int(self.card.get("num_classes", 0)) if self.conditional else 0

    @property
    def class_names(self) -> list[str]:
        """Class names in class-number order (empty for an unconditional model)."""
        return [str(c) for c in self.card.get("class_names", [])] if self.conditional else []

    @property
    def providers(self) -> list[str]:
        """onnxruntime execution providers of the session, the one in use first; on the
        OpenVINO devices ["openvino (CPU)"] or ["openvino (CPU, bf16)"]."""
        return list(self.session.get_providers())

    def __repr__(self) -> str:
        return f"<Generator {self.name!r} latent_dim={self.latent_dim} {self.providers[0]}>"

    def class_index(self, name: str) -> int:
        """The class number of a class name from the card ("sneaker", "Ankle boot",
        "ankle_boot" and "ankle-boot" are the same class).

        Raises:
            UsageError: the model is unconditional, or has no such class (the message
                lists its classes).
        """
        if not self.conditional:
            raise UsageError(f"model {self.name!r} is unconditional: it has no classes "
                             f"to choose from")
        known = [_class_key(c) for c in self.class_names]
        key = _class_key(str(name))
        if key not in known:
            raise UsageError(f"class {name!r} is not a class of model {self.name!r}; "
                             f"choose from {', '.join(self.class_names)}")
        return known.index(key)

    def _resolve_labels(self, labels: Labels, n: int) -> ResolvedLabels:
        """Labels as given -> None (random), one class number, a tuple of class numbers
        (a cycle) or int64 [n] (one per image): names mapped to class numbers, length and
        range checked once per run."""
        if labels is None:
            return None
        if not self.conditional:
            raise UsageError(f"model {self.name!r} is unconditional: it cannot generate a "
                             f"chosen class (labels need a conditional model)")
        if isinstance(labels, LabelCycle):
            classes = self._class_numbers(labels.classes)
            if classes.ndim != 1 or not len(classes):
                raise UsageError("a label cycle needs at least one class")
            return tuple(int(c) for c in classes)
        array = self._class_numbers(labels)
        if array.ndim > 1 or (array.ndim == 1 and len(array) != n):
            raise UsageError(f"labels must be one class or one per image ({n}), "
                             f"got shape {array.shape}")
        return int(array) if array.ndim == 0 else array.astype(np.int64)

    def _class_numbers(self, labels: object) -> np.ndarray:
        """Class numbers or names (any shape) -> int array, each checked in range."""
        try:
            array = np.asarray(labels)
        except (ValueError, TypeError):
            raise UsageError(f"labels must be class numbers or names, got {describe(labels)}") \
                from None
        if array.dtype.kind in "UO":
            array = np.vectorize(self.class_index, otypes=[np.int64])(array) if array.size \
                else array.astype(np.int64)
        if array.dtype.kind not in "iu":
            raise UsageError(f"labels must be class numbers or names, got {array.dtype}")
        bad = array[(array < 0) | (array >= self.num_classes)]
        if bad.size:
            raise UsageError(f"class {int(bad.flat[0])} out of range: this model has classes "
                             f"0-{self.num_classes - 1}")
        return array

    @staticmethod
    def _slice_labels(labels: ResolvedLabels, start: int, count: int) -> np.ndarray:
        """int64 [count] labels of images start .. start + count - 1 of resolved labels."""
        if isinstance(labels, tuple):
            return np.asarray(labels, np.int64)[np.arange(start, start + count) % len(labels)]
        if isinstance(labels, np.ndarray):
            return labels[start:start + count]
        return np.full(count, labels, np.int64)

    def decode(self, z: np.ndarray, labels: Labels = None) -> np.ndarray:
        """Images of explicit latents.

        Args:
            z: float32 [b, latent_dim], finite, 1 <= b <= MAX_BATCH_SIZE.
            labels: conditional models (required): one class, or one per latent (numbers
                or class names).

        Returns:
            uint8 [b, 28, 28], 0 = black, 255 = white.

        Raises:
            UsageError: z of the wrong shape or not finite, labels missing or out of range.
            ModelError: the model returned something other than b images.
        """
        try:
            z = np.asarray(z, np.float32)
        except (ValueError, TypeError):
            raise UsageError(f"z must be float32 [batch, {self.latent_dim}]") from None
        if z.ndim != 2 or z.shape[1] != self.latent_dim or not len(z):
            raise UsageError(f"z must be [batch, {self.latent_dim}], got {list(z.shape)}")
        if len(z) > MAX_BATCH_SIZE:
            raise UsageError(f"decode() takes at most {MAX_BATCH_SIZE} latents at a time, "
                             f"got {len(z)}")
        if not np.isfinite(z).all():
            raise UsageError("z holds NaN or infinite values")
        resolved = self._resolve_labels(labels, len(z))  # raises for unconditional models
        if self._input_label and resolved is None:
            raise UsageError(f"model {self.name!r} is conditional: give labels")
        return self._run(z, None if resolved is None
                         else self._slice_labels(resolved, 0, len(z)))

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

    def check_args(self, n: int, seed: int, labels: Labels = None, start: int = 0,
                   batch_size: int = 256) -> tuple[int, int, int, int, ResolvedLabels]:
        """Validate generation arguments.

        Returns:
            (n, seed, start, batch_size, labels): ints, and labels resolved (None, one
            class number, a tuple of class numbers to cycle, or int64 [n]).

        Raises:
            UsageError: naming the bad argument and its valid range.
        """
        n = _check_int("n", n, 1)
        seed = _check_int("seed", seed, 0, _latents.MAX_SEED)
        start = _check_int("start", start, 0, n)
        batch_size = _check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        return n, seed, start, batch_size, self._resolve_labels(labels, n)

    def batches(self, n: int, seed: int = 0, *, labels: Labels = None,
                start: int = 0, batch_size: int = 256,
                truncation: float | None = None) -> Iterator[Batch]:
        """Generate images start .. n - 1 in batches; image i depends only on (model, seed,
        i, truncation).

        labels (conditional models): None draws a random class per image; an int (or a
        class name such as "sneaker") gives every image that class; a sequence of n ints
        or names gives image i the class labels[i]; a LabelCycle repeats its classes.
        truncation: None (off) or psi, 0 < psi <= 10: the truncation trick, every latent
        component beyond +-psi redrawn within it (see ganlite.latents); smaller psi gives
        more typical, less varied images. Labels do not change with it.
        """
        n, seed, start, batch_size, resolved = self.check_args(n, seed, labels, start,
                                                               batch_size)
        psi = check_truncation(truncation)
        for lo in range(start, n, batch_size):
            z, y = self._inputs(seed, lo, min(batch_size, n - lo), resolved, psi)
            yield Batch(lo, self._run(z, y), y)

    def _inputs(self, seed: int, start: int, count: int, labels: ResolvedLabels,
                truncation: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Latents float32 [count, latent_dim] and labels int64 [count] (None for
        unconditional models) of images start .. start + count - 1 of a run."""
        z, drawn = _latents.draw(seed, start, count, self.latent_dim,
                                 self.num_classes if self.conditional else 0, truncation)
        return z, (drawn if labels is None else self._slice_labels(labels, start, count))

    def generate(self, n: int, seed: int = 0, *, labels: Labels = None,
                 batch_size: int = 256, truncation: float | None = None) -> np.ndarray:
        """n images as uint8 [n, 28, 28] (0 = black, 255 = white), held in memory.

        labels and truncation as for batches().

        Raises:
            UsageError: a bad argument, or a result larger than MAX_IN_MEMORY_BYTES (4 GiB,
                about 5.4 million images): stream with batches() or write to disk with
                write_images() instead.
        """
        n = _check_int("n", n, 1)
        if n * IMAGE_BYTES > MAX_IN_MEMORY_BYTES:
            raise UsageError(f"{n:,} images need {n * IMAGE_BYTES / 2**30:,.1f} GiB in memory; "
                             f"generate() returns at most {MAX_IN_MEMORY_BYTES // IMAGE_BYTES:,}"
                             f" images: use batches() to stream them or write_images() to "
                             f"write them to disk")
        images = np.empty((n, 28, 28), np.uint8)
        for batch in self.batches(n, seed, labels=labels, batch_size=batch_size,
                                  truncation=truncation):
            images[batch.start:batch.start + len(batch.images)] = batch.images
        return images


def load(model: str | os.PathLike | None = None, device: str = "auto",
         threads: int | None = None) -> Generator:
    """Load a generator.

    Args:
        model: a built-in name (see list_models()), a path to an .onnx file exported by
            `python -m export`, or None for the default model (DEFAULT_MODEL).
        device: "auto" (CUDA when onnxruntime offers it, else the CPU), "cpu", "cuda",
            "openvino" (OpenVINO's runtime on the CPU, float32; needs the extra
            ganlite[openvino]) or "openvino-bf16" (the same with bfloat16 arithmetic, on a
            CPU with AMX or AVX512_BF16; classifiers still run in float32).
        threads: inference threads (default: the runtime's choice).

    Returns:
        A Generator, safe to share between threads.

    Raises:
        UnknownModelError: no built-in model has that name and no file that path.
        ModelError: the file is not a sealed, valid ganlite generator (IntegrityError if it
            was modified after export).
        DeviceError: an unknown device, or one this machine cannot provide (onnxruntime
            without the CUDA provider, OpenVINO not installed, a CPU without bf16).
    """
    return Generator(model, device=device, threads=threads)


def list_models(kind: str | None = "generator") -> dict[str, Path]:
    """The built-in models: {name: path of the .onnx file}.

    Args:
        kind: "generator" (what load() takes), "classifier" (what Evaluator uses), or None
            for every built-in model.

    Raises:
        UsageError: an unknown kind.
    """
    if kind is not None and (not isinstance(kind, str) or kind not in _card.KINDS):
        raise UsageError(f"unknown model kind {describe(kind)}; choose one of "
                         f"{', '.join(_card.KINDS)} (or None for all)")
    models = _registry.builtin_models()
    if kind is None:
        return models
    return {name: path for name, path in models.items()
            if _card.read(path, _card.read_file(path))["kind"] == kind}
