"""Every bad input: one clear line, the right exit status, no traceback, nothing written."""
from __future__ import annotations

import json
import re

import pytest
from conftest import TINY_UNCONDITIONAL

import ganlite
from ganlite import _card, _onnxfile
from ganlite._model import CARD_KEY


def _encode(fields) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _onnxfile.encode_varint(number << 3 | wire)
        if wire == 2:
            out += _onnxfile.encode_varint(len(value)) + value
        elif wire == 0:
            out += _onnxfile.encode_varint(value)
        else:
            out += value
    return bytes(out)


def with_card_text(model_bytes: bytes, edit) -> bytes:
    """The model with its card's JSON text replaced by edit(text), not sealed again."""
    fields = []
    for number, wire, value in _onnxfile.fields(model_bytes):
        if number == 14:
            entry = {n: v for n, w, v in _onnxfile.fields(value)}
            if entry[1].decode() == CARD_KEY:
                value = _encode([(1, 2, entry[1]), (2, 2, edit(entry[2]))])
        fields.append((number, wire, value))
    return _encode(fields)


def with_card(model_bytes: bytes, edit) -> bytes:
    """The model with its card replaced by edit(card), not sealed again."""
    return with_card_text(model_bytes,
                          lambda text: json.dumps(edit(json.loads(text))).encode())


def resealed(edit):
    """A mutation: the card replaced by edit(card), sealed again as export would: the
    seal holds, so only the card's schema and the graph can refuse it."""
    def mutate(data: bytes) -> bytes:
        return _card.seal(data, edit(_card.unverified_card("model", data)[0]))
    return mutate


def _tampered_graph(data: bytes) -> bytes:
    graph = _onnxfile.graph_bytes(data)
    start = data.find(graph)
    middle = start + len(graph) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


def _legacy(data: bytes) -> bytes:
    """As exported before model_sha256: a card hashing only the graph."""
    return with_card(data, lambda c: {**{k: v for k, v in c.items() if k != "model_sha256"},
                                      "graph_sha256": _onnxfile.graph_sha256(data)})


def _second_card(data: bytes) -> bytes:
    _, start, end = _card._find(data)
    return data + data[start:end]


def _drop(key):
    return lambda c: {k: v for k, v in c.items() if k != key}


def _set(**changes):
    return lambda c: {**c, **changes}


INTEGRITY, MODEL = ganlite.IntegrityError, ganlite.ModelError
MODIFIED = "modified after export"
# name: (mutation of the tiny unconditional model, error class, text in the message)
BAD_MODELS = {
    "truncated": (lambda d: d[:len(d) // 2], MODEL, "not a valid ONNX"),
    "not onnx": (lambda d: b"this is a text file, not a model\n", MODEL, "not a valid ONNX"),
    "empty": (lambda d: b"", MODEL, "no ganlite model card"),
    "two cards": (_second_card, MODEL, "several model cards"),
    "card not json": (lambda d: with_card_text(d, lambda t: t[:-1]), MODEL, "not valid JSON"),
    "card not an object": (lambda d: with_card(d, lambda c: [c]), MODEL, "not a JSON object"),
    # The seal: any byte changed anywhere.
    "graph modified": (_tampered_graph, INTEGRITY, MODIFIED),
    "ir_version modified": (lambda d: d[:1] + b"\x07" + d[2:], INTEGRITY, MODIFIED),
    "other metadata modified": (lambda d: d.replace(b"Gray8", b"Gray9"), INTEGRITY, MODIFIED),
    "metadata appended": (lambda d: d + _onnxfile.encode_field(14, _onnxfile.encode_field(
        1, b"note") + _onnxfile.encode_field(2, b"hi")), INTEGRITY, MODIFIED),
    "card edited": (lambda d: with_card(d, _set(latent_dim=9)), INTEGRITY, MODIFIED),
    "card edited in place": (lambda d: d.replace(b'"latent_dim":8', b'"latent_dim":9'),
                             INTEGRITY, MODIFIED),
    "card reformatted": (lambda d: with_card_text(d, lambda t: json.dumps(json.loads(t))
                                                  .encode()), INTEGRITY, MODIFIED),
    "hash edited": (lambda d: d.replace(b'"model_sha256":"f', b'"model_sha256":"e', 1),
                    INTEGRITY, MODIFIED),
    "hash removed": (lambda d: with_card(d, _drop("model_sha256")), INTEGRITY,
                     "has no model_sha256"),
    "older export": (_legacy, INTEGRITY, "exported by an older version"),
    # The schema: cards edited and sealed again, inconsistently.
    "kind missing": (resealed(_drop("kind")), MODEL, "field 'kind' must be"),
    "kind unknown": (resealed(_set(kind="discriminator")), MODEL, "field 'kind' must be"),
    "name not text": (resealed(_set(name=["tiny"])), MODEL, "field 'name' must be a text"),
    "name with newline": (resealed(_set(name="a\nb")), MODEL, "field 'name' must be a text"),
    "latent_dim text": (resealed(_set(latent_dim="8")), MODEL,
                        "field 'latent_dim' must be an integer 1-4096"),
    "latent_dim huge": (resealed(_set(latent_dim=10**12)), MODEL, "'latent_dim' must be"),
    "latent_dim vs inputs": (resealed(_set(latent_dim=9)), MODEL, "field 'inputs.z' must be"),
    "conditional text": (resealed(_set(conditional="no")), MODEL,
                         "field 'conditional' must be true or false"),
    "conditional without label": (resealed(_set(conditional=True)), MODEL,
                                  "field 'input_names' must be"),
    "num_classes 1": (resealed(_set(num_classes=1)), MODEL,
                      "field 'num_classes' must be an integer 2-1000"),
    "num_classes vs class_names": (resealed(_set(num_classes=3)), MODEL,
                                   "'class_names' must be a list of num_classes (3)"),
    "class_names repeated": (resealed(_set(class_names=["0"] * 10)), MODEL,
                             "must be distinct class names"),
    "input_names not inputs": (resealed(_set(input_names={"z": "noise"})), MODEL,
                               "'input_names' must be the names of the card's inputs"),
    "input_names label": (resealed(_set(input_names={"z": "z", "label": "z"})), MODEL,
                          "'input_names' must be an object naming the graph inputs"),
    "outputs float": (resealed(_set(outputs={"image": {"type": "tensor(float)",
                                                       "shape": [None, 28, 28]}})),
                      MODEL, "field 'outputs.image' must be"),
    "inputs malformed": (resealed(_set(inputs={"z": [None, 8]})), MODEL,
                         "field 'inputs.z' must be"),
    "dataset not text": (resealed(_set(dataset={"x": 1})), MODEL, "field 'dataset' must be"),
    # The graph against a consistent card.
    "io differs from graph": (resealed(_set(latent_dim=9, inputs={
        "z": {"type": "tensor(float)", "shape": [None, 9]}})), INTEGRITY,
        "does not match its card"),
}


def _assert_refused(cli, tmp_path, path, error, message):
    with pytest.raises(error, match=re.escape(message)) as caught:
        ganlite.Generator(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    out = tmp_path / "out"
    result = cli("generate", "--n", 20, "--out", out, "--model", path)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_file(cli, tmp_path, case):
    mutate, error, message = BAD_MODELS[case]
    path = tmp_path / "bad.onnx"
    path.write_bytes(mutate(TINY_UNCONDITIONAL.read_bytes()))
    _assert_refused(cli, tmp_path, path, error, message)


CONDITIONAL_CARDS = {
    # The case: num_classes 3 made classes 3-9 unreachable, exit 0.
    "num_classes 3": (_set(num_classes=3), "'class_names' must be a list of num_classes (3)"),
    "num_classes 3 with 3 names": (_set(num_classes=3, class_names=["a", "b", "c"]), None),
    "unconditional": (_set(conditional=False), "'input_names' must be an object naming"),
    "no label input name": (_set(input_names={"z": "z"}), "'input_names' must be"),
    "label input swapped": (_set(input_names={"z": "label", "label": "z"}),
                            "field 'inputs.label' must be"),
    "classifier kind": (_set(kind="classifier"), "field 'inputs' must be"),
    "class name empty": (_set(class_names=[""] + [str(i) for i in range(1, 10)]),
                         "field 'class_names[0]' must be a text"),
}


@pytest.mark.parametrize("case", list(CONDITIONAL_CARDS))
def test_conditional_card_edits(cli, tmp_path, case):
    edit, message = CONDITIONAL_CARDS[case]
    data = ganlite.list_models()["mnist-cdcgan"].read_bytes()
    path = tmp_path / "bad.onnx"
    path.write_bytes(with_card(data, edit))          # edited: the seal breaks
    _assert_refused(cli, tmp_path, path, ganlite.IntegrityError, MODIFIED)
    path.write_bytes(resealed(edit)(data))           # edited and sealed again
    if message is None:
        # A consistent card the graph cannot contradict (the label embedding's size is
        # inside the graph): it loads, and its labels are checked against the card.
        with pytest.raises(ganlite.UsageError, match="this model has classes 0-2"):
            ganlite.Generator(path).generate(2, labels=5)
        return
    _assert_refused(cli, tmp_path, path, ganlite.ModelError, message)


def test_classifier_is_not_a_generator(tmp_path):
    with pytest.raises(ganlite.ModelError, match="is a classifier model"):
        ganlite.load("mnist-classifier")


CLI_ERRORS = [
    # (arguments, exit status, text in the message)
    (["--n", "0"], 2, "0 is not in the range"),
    (["--n", "-5"], 2, "not in the range"),
    (["--n", "ten"], 2, "'ten' is not a valid integer"),
    (["--n", "3", "--seed", "-1"], 2, "--seed"),
    (["--n", "3", "--seed", str(2**63)], 2, "--seed"),
    (["--n", "3", "--model", "no-such-model"], 2, "unknown model 'no-such-model'"),
    (["--n", "3", "--model", "/nonexistent/m.onnx"], 1, "not found"),
    (["--n", "3", "--device", "tpu"], 2, "'tpu' is not one of"),
    (["--n", "3", "--batch-size", "0"], 2, "--batch-size"),
    (["--n", "3", "--model", str(TINY_UNCONDITIONAL), "--digit", "3"], 2, "unconditional"),
]


@pytest.mark.parametrize("args,status,message", CLI_ERRORS,
                         ids=[" ".join(c[0]) for c in CLI_ERRORS])
def test_cli_usage_errors(cli, tmp_path, args, status, message):
    result = cli("generate", "--out", tmp_path / "out", *args)
    assert result.exit_code == status, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("digit,message", [("10", "out of range 0-9"), ("-1", "out of range"),
                                           ("seven", "not a class number")])
def test_bad_digit(cli, tmp_path, default_generator, digit, message):
    if not default_generator.conditional:
        pytest.skip("default model is unconditional")
    result = cli("generate", "--n", 3, "--out", tmp_path / "out", "--digit", digit)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_cuda_when_absent_is_an_error_not_a_fallback(cli, tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CPUExecutionProvider"])
    result = cli("generate", "--n", 3, "--out", tmp_path / "out", "--device", "cuda")
    assert result.exit_code == 2 and "CUDAExecutionProvider" in result.output
    assert not (tmp_path / "out").exists()


def test_out_is_a_file(cli, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    result = cli("generate", "--n", 3, "--out", target)
    assert result.exit_code == 1 and "is not a folder" in result.output
    assert target.read_text() == "keep me"


def test_out_cannot_be_created(cli):
    result = cli("generate", "--n", 3, "--out", "/proc/ganlite-cannot-write-here")
    assert result.exit_code == 1 and "cannot create folder" in result.output


def test_api_errors_are_specific_types(default_generator):
    with pytest.raises(ganlite.UsageError, match="n must be at least 1"):
        default_generator.generate(0)
    with pytest.raises(ganlite.UsageError, match="seed must be between"):
        default_generator.generate(1, seed=-3)
    with pytest.raises(ganlite.UsageError, match="must be an integer"):
        default_generator.generate(2.5)
    with pytest.raises(ganlite.UnknownModelError):
        ganlite.load("nope")
    with pytest.raises(ganlite.DeviceError, match="unknown device"):
        ganlite.load(device="gpu")
    assert issubclass(ganlite.UsageError, ganlite.GanliteError)
    assert issubclass(ganlite.ModelError, ganlite.GanliteError)


@pytest.mark.train
def test_external_data_is_refused(tmp_path):
    """Even with a card that matches, a model whose weights live in other files is refused:
    ganlite only loads self-contained models (nothing beside the file is ever opened)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(TINY_UNCONDITIONAL))
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    (tmp_path / "ext.onnx").write_bytes(_card.seal((tmp_path / "ext.onnx").read_bytes()))
    with pytest.raises(ganlite.ModelError, match="external data"):
        ganlite.Generator(tmp_path / "ext.onnx")
