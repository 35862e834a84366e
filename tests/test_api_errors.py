"""Every public function, given arbitrary arguments, either works or raises a
GanliteError subclass: never TypeError, ValueError, ZeroDivisionError, OSError..."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ganlite

junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 40), st.integers(10**10, 2**70),
    st.integers(-2**70, -10**10), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6), st.binary(max_size=4), st.lists(st.integers(-2, 12), max_size=4),
    st.lists(st.text(max_size=3), max_size=3),
    st.sampled_from([np.zeros((2, 3)), np.zeros((0, 28, 28), np.uint8),
                     np.full((3, 28, 28), 7, np.uint8), np.zeros((2, 100), np.float32),
                     np.full((2, 100), np.nan, np.float32), "/nonexistent/x.onnx", "/sys",
                     "", "\0", "mnist-classifier", Path("/proc/self/no")]))

# name -> call(generator, tmp, a, b)
CALLS = {
    "load": lambda g, tmp, a, b: ganlite.load(a, device=b),
    "Generator": lambda g, tmp, a, b: ganlite.Generator(a, threads=b),
    "read_card": lambda g, tmp, a, b: ganlite.read_card(a),
    "list_models": lambda g, tmp, a, b: ganlite.list_models(a),
    "save_png": lambda g, tmp, a, b: ganlite.save_png(a, tmp / "x.png"),
    "save_png path": lambda g, tmp, a, b: ganlite.save_png(np.zeros((28, 28), np.uint8), a),
    "make_grid": lambda g, tmp, a, b: ganlite.make_grid(a, b),
    "save_grid": lambda g, tmp, a, b: ganlite.save_grid(a, tmp / "g.png", scale=b),
    "save_grid path": lambda g, tmp, a, b: ganlite.save_grid(
        np.zeros((4, 28, 28), np.uint8), a),
    "load_png_folder": lambda g, tmp, a, b: ganlite.load_png_folder(a),
    "write_images": lambda g, tmp, a, b: ganlite.write_images(g, a, tmp / "w", seed=b),
    "write_images options": lambda g, tmp, a, b: ganlite.write_images(
        g, 3, tmp / "w", fmt=a, workers=b),
    "write_images out": lambda g, tmp, a, b: ganlite.write_images(g, 3, a, labels=b),
    # (images=None would evaluate the default model on 10,000 samples: not junk, slow)
    "evaluate images": lambda g, tmp, a, b: a is None or ganlite.evaluate(images=a,
                                                                          dataset=b),
    "Evaluator": lambda g, tmp, a, b: ganlite.Evaluator(a, device=b),
    "walk": lambda g, tmp, a, b: ganlite.walk(g, a, b),
    "label_walk": lambda g, tmp, a, b: ganlite.label_walk(g, a),
    "save_animation": lambda g, tmp, a, b: ganlite.save_animation(a, tmp / "a.gif", scale=b),
    "save_animation path": lambda g, tmp, a, b: ganlite.save_animation(
        np.zeros((2, 28, 28), np.uint8), a, frames_dir=b),
    "generate": lambda g, tmp, a, b: g.generate(a, seed=b),
    "generate labels": lambda g, tmp, a, b: g.generate(3, labels=a, batch_size=b),
    "LabelCycle": lambda g, tmp, a, b: g.generate(3, labels=ganlite.LabelCycle(
        a if isinstance(a, (list, str)) else [a])),
    "batches": lambda g, tmp, a, b: list(g.batches(3, a, start=b)),
    "decode": lambda g, tmp, a, b: g.decode(a, b),
    "class_index": lambda g, tmp, a, b: g.class_index(a),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_public_api_raises_only_ganlite_errors(default_generator, name):
    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(a=junk, b=junk)
    def check(a, b):
        # Relative junk paths ("0", "mnist-classifier") land in the temporary folder, never
        # in the checkout.
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                CALLS[name](default_generator, Path(tmp), a, b)
            except ganlite.GanliteError as e:
                assert str(e) and "\n" not in str(e)
            finally:
                os.chdir(cwd)
    check()


def test_the_examples_of_the_issue():
    g = ganlite.load()
    with pytest.raises(ganlite.UsageError):
        ganlite.save_grid([], "grid.png")
    with pytest.raises(ganlite.OutputError, match="does not exist|No such file"):
        ganlite.save_png(np.zeros((28, 28), np.uint8), "/nonexistent/folder/x.png")
    with pytest.raises(ganlite.UsageError, match="built-in name or a path"):
        ganlite.load(123)
    with pytest.raises(ganlite.UsageError):
        g.generate(3, labels="²")
