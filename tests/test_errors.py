"""Every bad input: one clear line, the right exit status, no traceback, nothing written."""
from __future__ import annotations

import json

import pytest

import ganlite
from ganlite import _onnxfile
from ganlite._model import CARD_KEY

from conftest import TINY_UNCONDITIONAL


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _encode(fields) -> bytes:
    out = bytearray()
    for number, wire, value in fields:
        out += _varint(number << 3 | wire)
        if wire == 2:
            out += _varint(len(value)) + value
        elif wire == 0:
            out += _varint(value)
        else:
            out += value
    return bytes(out)


def with_card(model_bytes: bytes, edit) -> bytes:
    """The model with its card JSON replaced by edit(card)."""
    fields = []
    for number, wire, value in _onnxfile.fields(model_bytes):
        if number == 14:
            entry = {n: v for n, w, v in _onnxfile.fields(value)}
            if entry[1].decode() == CARD_KEY:
                card = edit(json.loads(entry[2]))
                value = _encode([(1, 2, entry[1]), (2, 2, json.dumps(card).encode())])
        fields.append((number, wire, value))
    return _encode(fields)


def _tampered_graph(data: bytes) -> bytes:
    graph = _onnxfile.graph_bytes(data)
    start = data.find(graph)
    middle = start + len(graph) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


BAD_MODELS = {
    "truncated": lambda d: d[:len(d) // 2],
    "not onnx": lambda d: b"this is a text file, not a model\n",
    "empty": lambda d: b"",
    "graph modified": _tampered_graph,
    "card without kind": lambda d: with_card(d, lambda c: {k: v for k, v in c.items()
                                                           if k != "kind"}),
    "io differs from card": lambda d: with_card(d, lambda c: {**c, "latent_dim": 9, "inputs": {
        "z": {"type": "tensor(float)", "shape": [None, 9]}}}),
}
BAD_MODEL_MESSAGES = {
    "truncated": "not a valid ONNX", "not onnx": "not a valid ONNX",
    "empty": "no ganlite model card", "graph modified": "SHA-256 does not match",
    "card without kind": "no 'kind'", "io differs from card": "do not match its card",
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_file(cli, tmp_path, case):
    path = tmp_path / "bad.onnx"
    path.write_bytes(BAD_MODELS[case](TINY_UNCONDITIONAL.read_bytes()))
    with pytest.raises(ganlite.ModelError, match=BAD_MODEL_MESSAGES[case]):
        ganlite.Generator(path)
    result = cli("generate", "--n", 3, "--out", tmp_path / "out", "--model", path)
    assert result.exit_code == 1
    assert BAD_MODEL_MESSAGES[case] in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


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
    data = (tmp_path / "ext.onnx").read_bytes()
    data = with_card(data, lambda c: {**c, "graph_sha256": _onnxfile.graph_sha256(data)})
    (tmp_path / "ext.onnx").write_bytes(data)
    with pytest.raises(ganlite.ModelError, match="external data"):
        ganlite.Generator(tmp_path / "ext.onnx")
