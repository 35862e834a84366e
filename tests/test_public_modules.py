"""The public helper modules that training and export build on (ganlite.pixels, datasets,
metrics, latents, modelfile, files): their contracts, their errors, and that train/ and
export/ use nothing private of ganlite. Runtime only: numpy, no TensorFlow."""
from __future__ import annotations

import ast
import gzip
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_SMALL, TINY_UNCONDITIONAL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ganlite
from ganlite import datasets, latents, metrics, modelfile, pixels
from ganlite.files import atomic_write, atomic_write_all, atomic_write_bytes

ROOT = Path(__file__).resolve().parent.parent


# -- pixels ------------------------------------------------------------------------------

def test_to_uint8_inverts_to_unit_range_for_every_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    unit = pixels.to_unit_range(levels)
    assert unit.dtype == np.float32 and unit.min() == -1.0 and unit.max() == 1.0
    assert np.array_equal(pixels.to_uint8(unit), levels)


def test_to_uint8_rounds_in_float32_and_clips():
    # 0 is the one exact half in range: (0 + 1) * 127.5 = 127.5 -> 128.
    assert pixels.to_uint8(np.zeros(1, np.float32)).tolist() == [128]
    x = np.random.default_rng(0).uniform(-1.2, 1.2, 10_000).astype(np.float32)
    expected = np.clip(np.rint((x + np.float32(1)) * np.float32(127.5)), 0, 255)
    assert np.array_equal(pixels.to_uint8(x), expected.astype(np.uint8))
    assert np.array_equal(pixels.to_uint8(x.astype(np.float64)), pixels.to_uint8(x))
    assert pixels.to_uint8(np.array([-7.0, 1.0001, 9.0])).tolist() == [0, 255, 255]
    assert pixels.to_uint8(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 28, 28, 1)


@pytest.mark.parametrize("bad", [np.zeros(3, np.uint8), np.array([np.nan]), [0.0], None])
def test_to_uint8_refuses_what_is_not_float_pixels(bad):
    with pytest.raises(ganlite.UsageError):
        pixels.to_uint8(bad)


@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), np.zeros(3, np.int64), [0], None])
def test_to_unit_range_refuses_what_is_not_uint8(bad):
    with pytest.raises(ganlite.UsageError):
        pixels.to_unit_range(bad)


# -- datasets ----------------------------------------------------------------------------

def _idx(path: Path, magic: int, dims: list[int], payload: bytes) -> Path:
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims))
        f.write(payload)
    return path


def test_the_dataset_list_matches_the_built_in_models():
    for name, dataset in datasets.DATASETS.items():
        assert dataset.name == name and dataset.num_classes == len(dataset.class_names)
        assert dataset.classifier in ganlite.list_models("classifier")
        assert ganlite.read_card(dataset.classifier)["num_classes"] == dataset.num_classes
    card = ganlite.read_card("fashion-cdcgan")
    assert tuple(card["class_names"]) == datasets.DATASETS["fashion_mnist"].class_names
    with pytest.raises(ganlite.UsageError, match="mnist, fashion_mnist"):
        datasets.get("cifar")


def test_read_split_of_the_fixture():
    images, labels = datasets.read_split(MNIST_SMALL, "test", "mnist")
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and set(labels.tolist()) <= set(range(10))
    alone = datasets.read_idx(MNIST_SMALL / "t10k-images-idx3-ubyte.gz", "images")
    assert np.array_equal(alone, images)


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A header declaring 10 labels followed by 200 MB of zeros (a 200 KB file)."""
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(struct.pack(">II", 0x801, 10))
        chunk = bytes(1 << 20)
        for _ in range(200):
            f.write(chunk)
    assert path.stat().st_size < 1_000_000
    t0 = time.perf_counter()
    with pytest.raises(datasets.DatasetError, match="padded: more than 10 data bytes"):
        datasets.read_idx(path, "labels")
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize("case,make,message", [
    ("huge count", lambda p: _idx(p, 0x803, [10**9, 28, 28], b""), "more than the limit"),
    ("not 28x28", lambda p: _idx(p, 0x803, [1, 32, 32], bytes(1024)), "32x32"),
    ("truncated", lambda p: _idx(p, 0x803, [2, 28, 28], bytes(784)), "truncated: 784"),
    ("padded", lambda p: _idx(p, 0x803, [1, 28, 28], bytes(785)), "padded"),
    ("labels as images", lambda p: _idx(p, 0x801, [3], bytes(16)), "not an IDX images"),
    ("corrupt deflate", lambda p: p.write_bytes(
        gzip.compress(bytes(5000))[:10] + b"\xff" * 40), "not a readable gzip file"),
    ("a folder", lambda p: p.mkdir(), "is a folder"),
    ("missing", lambda p: None, "file not found"),
])
def test_bad_idx_files_are_one_line_errors(tmp_path, case, make, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    make(path)
    with pytest.raises(datasets.DatasetError, match=message) as info:
        datasets.read_idx(path, "images")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_labels_outside_the_dataset_classes(tmp_path):
    images = _idx(tmp_path / "train-images-idx3-ubyte.gz", 0x803, [2, 28, 28], bytes(1568))
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", 0x801, [2], bytes([3, 10]))
    assert images.is_file()
    with pytest.raises(datasets.DatasetError, match="label 10 out of range 0-9"):
        datasets.read_split(tmp_path, "train", "mnist")
    assert datasets.read_split(tmp_path, "train")[1].tolist() == [3, 10]   # no dataset


# -- metrics ----------------------------------------------------------------------------

def test_knn_radii_and_coverage_on_a_line():
    points = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
    assert metrics.knn_radii(points, k=1).tolist() == [1, 1, 2, 4]
    assert metrics.coverage(np.array([[0.5], [5.0], [12.0]]), points,
                            metrics.knn_radii(points, 1)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("call", [
    lambda: metrics.frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)),
    lambda: metrics.classifier_score(np.full((2, 3), 2.0)),
    lambda: metrics.knn_radii(np.zeros((3, 2)), k=3),
    lambda: metrics.knn_radii(np.zeros((5, 2)), k=0),
    lambda: metrics.coverage(np.zeros((2, 3)), np.zeros((2, 2)), np.ones(2)),
    lambda: metrics.frechet_distance(np.array([np.nan]), np.eye(1), np.zeros(1), np.eye(1)),
])
def test_metrics_refuse_inconsistent_input(call):
    with pytest.raises(ganlite.UsageError):
        call()


def test_the_evaluator_uses_the_public_metrics():
    from ganlite import _evaluate

    assert _evaluate.knn_radii is metrics.knn_radii
    assert _evaluate.frechet_distance is metrics.frechet_distance


# -- latents ----------------------------------------------------------------------------

def test_draw_is_a_function_of_seed_and_index():
    z, labels = latents.draw(5, 0, 40, 8, 10)
    parts = [latents.draw(5, lo, 7 if lo + 7 <= 40 else 40 - lo, 8, 10) for lo in range(0, 40, 7)]
    assert np.array_equal(z, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(labels, np.concatenate([p[1] for p in parts]))
    assert latents.draw(5, 3, 2, 8)[1] is None
    from ganlite import _latents

    assert _latents.draw is latents.draw


@pytest.mark.parametrize("args", [(-1, 0, 1, 8), (0, -1, 1, 8), (0, 0, 0, 8), (0, 0, 1, 0),
                                  (0, 0, 1, 8, -1), (True, 0, 1, 8), (0, 0, 2**20, 2**11)])
def test_draw_refuses_bad_arguments(args):
    with pytest.raises(ganlite.UsageError):
        latents.draw(*args)


# -- modelfile ---------------------------------------------------------------------------

def test_resealing_a_sealed_model_with_its_card_gives_the_same_bytes():
    data = TINY_UNCONDITIONAL.read_bytes()
    card = modelfile.verified_card(data, TINY_UNCONDITIONAL)
    assert modelfile.stored_card(data) == card == modelfile.check_seal(data)
    assert modelfile.seal(data, card) == data
    changed = modelfile.seal(data, {**card, "summary": "edited"})
    assert modelfile.verified_card(changed)["summary"] == "edited"
    with pytest.raises(ganlite.IntegrityError):
        modelfile.check_seal(changed.replace(b'"summary":"edited"', b'"summary":"edite!"'))


def test_io_signature_is_what_the_card_records():
    import onnxruntime as ort

    data = TINY_UNCONDITIONAL.read_bytes()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    card = modelfile.verified_card(data)
    assert modelfile.io_signature(session) == {"inputs": card["inputs"],
                                               "outputs": card["outputs"]}


@pytest.mark.parametrize("call,error", [
    (lambda d: modelfile.seal(d, {"x": float("nan")}), ganlite.UsageError),
    (lambda d: modelfile.seal(b"\xff\xff\xff", {}), ganlite.ModelError),
    (lambda d: modelfile.graph_sha256(b"\x0a\x05ab"), ganlite.ModelError),
    (lambda d: modelfile.stored_card("not bytes"), ganlite.UsageError),
    (lambda d: modelfile.read_model_bytes("/nonexistent/m.onnx"), ganlite.ModelError),
    (lambda d: modelfile.io_signature(object()), ganlite.UsageError),
])
def test_modelfile_errors(call, error):
    with pytest.raises(error):
        call(TINY_UNCONDITIONAL.read_bytes())


# -- files ------------------------------------------------------------------------------

def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")

    def half(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    with pytest.raises(RuntimeError):
        atomic_write(target, half)
    assert os.listdir(tmp_path) == ["model.keras"] and target.read_text() == "old"
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert os.listdir(tmp_path) == ["model.keras"] and target.read_text() == "new"


def test_atomic_write_all_is_all_or_nothing(tmp_path):
    files = {tmp_path / "a.onnx": b"a", tmp_path / "missing" / "b.json": b"b"}
    with pytest.raises(ganlite.OutputError, match="b.json"):
        atomic_write_all(files)
    assert os.listdir(tmp_path) == []
    assert atomic_write_all({tmp_path / "a": b"1", tmp_path / "b": b"2"}) == [
        tmp_path / "a", tmp_path / "b"]
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]
    with pytest.raises(ganlite.OutputError):
        atomic_write_bytes(tmp_path / "nope" / "x", b"")


# -- any value: works or a GanliteError ---------------------------------------------------

junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.integers(2**62, 2**70),
                 st.floats(allow_nan=True), st.text(max_size=4), st.binary(max_size=8),
                 st.sampled_from([np.zeros((2, 3)), np.zeros((0, 2)), np.full(3, np.inf),
                                  np.zeros((3, 28, 28), np.uint8), "/nonexistent", "",
                                  "\0", Path("/proc/self/no"), "images", "labels"]))
def _inside(tmp: Path, value: object) -> object:
    """Junk meant as a path to write, kept inside tmp (never the working directory or /);
    other junk as it is."""
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return tmp / ("p-" + os.fspath(value).lstrip("/"))
    return value


CALLS = {
    "to_uint8": lambda tmp, a, b: pixels.to_uint8(a),
    "to_unit_range": lambda tmp, a, b: pixels.to_unit_range(a),
    "get": lambda tmp, a, b: datasets.get(a),
    "read_idx": lambda tmp, a, b: datasets.read_idx(a, b),
    "read_split": lambda tmp, a, b: datasets.read_split(a, b),
    "read_split dataset": lambda tmp, a, b: datasets.read_split(MNIST_SMALL, "test", a),
    "frechet_distance": lambda tmp, a, b: metrics.frechet_distance(a, b, a, b),
    "classifier_score": lambda tmp, a, b: metrics.classifier_score(a),
    "knn_radii": lambda tmp, a, b: metrics.knn_radii(a, b),
    "coverage": lambda tmp, a, b: metrics.coverage(a, a, b),
    "draw": lambda tmp, a, b: latents.draw(a, 0, 3, 4, b),
    "draw count": lambda tmp, a, b: latents.draw(0, b, a, 4),
    "seal": lambda tmp, a, b: modelfile.seal(a, b),
    "stored_card": lambda tmp, a, b: modelfile.stored_card(a, "m"),
    "verified_card": lambda tmp, a, b: modelfile.verified_card(a),
    "graph_sha256": lambda tmp, a, b: modelfile.graph_sha256(a),
    "read_model_bytes": lambda tmp, a, b: modelfile.read_model_bytes(a),
    "io_signature": lambda tmp, a, b: modelfile.io_signature(a),
    "atomic_write_bytes": lambda tmp, a, b: atomic_write_bytes(_inside(tmp, a), b"x"),
    "atomic_write_all": lambda tmp, a, b: atomic_write_all(
        {tmp / "y": b"y", **({_inside(tmp, a): b"z"} if a.__hash__ else {})}),
    "atomic_write_all data": lambda tmp, a, b: atomic_write_all({tmp / "y": a}),
    "atomic_write_bytes data": lambda tmp, a, b: atomic_write_bytes(tmp / "z", a),
}


@pytest.mark.parametrize("name", CALLS)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(a=junk, b=junk)
def test_any_value_works_or_raises_a_ganlite_error(tmp_path_factory, name, a, b):
    tmp = tmp_path_factory.mktemp("junk")
    try:
        CALLS[name](tmp, a, b)
    except ganlite.GanliteError as e:
        assert "\n" not in str(e)


# -- the stages use ganlite's public names only ------------------------------------------

def _ganlite_imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "ganlite":
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ganlite":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id == "ganlite" and node.attr.startswith("_") and \
                not node.attr.startswith("__"):
            yield node.lineno, f"ganlite.{node.attr}", []


def test_train_and_export_import_only_public_ganlite_names():
    sources = sorted((ROOT / "train").glob("*.py")) + sorted((ROOT / "export").glob("*.py"))
    if not sources:
        pytest.skip("train/ and export/ are not in this checkout")
    private = [f"{path.relative_to(ROOT)}:{line}: {module} {names}"
               for path in sources for line, module, names in _ganlite_imports(path)
               if any(part.startswith("_") for part in module.split("."))
               or any(n.startswith("_") for n in names)]
    assert not private, private


def test_the_public_modules_document_what_they_raise():
    for module in (pixels, datasets, metrics, latents, modelfile):
        for name in module.__all__:
            value = getattr(module, name)
            if callable(value) and not isinstance(value, type):
                doc = value.__doc__ or ""
                assert "Raises:" in doc, f"{module.__name__}.{name}"
                assert value.__annotations__.get("return"), f"{module.__name__}.{name}"
