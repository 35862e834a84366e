"""Hostile model files: random damage to a real model gives ModelError/IntegrityError, or
a correct run (the original's images), never any other exception.

    GANLITE_FUZZ_MUTATIONS=20000 pytest -s tests/test_fuzz_model.py   # a longer run

The seal rejects almost everything before onnxruntime sees the file, so thousands of
mutations take seconds. A second loop seals each damaged card again (as a forger who
recomputes the hash would), so that the card schema and the graph checks, not the seal,
must refuse it.
"""
from __future__ import annotations

import collections
import json
import os
import random

import numpy as np
import pytest
from conftest import TINY_UNCONDITIONAL

import ganlite
from ganlite import _card, _onnxfile

MUTATIONS = int(os.environ.get("GANLITE_FUZZ_MUTATIONS", "3000"))
CARD_MUTATIONS = int(os.environ.get("GANLITE_FUZZ_CARD_MUTATIONS", "600"))
N = 6


@pytest.fixture(scope="module")
def original():
    data = TINY_UNCONDITIONAL.read_bytes()
    return data, ganlite.Generator(TINY_UNCONDITIONAL, device="cpu").generate(N, seed=0)


def _structure(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges that are not weights: the header, the graph's nodes (before its
    initializers), its inputs/outputs, opsets and metadata (after them)."""
    spans = list(_onnxfile.spans(data))
    graph = next(s for s in spans if s[0] == 7)
    inner = list(_onnxfile.spans(graph[2]))
    offset = graph[4] - len(graph[2])
    first_init = min((s[3] for s in inner if s[0] == 5), default=len(graph[2]))
    last_init = max((s[4] for s in inner if s[0] == 5), default=0)
    return [(0, offset + first_init + 64), (offset + last_init - 64, len(data))]


def _mutate(data: bytes, rng: random.Random, ranges) -> tuple[str, bytes]:
    roll = rng.random()
    if rng.random() < 0.5:
        lo, hi = rng.choice(ranges)
        pos = rng.randrange(lo, hi)
    else:
        pos = rng.randrange(len(data))
    if roll < 0.75:
        value = (data[pos] + rng.randrange(1, 256)) % 256
        return f"byte {pos} {data[pos]} -> {value}", data[:pos] + bytes([value]) + data[pos + 1:]
    if roll < 0.95:
        bit = rng.randrange(8)
        return f"bit {bit} of byte {pos}", data[:pos] + bytes([data[pos] ^ 1 << bit]) + \
            data[pos + 1:]
    return f"truncated to {pos} bytes", data[:pos]


def _write(path, data: bytes) -> None:
    """path's bytes become data: overwritten in place, not truncated first (truncating
    and refilling a 1 MB file costs more than everything ganlite does with it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _outcome(path, data: bytes, reference: np.ndarray, what: str) -> str:
    _write(path, data)
    try:
        images = ganlite.Generator(path, device="cpu").generate(N, seed=0)
    except ganlite.IntegrityError:
        return "IntegrityError"
    except ganlite.ModelError as e:
        assert "\n" not in str(e), what
        return "ModelError"
    except Exception as e:  # the point: report anything else, with the mutation
        raise AssertionError(f"{what}: {type(e).__name__}: {e}") from e
    assert np.array_equal(images, reference), f"{what}: ran, with other images"
    return "ran"


def test_random_damage(tmp_path, original):
    data, reference = original
    rng = random.Random(20261129)
    ranges = _structure(data)
    outcomes: collections.Counter = collections.Counter()
    for i in range(MUTATIONS):
        what, damaged = _mutate(data, rng, ranges)
        outcomes[_outcome(tmp_path / "m.onnx", damaged, reference, f"#{i} {what}")] += 1
    print(f"\n{MUTATIONS} mutations of {TINY_UNCONDITIONAL.name}: {dict(outcomes)}")
    assert sum(outcomes.values()) == MUTATIONS
    # Nothing but the seal should be needed: a damaged file never reaches onnxruntime.
    assert outcomes["ran"] == 0


def _random_value(rng: random.Random):
    return rng.choice([
        None, True, False, 0, -1, 1, 2, 8, 9, 28, 10**6, 2**70, 1.5, float("1e308"),
        "", "8", "z", "label", "image", "tensor(uint8)", "a\nb", "x" * 100,
        [], [None], [None, 8], [None, 28, 28], ["0"] * 10, [str(i) for i in range(10)],
        {}, {"z": "z"}, {"z": "z", "label": "label"}, {"z": "label"},
        {"z": {"type": "tensor(float)", "shape": [None, 8]}},
        {"image": {"type": "tensor(uint8)", "shape": [None, 28, 28]}},
        {"image": {"type": "tensor(float)", "shape": [None, 28, 28]}},
        {"image": {"type": "tensor(uint8)", "shape": [None, 28]}},
        {"type": "tensor(float)", "shape": [None, 8]},
        "generator", "classifier", "mnist",
    ])


def _edit_card(card: dict, rng: random.Random) -> tuple[str, dict]:
    card = json.loads(json.dumps(card))
    fields = ["kind", "name", "latent_dim", "conditional", "num_classes", "class_names",
              "input_names", "inputs", "outputs", "dataset"]   # seal() sets model_sha256
    edits = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        field = rng.choice(fields)
        roll = rng.random()
        if roll < 0.15:
            card.pop(field, None)
            edits.append(f"-{field}")
            continue
        target, key = card, field
        # Sometimes one level down: inputs.z, outputs.image.shape, class_names[3] ...
        if roll < 0.5 and isinstance(card.get(field), dict) and card[field]:
            target, key = card[field], rng.choice(list(card[field]))
            if isinstance(target[key], dict) and target[key] and rng.random() < 0.5:
                target, key = target[key], rng.choice(list(target[key]))
        elif roll < 0.5 and isinstance(card.get(field), list) and card[field]:
            target, key = card[field], rng.randrange(len(card[field]))
        target[key] = _random_value(rng)
        edits.append(f"{field}/{key}={target[key]!r}")
    return " ".join(edits), card


def test_random_cards_sealed_again(tmp_path, original):
    """Damaged cards that carry a valid seal: the schema and the graph checks refuse them
    (one-line ModelError), or they run and give the original's images."""
    data, reference = original
    card, _, _ = _card.unverified_card(TINY_UNCONDITIONAL, data)
    rng = random.Random(7)
    outcomes: collections.Counter = collections.Counter()
    for i in range(CARD_MUTATIONS):
        what, edited = _edit_card(card, rng)
        sealed = _card.seal(data, edited)
        outcomes[_outcome(tmp_path / "c.onnx", sealed, reference, f"#{i} {what}")] += 1
    print(f"\n{CARD_MUTATIONS} sealed card edits: {dict(outcomes)}")
    assert outcomes["ModelError"] + outcomes["IntegrityError"] > CARD_MUTATIONS // 2
